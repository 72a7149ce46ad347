"""How to spend a fixed data budget between SFT examples and preference pairs ("Balancing the Budget", 2025).

The paper asks: with B units of annotation money, how much should buy SFT demonstrations and how much preference
pairs? Its answers: SFT alone wins at small budgets; larger budgets favour SFT + preference tuning; and DPO started
from the base model has a "cold start" on maths that a small SFT share (< 10% of the budget) fixes.

The pieces here:
- `split_budget(B, f, sft_cost, pair_cost) -> (n_sft, n_pairs)`: the cost model; `plan_grid` for a sweep.
- `draw_rejected` + `preference_pairs`: "chosen" is the task's correct target, "rejected" is the model's own
  incorrect sample, drawn on-policy with `nbkit.sampling.sample`; or `load_pairs(file)` from a dataset.
- `dpo(...)`: TRL's DPOTrainer with nbkit's laptop-safe config and registry logging.
- `sweep(cfg)`: every (B, f) cell is SFT on n_sft examples (TRL SFTTrainer through `nbkit.train.sft`), then DPO on
  n_pairs pairs from that checkpoint (from the base when n_sft = 0), then greedy evaluation. Every checkpoint is a
  registry run whose parent is the one it started from (base -> SFT -> DPO), so the compare app can load any cell.
  Runs are named by what they contain, so a rerun finds finished cells and skips them, and an interrupted sweep
  resumes; cells with the same n_sft share one SFT run. Returns a tidy pandas table, one row per cell.
- `claim_*`: the paper's claims checked against a results table and the per-problem scores behind it: paired
  differences with bootstrap 95% intervals (`nbkit.claims`), AGREES / DEPARTS only when the interval decides.

Simplifications against the paper (7-8B models, budgets of 100-20k examples, GPUs): a 135M model, budgets of tens
to hundreds of examples, two-digit addition answered directly (GSM8K-format in the gpu profile); the rejected
answers are drawn once from the *base* model and shared by every cell (the paper uses fixed preference data too),
so for cells that first do SFT they are slightly off-policy; one seed per cell; full DPO by default (LoRA DPO was
up to 2x faster per step here but learned far less in the few steps a laptop budget allows).

Run it:
    nbkit budget --config configs/budget_cpu.yaml           # the notebook's sweep as a script
    torchrun --nproc_per_node 2 -m nbkit.cli budget --config configs/budget_cpu.yaml    # 2 CPU processes
    accelerate launch --num_processes 4 -m nbkit.cli budget --config configs/budget_gpu.yaml  # 4 GPUs
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nbkit.config import opt, with_profile
from nbkit.errors import ConfigError
from nbkit.runs import read_jsonl, write_jsonl

DIRECT = ""  # rationale that makes Task.target give just the answer line


class BudgetError(ConfigError):
    """A budget sweep that cannot work; the message says what to change."""


@dataclass
class BudgetConfig:
    model: str = opt("smollm2-135m", "model short name, hub id or checkpoint")
    task: str = opt("arithmetic", "arithmetic | gsm8k")
    digits: list[int] = opt([2], "arithmetic: digit counts of the operands")
    source: str = opt(
        "gsm8k_sample.jsonl", "gsm8k: a jsonl file, a file in nbkit/tasks/fixtures, or a hub name"
    )
    rationale: bool = opt(False, "targets with the task's worked rationale (else just the answer line)")
    budgets: list[float] = opt([32, 128], "total budgets B, in cost units")
    fractions: list[float] = opt([0.0, 0.125, 0.5, 1.0], "SFT shares f of each budget")
    sft_cost: float = opt(1.0, "cost of one SFT example (the paper counts examples: 1)")
    pair_cost: float = opt(1.0, "cost of one preference pair (the paper: 1)")
    pool: int = opt(128, "training problems drawn for each of the SFT and the preference pools")
    pairs: str = opt("", "a jsonl file of prompt/chosen/rejected pairs; empty: draw them on-policy")
    rejected_k: int = opt(2, "samples per prompt when drawing rejected answers")
    temperature: float = opt(1.0, "sampling temperature for the rejected answers")
    max_new_tokens: int = opt(12, "tokens per sampled or evaluated answer")
    sft_epochs: float = opt(2.0, "epochs over the SFT share")
    sft_lr: float = opt(5e-5, "SFT learning rate")
    dpo_epochs: float = opt(1.0, "epochs over the preference pairs")
    dpo_lr: float = opt(5e-6, "DPO learning rate")
    beta: float = opt(0.1, "DPO beta (the paper's and TRL's default)")
    dpo_lora: bool = opt(False, "DPO with a LoRA adapter (reference = adapter off) instead of a full copy")
    batch_size: int = opt(8, "training batch size (per device)")
    eval_n: int = opt(64, "test problems per evaluation (greedy)")
    eval_batch_size: int = opt(64, "prompts per generation batch")
    max_length: int = opt(256, "training sequence length cap (tokens)")
    seed: int = opt(0, "seed for the pools, the sampling and the training")
    profile: str = opt(
        "cpu", "smoke | cpu | gpu: the row of PROFILES applied; it also prefixes the run names"
    )

    @classmethod
    def for_profile(cls, profile: str, /, **overrides) -> BudgetConfig:
        """The config of `profile` (a row of PROFILES), then `overrides`, e.g. for_profile("smoke", steps=1)."""
        return with_profile(cls, PROFILES, profile, **overrides)

    def sweep_id(self) -> str:
        """Six hex digits naming everything that shapes a cell except the grid, so that changing a setting
        never reuses stale runs while adding a budget or a fraction reuses every finished cell."""
        keep = {k: v for k, v in asdict(self).items() if k not in {"budgets", "fractions", "profile"}}
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:6]


# Each profile is a row of overrides of BudgetConfig's defaults (which are the cpu profile's).
# smoke: tiny model, seconds. cpu: SmolLM2-135M on 2-digit addition, minutes. gpu: GSM8K, Qwen 0.5B.
# fmt: off
PROFILES = {
    "smoke": dict(model="tiny", budgets=[4, 8], fractions=[0.0, 0.5, 1.0], pool=8, max_new_tokens=4, batch_size=8,
                  sft_epochs=1.0, eval_n=4, max_length=64),
    "cpu": {},
    "gpu": dict(model="qwen2.5-0.5b", task="gsm8k", source="openai/gsm8k", rationale=True, budgets=[256, 1024],
                fractions=[0.0, 0.1, 0.25, 0.5, 1.0], pool=1024, rejected_k=4, max_new_tokens=256, sft_lr=1e-5,
                dpo_lr=5e-7, batch_size=16, eval_n=500, max_length=768),
}
# fmt: on


# ------------------------------------------------------------------------------------------------ cost model


@dataclass(frozen=True)
class Cell:
    budget: float
    fraction: float
    n_sft: int
    n_pairs: int


def _floor(x: float) -> int:
    return math.floor(x + 1e-9)  # 0.29 * 100 is 28.999999999999996 in floats; it buys 29


def split_budget(
    budget: float, fraction: float, sft_cost: float = 1.0, pair_cost: float = 1.0
) -> tuple[int, int]:
    """(n_sft, n_pairs) that a budget buys when a share `fraction` of it goes to SFT examples.

    Example: split_budget(100, 0.25, sft_cost=1, pair_cost=2) -> (25, 37): 25 units buy 25 examples, the other 75
    buy 37 pairs (the half unit left over buys nothing).
    """
    if not 0.0 <= fraction <= 1.0:
        raise BudgetError(
            f"SFT fraction f={fraction} is outside [0, 1]; use a share such as 0, 0.1, 0.5 or 1"
        )
    if sft_cost <= 0 or pair_cost <= 0:
        raise BudgetError(f"costs must be positive, got sft_cost={sft_cost}, pair_cost={pair_cost}")
    if budget <= 0:
        raise BudgetError(f"budget must be positive, got {budget}")
    n_sft, n_pairs = _floor(budget * fraction / sft_cost), _floor(budget * (1 - fraction) / pair_cost)
    if n_sft + n_pairs == 0:
        need = min(
            ([sft_cost / fraction] if fraction > 0 else [])
            + ([pair_cost / (1 - fraction)] if fraction < 1 else [])
        )
        raise BudgetError(
            f"budget {budget:g} at f={fraction:g} buys nothing (an SFT example costs {sft_cost:g}, a pair "
            f"{pair_cost:g}); raise the budget to at least {need:g} or lower the costs"
        )
    return n_sft, n_pairs


def plan_grid(
    budgets: list[float], fractions: list[float], sft_cost: float = 1.0, pair_cost: float = 1.0
) -> list[Cell]:
    """Every (budget, fraction) cell, budget-major, validated before anything trains.

    Example: plan_grid([10], [0, 0.5, 1]) -> [Cell(10, 0, 0, 10), Cell(10, 0.5, 5, 5), Cell(10, 1, 10, 0)]
    """
    if not budgets or not fractions:
        raise BudgetError("a sweep needs at least one budget and one SFT fraction")
    return [
        Cell(float(b), float(f), *split_budget(b, f, sft_cost, pair_cost))
        for b in sorted(budgets)
        for f in sorted(fractions)
    ]


# ------------------------------------------------------------------------------------------- preference pairs


def draw_rejected(
    model,
    tokenizer,
    task,
    examples: list,
    k: int = 2,
    temperature: float = 1.0,
    max_new_tokens: int = 12,
    seed: int = 0,
    batch_size: int = 64,
    sampler=None,
) -> list[list[str]]:
    """The model's own incorrect answers: k on-policy samples per example, the wrong ones kept.

    Returns shape (n_examples, <= k). `sampler` defaults to nbkit.sampling.sample (tests pass a fake).
    """
    if sampler is None:
        from nbkit.sampling import sample as sampler
    out = sampler(
        model,
        tokenizer,
        [task.chat(ex) for ex in examples],
        k=k,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        batch_size=batch_size,
        desc="rejected samples",
    )
    return [
        [t for t in texts if t.strip() and not task.is_correct(t, ex)]
        for ex, texts in zip(examples, out.texts())
    ]


def preference_pairs(task, examples: list, rejected: list[list[str]], rationale: bool = False) -> list[dict]:
    """TRL conversational preference rows: chosen = the task's correct target, rejected = an incorrect sample.

    Round-robin: every example's first wrong answer, then every second one, ... so a budget's first n pairs
    spread over as many prompts as possible. Example: rejected [["5", "7"], [], ["1"]] gives pairs
    (ex0, "5"), (ex2, "1"), (ex0, "7").
    """
    if len(examples) != len(rejected):
        raise BudgetError(f"{len(examples)} examples but {len(rejected)} lists of rejected answers")
    rows = []
    for j in range(max((len(r) for r in rejected), default=0)):
        for ex, wrong in zip(examples, rejected):
            if j < len(wrong):
                rows.append(
                    {
                        "prompt": task.chat(ex),
                        "chosen": [{"role": "assistant", "content": _target(task, ex, rationale)}],
                        "rejected": [{"role": "assistant", "content": wrong[j]}],
                        "answer": ex.answer,
                    }
                )
    if not rows:
        raise BudgetError(
            f"no incorrect samples to pair against: the model answered all {len(examples)} prompts correctly; "
            "use harder problems, more samples (rejected_k), a higher temperature, or a pairs file"
        )
    return rows


def _turn(x, role: str) -> list[dict]:
    return [{"role": role, "content": x}] if isinstance(x, str) else x


def load_pairs(source: str | Path) -> list[dict]:
    """Preference pairs from a jsonl file with prompt, chosen, rejected (strings or chat messages)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise BudgetError(f"pairs file {path} does not exist")
    rows = read_jsonl(path)
    for i, r in enumerate(rows):
        if missing := {"prompt", "chosen", "rejected"} - set(r):
            raise BudgetError(
                f"{path} row {i} lacks {sorted(missing)}; each row needs prompt, chosen, rejected"
            )
    if not rows:
        raise BudgetError(f"{path} holds no preference pairs")
    return [
        {
            "prompt": _turn(r["prompt"], "user"),
            **{k: _turn(r[k], "assistant") for k in ("chosen", "rejected")},
        }
        for r in rows
    ]


def _target(task, ex, rationale: bool) -> str:
    return task.target(ex) if rationale else task.target(ex, DIRECT)


# ---------------------------------------------------------------------------------------------- training


def dpo(
    model,
    tokenizer,
    pairs: list[dict],
    epochs: float = 1.0,
    lr: float = 5e-6,
    beta: float = 0.1,
    batch_size: int = 8,
    max_length: int = 256,
    run=None,
    lora=None,
    seed: int = 0,
    **config_overrides,
):
    """DPO on conversational `pairs` with TRL's DPOTrainer; returns the trainer (trainer.model is trained).

    The reference is a frozen copy of `model` for a full fine-tune; with `lora` (a peft config) it is the same
    network with the adapter switched off, which saves the copy. Steps: ceil(len(pairs) * epochs / batch_size).
    """
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from nbkit.train import RegistryCallback, release, trainer_config, with_defaults

    if not pairs:
        raise BudgetError("dpo: no preference pairs to train on")
    cfg = trainer_config(
        DPOConfig,
        max_steps=max(1, math.ceil(len(pairs) * epochs / batch_size)),
        learning_rate=lr,
        beta=beta,
        per_device_train_batch_size=batch_size,
        max_length=max_length,
        lr_scheduler_type="constant_with_warmup",
        seed=seed,
        **config_overrides,
    )
    # TRL would otherwise rebuild the reference from model.name_or_path, which fails offline for short names
    ref = None if lora is not None else copy.deepcopy(model).eval()
    columns = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs]
    trainer = DPOTrainer(
        model=model,
        ref_model=ref,
        args=cfg,
        train_dataset=Dataset.from_list(columns),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[RegistryCallback(run, "dpo/")] if run is not None else [],
    )
    with_defaults(trainer)
    trainer.train()
    release(trainer.model).eval()
    return trainer


# ------------------------------------------------------------------------------------------------- the sweep


def make_task(cfg: BudgetConfig):
    from nbkit.tasks import FIXTURES, GSM8K, Arithmetic

    if cfg.task == "arithmetic":
        return Arithmetic(digits=tuple(cfg.digits), seed=cfg.seed)
    if cfg.task == "gsm8k":
        for path in (Path(cfg.source).expanduser(), FIXTURES / cfg.source):
            if path.is_file():
                return GSM8K(path)
        return GSM8K(cfg.source, config="main", test_source=cfg.source)
    raise BudgetError(f"budget sweeps run on task 'arithmetic' or 'gsm8k', not {cfg.task!r}")


def make_pools(task, cfg: BudgetConfig) -> tuple[list, list, list]:
    """(sft_pool, preference_prompts, test): `pool` training problems each, disjoint, shuffled with the seed.

    A cell takes the first n_sft of the SFT pool and the first n_pairs pairs, so a larger budget extends a smaller
    one's data instead of redrawing it.
    """
    train = list(task.train(2 * cfg.pool, salt=f"budget-{cfg.seed}"))
    if len(train) < 2 * cfg.pool:
        raise BudgetError(
            f"{task.name} has only {len(train)} training problems; the SFT and preference pools need "
            f"2 x pool = {2 * cfg.pool}: lower pool to {len(train) // 2}"
        )
    random.Random(cfg.seed).shuffle(train)  # arithmetic lists problems by digit count
    return train[: cfg.pool], train[cfg.pool :], task.test(cfg.eval_n)


def check_grid(cells: list[Cell], cfg: BudgetConfig) -> None:
    """Fail before anything runs if a cell needs more data than the pools can hold."""
    max_sft, max_pairs = max(c.n_sft for c in cells), max(c.n_pairs for c in cells)
    if max_sft > cfg.pool:
        raise BudgetError(f"a cell needs {max_sft} SFT examples but pool={cfg.pool}; raise pool to {max_sft}")
    if not cfg.pairs and max_pairs > cfg.pool * cfg.rejected_k:
        raise BudgetError(
            f"a cell needs {max_pairs} pairs but pool x rejected_k = {cfg.pool * cfg.rejected_k} at most; "
            "raise pool or rejected_k, or lower the budgets"
        )


def run_names(cfg: BudgetConfig, cell: Cell) -> dict:
    """Registry names for one cell. Names say what a run holds, so equal contents share one run.

    Example (profile cpu, sweep id 1a2b3c, n_sft 4, n_pairs 28): base "cpu-budget-1a2b3c-base", sft
    "cpu-budget-1a2b3c-sft4", dpo "cpu-budget-1a2b3c-sft4-dpo28", final = the dpo run.
    """
    stem = f"{cfg.profile}-budget-{cfg.sweep_id()}"
    names = {"base": f"{stem}-base", "pairs": f"{stem}-pairs"}
    names["sft"] = f"{stem}-sft{cell.n_sft}" if cell.n_sft else None
    start = names["sft"] or names["base"]
    names["dpo"] = f"{start}-dpo{cell.n_pairs}" if cell.n_pairs else None
    names["final"] = names["dpo"] or names["sft"]
    return names


def _ensure(reg, name: str, kind: str, config: dict, parent: str | None, build, everyone: bool = True):
    """The run `name` from the registry (the cache; refused if made with another config), or built now by
    build(writer) and committed by rank 0.

    everyone: every rank runs `build` (training: the trainer's collectives need them all; ranks other than 0 get a
    writer that writes nothing); else rank 0 builds alone and the others wait for it (drawing the pairs).
    """
    from nbkit import dist

    if not dist.broadcast(reg.exists(name)):  # rank 0 decides: every rank must take the same branch
        if dist.is_main():
            with reg.create(name, kind, config, parent) as writer:
                build(writer)
        elif everyone:
            build(dist.NullRun())
        dist.barrier()  # rank 0 has committed the run
    return reg.reuse(name, config, ignore={"budgets", "fractions", "profile"})  # the grid may grow


def _load(source: str):
    from nbkit.models import load

    path = Path(source)
    # an adapter trained on this model records its base by this path: make it absolute so it loads from anywhere
    return load(str(path.resolve()) if path.is_dir() else source, dtype="float32")


@contextlib.contextmanager
def _quiet_loaders():
    """Hide the per-run bars of weight loading and dataset tokenizing (dozens per sweep); keep the training,
    sampling and sweep bars."""
    import datasets
    import transformers

    tf, ds = transformers.utils.logging, datasets.utils.logging
    was = tf.is_progress_bar_enabled(), ds.is_progress_bar_enabled()
    tf.disable_progress_bar()
    ds.disable_progress_bar()
    try:
        yield
    finally:
        if was[0]:
            tf.enable_progress_bar()
        if was[1]:
            ds.enable_progress_bar()


class Sweep:
    """One sweep over (budget x SFT fraction). Building it plans and checks the grid (bad input fails here, before
    anything runs); `.pairs` draws the rejected answers once (cached as a registry run); `.run()` trains and
    evaluates the missing cells and returns the table.
    """

    def __init__(self, cfg: BudgetConfig, registry=None):
        from nbkit.runs import Registry

        self.cfg, self.reg = cfg, registry if registry is not None else Registry()
        self.cells = plan_grid(cfg.budgets, cfg.fractions, cfg.sft_cost, cfg.pair_cost)
        check_grid(self.cells, cfg)
        self.task = make_task(cfg)
        self.sft_pool, self.pref_prompts, self.test = make_pools(self.task, cfg)
        self.names = run_names(cfg, self.cells[0])  # base and pairs: the same for every cell
        self.config = asdict(cfg)
        self._pairs: list[dict] | None = None

    @property
    def pairs(self) -> list[dict]:
        """All preference pairs, round-robin over prompts; cell (B, f) trains on the first n_pairs."""
        if self._pairs is None:
            run = _ensure(
                self.reg, self.names["pairs"], "pairs", self.config, None, self._build_pairs, everyone=False
            )
            self._pairs = read_jsonl(run.path / "pairs.jsonl")
            need = max(c.n_pairs for c in self.cells)
            if need > len(self._pairs):
                raise BudgetError(
                    f"only {len(self._pairs)} preference pairs (incorrect samples) for a cell that needs {need}; "
                    "raise pool or rejected_k, or lower the budgets"
                )
        return self._pairs

    def _build_pairs(self, writer) -> None:
        cfg = self.cfg
        if cfg.pairs:
            rows = load_pairs(cfg.pairs)
        else:
            model, tok = _load(cfg.model)
            wrong = draw_rejected(
                model, tok, self.task, self.pref_prompts, cfg.rejected_k, cfg.temperature, cfg.max_new_tokens,
                cfg.seed, cfg.eval_batch_size,
            )  # fmt: skip
            rows = preference_pairs(self.task, self.pref_prompts, wrong, cfg.rationale)
        write_jsonl(Path(writer.path) / "pairs.jsonl", rows)
        writer.set_summary(n_pairs=len(rows), n_prompts=len({json.dumps(r["prompt"]) for r in rows}))

    def _evaluate(self, writer, model, tok, **summary) -> None:
        """Greedy evaluation on the test problems, sharded: each rank scores its block, rank 0 writes them all."""
        from nbkit import dist
        from nbkit.tasks.base import accuracy_table

        start, part = time.perf_counter(), dist.shard(self.test)
        opts = dict(max_new_tokens=self.cfg.max_new_tokens, batch_size=self.cfg.eval_batch_size)
        mine = self.task.evaluate(model, tok, part, **opts)["rows"] if part else []
        rows, per_rank = dist.gather(mine), dist.gather([len(mine)])
        if not dist.is_main():
            return
        res = accuracy_table(rows)
        write_jsonl(Path(writer.path) / "eval.jsonl", rows)
        writer.log({"eval/accuracy": res["accuracy"]})
        writer.set_summary(
            accuracy=res["accuracy"],
            by_difficulty=res["by_difficulty"],
            n_eval=res["n"],
            eval_per_rank=per_rank,
            eval_seconds=round(time.perf_counter() - start, 1),
            **summary,
        )

    def base_run(self):
        """The base model, evaluated once: the starting point of every lineage."""
        name = self.names["base"]
        return _ensure(
            self.reg, name, "base", self.config, None, lambda w: self._evaluate(w, *_load(self.cfg.model))
        )

    def sft_run(self, n: int):
        """SFT on the first n examples of the SFT pool, from the base (shared by every cell with this n_sft)."""
        from nbkit.train import sft

        cfg, name = self.cfg, f"{self.names['base'][: -len('-base')]}-sft{n}"

        def build(w):
            model, tok = _load(cfg.model)
            records = [
                self.task.sft_record(ex, None if cfg.rationale else DIRECT) for ex in self.sft_pool[:n]
            ]
            start = time.perf_counter()
            trainer = sft(
                model, tok, records, epochs=cfg.sft_epochs, lr=cfg.sft_lr, batch_size=cfg.batch_size,
                max_length=cfg.max_length, run=w, seed=cfg.seed,
            )  # fmt: skip
            seconds = round(time.perf_counter() - start, 1)
            w.save_model(trainer.model, tok)
            self._evaluate(
                w, trainer.model, tok, n_sft=n, steps=trainer.state.global_step, train_seconds=seconds
            )

        return _ensure(self.reg, name, "sft", {**self.config, "n_sft": n}, self.names["base"], build)

    def dpo_run(self, parent: str, n: int):
        """DPO on the first n pairs, starting from the checkpoint of run `parent` (an SFT run or the base)."""
        from nbkit.train import lora_config

        cfg, pairs = self.cfg, self.pairs[:n]

        def build(w):
            model, tok = _load(self.reg.get(parent).model_source)
            start = time.perf_counter()
            trainer = dpo(
                model, tok, pairs, cfg.dpo_epochs, cfg.dpo_lr, cfg.beta, cfg.batch_size, cfg.max_length, run=w,
                lora=lora_config() if cfg.dpo_lora else None, seed=cfg.seed,
            )  # fmt: skip
            seconds = round(time.perf_counter() - start, 1)
            w.save_model(trainer.model, tok)
            self._evaluate(
                w, trainer.model, tok, n_pairs=n, steps=trainer.state.global_step, train_seconds=seconds
            )

        return _ensure(self.reg, f"{parent}-dpo{n}", "dpo", {**self.config, "n_pairs": n}, parent, build)

    def run_cell(self, cell: Cell) -> dict:
        """SFT (if n_sft > 0), then DPO from there (if n_pairs > 0); finished runs are reused. Returns its row."""
        names = run_names(self.cfg, cell)
        if cell.n_sft:
            self.sft_run(cell.n_sft)
        if cell.n_pairs:
            self.dpo_run(names["sft"] or names["base"], cell.n_pairs)
        return cell_row(self.reg, self.cfg, cell, names)

    def run(self, progress: bool = True):
        """Every cell, in budget-major order; returns the tidy table (pandas), one row per cell."""
        start = time.perf_counter()
        with _quiet_loaders():
            return self._run(progress, start)

    def _run(self, progress: bool, start: float):
        import pandas as pd
        from tqdm.auto import tqdm

        self.pairs  # noqa: B018 - draw (or fetch) the pairs before training anything: it may fail on bad input
        base = self.base_run()
        rows = []
        bar = tqdm(self.cells, desc="budget cells", disable=not progress)
        for cell in bar:
            bar.set_postfix(B=f"{cell.budget:g}", f=f"{cell.fraction:g}")
            rows.append(self.run_cell(cell))
        table = pd.DataFrame(rows)
        table.attrs.update(
            base_run=base.name,
            base_accuracy=base.summary.get("accuracy"),
            seconds=time.perf_counter() - start,
        )
        return table


def sweep(cfg: BudgetConfig, registry=None, progress: bool = True):
    """Run (or resume) a sweep; returns the table. See `Sweep`."""
    return Sweep(cfg, registry).run(progress)


def cell_row(reg, cfg: BudgetConfig, cell: Cell, names: dict) -> dict:
    """One tidy row: the cell, what it bought and spent, its accuracy (overall and per difficulty), its runs."""
    final = reg.get(names["final"]).summary
    train_s = sum(reg.get(names[k]).summary.get("train_seconds", 0.0) for k in ("sft", "dpo") if names[k])
    return {
        "budget": cell.budget,
        "fraction": cell.fraction,
        "n_sft": cell.n_sft,
        "n_pairs": cell.n_pairs,
        "spent": cell.n_sft * cfg.sft_cost + cell.n_pairs * cfg.pair_cost,
        "accuracy": final.get("accuracy"),
        **{f"acc_d{d}": v for d, v in final.get("by_difficulty", {}).items()},
        "train_s": round(train_s, 1),
        "run": names["final"],
        "sft_run": names["sft"],
        "dpo_run": names["dpo"],
    }


def eval_rows(reg, name: str) -> list[dict]:
    """The evaluation a run stored: [{question, answer, completion, difficulty, correct}, ...]."""
    path = reg.get(name).path / "eval.jsonl"
    return read_jsonl(path) if path.exists() else []


def side_by_side(reg, names: dict[str, str], n: int = 6):
    """A table of the first n test questions with each named run's answer, e.g. {"DPO from base": run, ...}."""
    import pandas as pd

    cols = {label: eval_rows(reg, run) for label, run in names.items()}
    first = next(iter(cols.values()))
    return pd.DataFrame(
        [
            {
                "question": r["question"],
                "answer": r["answer"],
                **{k: v[i]["completion"] for k, v in cols.items()},
            }
            for i, r in enumerate(first[:n])
        ]
    )


def cold_start(reg, table):
    """Per budget, the cold start in four numbers: the base model, the smallest SFT share alone, DPO from the base
    (f = 0) and that SFT share followed by DPO (the cell with the smallest f > 0 that still buys pairs).

    Returns a DataFrame, one row per budget, with those accuracies and the runs behind them.
    """
    import pandas as pd

    base = reg.get(table.attrs["base_run"])
    rows = []
    for b, sub in table.groupby("budget"):
        cold, warm = (
            sub[sub.fraction == 0],
            sub[(sub.fraction > 0) & (sub.n_pairs > 0)].sort_values("fraction"),
        )
        if cold.empty or warm.empty:
            continue
        cold, warm = cold.iloc[0], warm.iloc[0]
        rows.append(
            {
                "budget": b,
                "base": base.summary.get("accuracy"),
                "sft_share_alone": reg.get(warm.sft_run).summary.get("accuracy") if warm.sft_run else None,
                "dpo_from_base": cold.accuracy,
                "sft_share_then_dpo": warm.accuracy,
                "n_sft": warm.n_sft,
                "n_pairs_cold": cold.n_pairs,
                "n_pairs_warm": warm.n_pairs,
                "base_run": base.name,
                "sft_run": warm.sft_run,
                "cold_run": cold.run,
                "warm_run": warm.run,
            }
        )
    return pd.DataFrame(rows)


# -------------------------------------------------------------------------------------------- paper claims
# Each claim compares two cells on the same held-out problems: a paired difference of per-problem 0/1 correctness
# with a bootstrap 95% interval (nbkit.claims). AGREES / DEPARTS only when the interval excludes 0.


def problem_scores(reg, table) -> dict[str, list[float]]:
    """Per-problem correctness (0/1, in test-set order) of each cell's final run, by run name. Every cell is
    evaluated on the same held-out problems, so two cells' lists pair item by item."""
    return {run: [float(r["correct"]) for r in eval_rows(reg, run)] for run in table.run}


def _cell(table, budget: float, fraction: float):
    hit = table[(table.budget == budget) & (table.fraction == fraction)]
    return None if hit.empty else hit.iloc[0]


def claim_sft_wins_small(table, scores: dict):
    """Paper: with the smallest budget, spending it all on SFT beats every split that buys pairs. Tested against
    the best of those splits (picked on the same problems, which favours it: a conservative test).

    table: the sweep's table (budget, fraction, accuracy, run); scores: `problem_scores(reg, table)`. -> Claim
    """
    from nbkit.claims import paired

    b = table.budget.min()
    sft_only, others = _cell(table, b, 1.0), table[(table.budget == b) & (table.fraction < 1)]
    if sft_only is None or others.empty:
        raise BudgetError(f"the grid needs f = 1 and some f < 1 at B = {b:g} to check 'SFT only wins'")
    best = others.loc[others.accuracy.idxmax()]
    return paired(
        scores[sft_only.run], scores[best.run],
        f"at B = {b:g}, SFT only (acc {sft_only.accuracy:.2f}) minus the best split with pairs "
        f"(f = {best.fraction:g}, acc {best.accuracy:.2f})",
    )  # fmt: skip


def claim_dpo_from_base_worst(table, scores: dict) -> list:
    """Paper: f = 0 (all pairs, DPO straight from the base) is the worst split at every budget. Per budget, the
    weakest other split minus f = 0. -> [Claim per budget]"""
    from nbkit.claims import paired

    out = []
    for b, sub in table.groupby("budget"):
        cold, rest = _cell(table, b, 0.0), sub[sub.fraction > 0]
        if cold is None or rest.empty:
            raise BudgetError(f"the grid needs f = 0 and some f > 0 at B = {b:g} to check 'f = 0 is worst'")
        worst = rest.loc[rest.accuracy.idxmin()]
        out.append(paired(
            scores[worst.run], scores[cold.run],
            f"at B = {b:g}, the weakest split with SFT (f = {worst.fraction:g}, acc {worst.accuracy:.2f}) minus "
            f"DPO from base (f = 0, acc {cold.accuracy:.2f})",
        ))  # fmt: skip
    return out


def claim_small_sft_rescues(table, scores: dict, small: float = 0.25) -> list:
    """Paper: a small SFT share (the smallest 0 < f <= `small` that still buys pairs) beats DPO from the base.
    Per budget, that cell minus f = 0. -> [Claim per budget]"""
    from nbkit.claims import paired

    out = []
    for b, sub in table.groupby("budget"):
        cold = _cell(table, b, 0.0)
        mixed = sub[(sub.fraction > 0) & (sub.fraction <= small) & (sub.n_pairs > 0)]
        if cold is None or mixed.empty:
            raise BudgetError(
                f"the grid needs f = 0 and a share 0 < f <= {small:g} at B = {b:g} to check 'a small SFT share "
                f"rescues DPO'"
            )
        row = mixed.loc[mixed.fraction.idxmin()]
        out.append(paired(
            scores[row.run], scores[cold.run],
            f"at B = {b:g}, SFT share f = {row.fraction:g} then DPO (acc {row.accuracy:.2f}) minus DPO from base "
            f"(acc {cold.accuracy:.2f})",
        ))  # fmt: skip
    return out


def claims(table, scores: dict) -> list:
    """The paper's three claims as a flat list of Claims (see nbkit.claims). A claim the grid cannot check comes
    back as a line saying which cells it needs, e.g. "claim_small_sft_rescues: not checked: the grid needs ..."."""
    out: list = []
    for claim in (claim_sft_wins_small, claim_dpo_from_base_worst, claim_small_sft_rescues):
        try:
            found = claim(table, scores)
        except BudgetError as e:
            out.append(f"{claim.__name__}: not checked: {e}")
            continue
        out += found if isinstance(found, list) else [found]
    return out


# ------------------------------------------------------------------------------------------------------ plots


def plot_heatmap(table, ax=None, title: str = ""):
    """Accuracy per (budget, SFT fraction) cell, numbers written in."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    grid = table.pivot_table(index="budget", columns="fraction", values="accuracy")
    im = ax.imshow(
        grid.values, cmap="viridis", vmin=0, vmax=max(1e-9, float(grid.values.max())), aspect="auto"
    )
    ax.set_xticks(range(grid.shape[1]), [f"{f:g}" for f in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{b:g}" for b in grid.index])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid.values[i, j]:.2f}", ha="center", va="center", color="w")
    ax.set(xlabel="SFT fraction f", ylabel="budget B", title=title)
    plt.colorbar(im, ax=ax, label="accuracy")
    return ax


def plot_lines(table, ax=None, title: str = "", base_accuracy: float | None = None):
    """Accuracy against the SFT fraction, one line per budget; the base model as a dashed line."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    for b, sub in table.sort_values("fraction").groupby("budget"):
        ax.plot(sub.fraction, sub.accuracy, marker="o", label=f"B = {b:g}")
    if base_accuracy is not None:
        ax.axhline(base_accuracy, ls="--", color="grey", label="base model")
    ax.set(xlabel="SFT fraction f (0 = all DPO, 1 = all SFT)", ylabel="accuracy", title=title)
    ax.legend()
    return ax


# -------------------------------------------------------------------------------------------------------- CLI


def cli(argv: list[str]) -> int:
    """`nbkit budget [--config FILE] [--profile P] [--runs DIR] [--out results.csv] [--KEY VALUE ...]`."""
    from nbkit import dist
    from nbkit.config import parse_cli, parser
    from nbkit.runs import Registry

    about = "Sweep SFT fraction x budget (SFT -> DPO -> eval per cell); finished cells are reused."
    p = parser(BudgetConfig, "nbkit budget", about)
    p.add_argument("--root", dest="runs", help=argparse.SUPPRESS)  # the old name of --runs (deprecated)
    p.add_argument("--out", default=None, help="also write the results table to this CSV file")
    cfg, args = parse_cli(BudgetConfig, PROFILES, argv[1:], p)
    reg = Registry(args.runs)
    table = sweep(cfg, reg)
    if dist.is_main():
        print(table.drop(columns=["sft_run", "dpo_run"]).to_string(index=False))
        print(
            f"base model accuracy: {table.attrs['base_accuracy']}; sweep took {table.attrs['seconds']:.0f} s"
        )
        for c in claims(table, problem_scores(reg, table)):
            print(c)
        if args.out:
            table.to_csv(args.out, index=False)
    return 0
