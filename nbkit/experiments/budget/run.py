"""The sweep: every (B, f) cell is SFT on n_sft examples, then DPO on n_pairs pairs from that checkpoint (from the
base when n_sft = 0), then greedy evaluation.

Every checkpoint is a registry run whose parent is the one it started from (base -> SFT -> DPO), so the compare app
can load any cell. Runs are named by what they contain (`run_names`), so a rerun finds finished cells and skips
them, an interrupted sweep resumes, and cells with the same n_sft share one SFT run; a run of that name made with
another config is refused (`Registry.ensure`).

    run(cfg, registry) = plan -> ensure_pairs -> ensure_base -> run_cell for each cell -> BudgetResult

The work inside each run is a stage function that `run` takes as a parameter (tests pass fakes): `draw_pairs`,
`train_sft`, `train_dpo` and `evaluate`. Several processes (`torchrun`, `accelerate launch`): training runs on
every rank, pairs are drawn on rank 0 alone, evaluation is sharded, and only rank 0 writes (`nbkit.dist`).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from nbkit.experiments.budget.config import BudgetConfig, BudgetError, Cell
from nbkit.experiments.budget.data import (
    build_task,
    draw_rejected,
    load_pairs,
    make_pools,
    preference_pairs,
    sft_records,
)
from nbkit.experiments.budget.result import BudgetResult
from nbkit.files import read_jsonl, write_jsonl
from nbkit.runs import run_name

GRID = {"budgets", "fractions", "profile"}  # config keys a cached run may differ in: the grid may grow


def run_names(cfg: BudgetConfig, cell: Cell) -> dict:
    """Registry names for one cell. Names say what a run holds, so equal contents share one run.

    Example (profile cpu, sweep id 1a2b3c, n_sft 4, n_pairs 28): base "cpu-budget-1a2b3c-base", sft
    "cpu-budget-1a2b3c-sft4", dpo "cpu-budget-1a2b3c-sft4-dpo28", final = the dpo run.
    """
    names = {"base": cfg.run_name("base"), "pairs": cfg.run_name("pairs")}
    names["sft"] = cfg.run_name(f"sft{cell.n_sft}") if cell.n_sft else None
    start = names["sft"] or names["base"]
    names["dpo"] = run_name(start, f"dpo{cell.n_pairs}") if cell.n_pairs else None
    names["final"] = names["dpo"] or names["sft"]
    return names


# ----------------------------------------------------------------------------------- stages (tests pass fakes)


def load_model(source: str):
    from nbkit.models import load

    path = Path(source)
    # an adapter trained on this model records its base by this path: make it absolute so it loads from anywhere
    return load(str(path.resolve()) if path.is_dir() else source, dtype="float32")


def draw_pairs(cfg: BudgetConfig, task, prompts: list) -> list[dict]:
    """The config's pairs file, else the base model's own wrong answers to `prompts` paired with right ones."""
    if cfg.pairs:
        return load_pairs(cfg.pairs)
    model, tok = load_model(cfg.model)
    wrong = draw_rejected(
        model,
        tok,
        task,
        prompts,
        cfg.rejected_k,
        cfg.temperature,
        cfg.max_new_tokens,
        cfg.seed,
        cfg.eval_batch_size,
    )
    return preference_pairs(task, prompts, wrong, cfg.rationale)


def train_sft(cfg: BudgetConfig, model, tok, records: list[dict], writer):
    """SFT on prompt-completion `records` (TRL's SFTTrainer through `nbkit.train.sft`); returns the trainer."""
    from nbkit.train import sft

    return sft(
        model,
        tok,
        records,
        epochs=cfg.sft_epochs,
        lr=cfg.sft_lr,
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        run=writer,
        seed=cfg.seed,
    )


def train_dpo(cfg: BudgetConfig, model, tok, pairs: list[dict], writer):
    """DPO on `pairs` (TRL's DPOTrainer through `nbkit.train.dpo`); returns the trainer."""
    from nbkit.train import dpo, lora_config

    return dpo(
        model,
        tok,
        pairs,
        cfg.dpo_epochs,
        cfg.dpo_lr,
        cfg.beta,
        cfg.batch_size,
        cfg.max_length,
        run=writer,
        lora=lora_config() if cfg.dpo_lora else None,
        seed=cfg.seed,
    )


def evaluate(cfg: BudgetConfig, model, tok, task, problems: list) -> list[dict]:
    """Greedy answers to `problems` (this rank's share), scored: the task's evaluation rows."""
    opts = dict(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.eval_batch_size)
    return task.evaluate(model, tok, problems, **opts)["rows"] if problems else []


# --------------------------------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """A sweep planned and checked before anything runs: its cells, task and data, the names of the runs every
    cell shares (base, pairs), the registry it writes to, and the stage functions it calls."""

    cfg: BudgetConfig
    reg: object  # nbkit.runs.Registry
    cells: list[Cell]
    task: object
    sft_pool: list
    pref_prompts: list
    test: list
    names: dict  # "base" and "pairs"
    draw_pairs: Callable = draw_pairs
    train_sft: Callable = train_sft
    train_dpo: Callable = train_dpo
    evaluate: Callable = evaluate

    @property
    def config(self) -> dict:
        """What every run of the sweep records as its config (a cell's runs add n_sft or n_pairs)."""
        return asdict(self.cfg)


def plan(cfg: BudgetConfig, registry=None, **stages) -> Plan:
    """Plan (or fail, in one line, before anything runs) the sweep of `cfg`; `stages` replace stage functions."""
    from nbkit.runs import Registry

    cells = cfg.cells()  # checked when cfg was built (`BudgetConfig.__post_init__`)
    task = build_task(cfg)
    reg = registry if registry is not None else Registry()
    return Plan(cfg, reg, cells, task, *make_pools(task, cfg), run_names(cfg, cells[0]), **stages)


def dry_run(cfg: BudgetConfig, registry=None) -> str:
    """What `run(cfg, registry)` would do, without a model: the pools it draws (`plan`), every run it would register
    with its optimizer steps, and which of them the registry holds already (`nbkit budget --dry-run`). Data that
    cannot be read here (a hub dataset, offline) is said in one line; the runs and steps do not depend on it."""
    from nbkit.errors import ConfigError
    from nbkit.experiments import by_difficulty, n_steps, plan_text
    from nbkit.runs import Registry, base_run_name

    reg, cells = registry if registry is not None else Registry(), cfg.cells()
    data = [
        f"model: {cfg.model} (not loaded); task: {cfg.task} "
        + (f"digits {cfg.digits}" if cfg.task == "arithmetic" else f"from {cfg.source}")
    ]
    try:
        p = plan(cfg, reg)
        data += [
            f"SFT pool: {by_difficulty(p.sft_pool)}",
            f"preference prompts: {by_difficulty(p.pref_prompts)}",
            f"test problems: {by_difficulty(p.test)}",
        ]
    except ConfigError as e:
        data.append(f"data not drawn: {e}")
    pairs = cfg.pairs or f"the base model's wrong answers, {cfg.rejected_k} samples per prompt"
    names = run_names(cfg, cells[0])
    runs = [
        (base_run_name(cfg.model), "base", f"{cfg.model} as it is", 0),
        (names["pairs"], "pairs", f"preference pairs: {pairs}", 0),
        (names["base"], "base", f"{cfg.model} evaluated on {cfg.eval_n} problems", 0),
    ]
    for cell in cells:
        names = run_names(cfg, cell)
        if cell.n_sft and names["sft"] not in [r[0] for r in runs]:
            steps = max(1, math.ceil(cell.n_sft * cfg.sft_epochs / cfg.batch_size))
            runs.append((names["sft"], "sft", f"SFT on {cell.n_sft} examples, {n_steps(steps)}", steps))
        if cell.n_pairs and names["dpo"] not in [r[0] for r in runs]:
            steps = max(1, math.ceil(cell.n_pairs * cfg.dpo_epochs / cfg.batch_size))
            runs.append((names["dpo"], "dpo", f"DPO on {cell.n_pairs} pairs, {n_steps(steps)}", steps))
    data.append(f"{len(cells)} cells: budgets {cfg.budgets} x SFT shares {cfg.fractions}")
    return plan_text(data, runs, reg)


# ----------------------------------------------------------------------------- registry steps: reuse, or build


def ensure_pairs(p: Plan) -> list[dict]:
    """All preference pairs, round-robin over prompts (drawn once, on rank 0; cached as a registry run); cell
    (B, f) trains on the first n_pairs."""

    def build(writer):
        rows = p.draw_pairs(p.cfg, p.task, p.pref_prompts)
        write_jsonl(Path(writer.path) / "pairs.jsonl", rows)
        writer.set_summary(n_pairs=len(rows), n_prompts=len({json.dumps(r["prompt"]) for r in rows}))

    run = p.reg.ensure(p.names["pairs"], "pairs", p.config, build, None, ignore=GRID, everyone=False)
    pairs = read_jsonl(run.path / "pairs.jsonl")
    need = max(c.n_pairs for c in p.cells)
    if need > len(pairs):
        raise BudgetError(
            f"only {len(pairs)} preference pairs (incorrect samples) for a cell that needs {need}; "
            "raise pool or rejected_k, or lower the budgets"
        )
    return pairs


def record_eval(p: Plan, writer, model, tok, **summary) -> None:
    """Greedy evaluation on the test problems, sharded: each rank scores its block, rank 0 writes them all."""
    from nbkit import dist
    from nbkit.tasks.base import accuracy_table

    start = time.perf_counter()
    rows, per_rank = dist.on_shards(lambda part: p.evaluate(p.cfg, model, tok, p.task, part), p.test)
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


def ensure_base(p: Plan):
    """The base model, evaluated once: the starting point of every cell's lineage, itself a child of the model's
    shared base run (`base-{model}`, as in every experiment)."""
    from nbkit.runs import base_run

    def build(w):
        record_eval(p, w, *load_model(p.cfg.model))

    return p.reg.ensure(p.names["base"], "base", p.config, build, base_run(p.reg, p.cfg.model), ignore=GRID)


def ensure_sft(p: Plan, n: int):
    """SFT on the first n examples of the SFT pool, from the base (shared by every cell with this n_sft)."""
    name = p.cfg.run_name(f"sft{n}")

    def build(w):
        model, tok = load_model(p.cfg.model)
        records = sft_records(p.task, p.sft_pool[:n], p.cfg.rationale)
        start = time.perf_counter()
        trainer = p.train_sft(p.cfg, model, tok, records, w)
        seconds = round(time.perf_counter() - start, 1)
        w.save_model(trainer.model, tok)
        record_eval(p, w, trainer.model, tok, n_sft=n, steps=trainer.state.global_step, train_seconds=seconds)

    return p.reg.ensure(name, "sft", {**p.config, "n_sft": n}, build, p.names["base"], ignore=GRID)


def ensure_dpo(p: Plan, pairs: list[dict], parent: str, n: int):
    """DPO on the first n pairs, starting from the checkpoint of run `parent` (an SFT run or the base)."""

    def build(w):
        model, tok = load_model(p.reg.get(parent).model_source)
        start = time.perf_counter()
        trainer = p.train_dpo(p.cfg, model, tok, pairs[:n], w)
        seconds = round(time.perf_counter() - start, 1)
        w.save_model(trainer.model, tok)
        record_eval(
            p, w, trainer.model, tok, n_pairs=n, steps=trainer.state.global_step, train_seconds=seconds
        )

    return p.reg.ensure(
        run_name(parent, f"dpo{n}"), "dpo", {**p.config, "n_pairs": n}, build, parent, ignore=GRID
    )


def run_cell(p: Plan, pairs: list[dict], cell: Cell) -> dict:
    """SFT (if n_sft > 0), then DPO from there (if n_pairs > 0); finished runs are reused. Returns its row."""
    names = run_names(p.cfg, cell)
    if cell.n_sft:
        ensure_sft(p, cell.n_sft)
    if cell.n_pairs:
        ensure_dpo(p, pairs, names["sft"] or names["base"], cell.n_pairs)
    return cell_row(p.reg, p.cfg, cell, names)


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


# ------------------------------------------------------------------------------------------------------ run


@contextlib.contextmanager
def quiet_loaders():
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


def run(
    cfg: BudgetConfig,
    registry=None,
    *,
    progress: bool = True,
    draw_pairs: Callable = draw_pairs,
    train_sft: Callable = train_sft,
    train_dpo: Callable = train_dpo,
    evaluate: Callable = evaluate,
) -> BudgetResult:
    """Run (or resume) the sweep of `cfg` in `registry` (default: the project's); every cell in budget-major
    order. The stage functions default to the real ones (tests pass fakes). -> BudgetResult (`.frame()`: the table)
    """
    import pandas as pd
    from tqdm.auto import tqdm

    stages = dict(draw_pairs=draw_pairs, train_sft=train_sft, train_dpo=train_dpo, evaluate=evaluate)
    p = plan(cfg, registry, **stages)
    start = time.perf_counter()
    with quiet_loaders():
        pairs = ensure_pairs(p)  # before training anything: it may fail on bad input
        base = ensure_base(p)
        rows = []
        bar = tqdm(p.cells, desc="budget cells", disable=not progress)
        for cell in bar:
            bar.set_postfix(B=f"{cell.budget:g}", f=f"{cell.fraction:g}")
            rows.append(run_cell(p, pairs, cell))
    seconds = time.perf_counter() - start
    return BudgetResult(pd.DataFrame(rows), p.reg, base.name, base.summary.get("accuracy"), seconds)
