"""STaR's loop, as named stages. `run` strings them together; each stage is a method of `Loop` (the state one run
shares: config, registry, task, data, the models it holds) and calls the three model-facing stage functions it was
given: `sample`, `train` and `evaluate`, each `stage(cfg, model, tok, <data...>)` (train: then the run writer). Tests
pass fakes for those three instead of patching anything. Every stage that registers a run goes through
`Registry.ensure`: a finished run is reused when its config matches, refused in one line when it does not.

    primer      SFT of the base model on the seed rationales (skipped when seeding="fewshot" or `primer` names one)
    seed_eval   iteration 0: the seed model on the held-out problems
    collect     one rationale per train problem, the filter, rationalization of the failures with the answer as a hint
    fine_tune   SFT of the seed model on everything kept, then the held-out evaluation; registers iteration i

Several processes (`torchrun` / `accelerate launch`): every rank samples and evaluates its own contiguous shard of the
problems (`nbkit.dist.shard`), the kept rationales and the evaluation rows are gathered in problem order, every rank
trains (data-parallel) on the same rows, and only rank 0 writes the registry.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nbkit import dist, live
from nbkit.errors import ConfigError
from nbkit.experiments.star import reuse
from nbkit.experiments.star.config import RESUMABLE_CHANGES, StarConfig
from nbkit.experiments.star.data import (
    build_task,
    draw,
    faithful_counts,
    filter_rationales,
    iteration_records,
    iteration_stats,
    primer_records,
)
from nbkit.experiments.star.result import StarResult
from nbkit.files import write_jsonl
from nbkit.tasks.base import count_by_difficulty

# ---------------------------------------------------------------------------------- the model-facing stage functions


def sample(
    cfg: StarConfig,
    model,
    tok,
    prompts: list,
    seed: int,
    desc: str,
    chat: bool = True,
    *,
    progress: bool = True,
) -> list[list[str]]:
    """cfg.samples_per_problem completions per prompt, shape (n_prompts, k); `chat`: prompts are messages."""
    from nbkit.sampling import sample as generate

    if not prompts:
        return []
    opts = dict(temperature=cfg.temperature, batch_size=cfg.sample_batch_size, progress=progress, desc=desc)
    return generate(
        model, tok, prompts, cfg.samples_per_problem, cfg.max_new_tokens, seed=seed, chat=chat, **opts
    ).texts()


def train(
    cfg: StarConfig,
    model,
    tok,
    records: list[dict],
    writer,
    *,
    steps: int | None,
    lr: float,
    epochs: float = 1.0,
    progress: bool = True,
):
    """TRL's SFTTrainer through nbkit.train.sft (returns the trainer): `steps` optimizer steps, or `epochs` over
    `records` when steps is None; batches of similar length pad less."""
    from nbkit.train import sft

    opts = dict(disable_tqdm=not progress, train_sampling_strategy="group_by_length")
    if cfg.lr_schedule != "constant":
        opts["lr_scheduler_type"] = cfg.lr_schedule
    model.train()
    return sft(model, tok, records, steps, epochs, lr, cfg.batch_size, run=writer, seed=cfg.seed, **opts)


def evaluate(cfg: StarConfig, model, tok, task, test: list, chat, *, progress: bool = True) -> dict:
    """Greedy held-out accuracy; under several processes each rank evaluates its shard and the rows are gathered
    in the test set's order."""
    from nbkit.tasks.base import accuracy_table

    opts = dict(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.sample_batch_size, progress=progress)
    rows, per_rank = dist.on_shards(
        lambda part: task.evaluate(model, tok, part, messages=chat, **opts)["rows"], test
    )
    return {**accuracy_table(rows), "rows": rows, "per_rank": per_rank}


# ------------------------------------------------------------------------------------------------------ the loop


def run(
    cfg: StarConfig,
    registry=None,
    *,
    progress: bool = True,
    sample: Callable = sample,
    train: Callable = train,
    evaluate: Callable = evaluate,
) -> StarResult:
    """Run (or resume) the STaR loop described by `cfg`; returns every iteration's summary (on every process).
    progress: one line per stage, and progress bars."""
    from nbkit.runs import Registry

    stages = dict(sample=sample, train=train, evaluate=evaluate)
    loop = Loop.start(cfg, registry or Registry(), stages, progress)
    loop.primer()
    loop.seed_eval()
    names, stopped, current = [cfg.run_name("iter0")], None, loop.seed_run
    for i in range(1, cfg.iterations + 1):
        gathered = loop.collect(i, current)  # None: iteration i is registered already
        if gathered is not None and gathered[2]["kept"] == 0:
            stopped = loop.nothing_kept(i, current, gathered[2])
            break
        current = loop.fine_tune(i, current, gathered)
        names.append(current)
    return loop.result(names, stopped)


def replay_control(
    cfg: StarConfig,
    registry=None,
    *,
    progress: bool = True,
    train: Callable = train,
    evaluate: Callable = evaluate,
) -> StarResult:
    """The control of iteration 1: the seed model fine-tuned as iteration 1 fine-tunes it (the same epochs, schedule
    and learning rate over the rows) on the primer's replayed rows alone, with nothing the loop wrote, then evaluated
    on the same held-out problems. Registers `<profile>-<name>-replay` (no checkpoint); returns a StarResult of
    iteration 0 and the control. Iteration 1 against it separates what the model learned from its own rationales
    from what two more passes over the primer's worked examples teach (`StarResult.claim_beats_control`)."""
    from nbkit.runs import Registry

    if not cfg.replay_seed or cfg.seeding == "fewshot":
        raise ConfigError(
            "the replay control needs a primer whose rows every iteration replays (replay_seed=True)"
        )
    loop = Loop.start(
        cfg, registry or Registry(), dict(sample=None, train=train, evaluate=evaluate), progress
    )
    loop.primer()
    loop.seed_eval()
    name = cfg.run_name("replay")

    def build(writer):
        t0, (model, tok) = _now(), loop.model_of(loop.seed_run)
        records = primer_records(loop.task, loop.plain, loop.hinted)
        rows = _sft_rows(records)
        steps = cfg.steps(1, len(rows))
        loop.say(
            f"[star] control: {loop.seed_run} fine-tuned {steps} steps on its own {len(rows)} rows -> {name}"
        )
        student = train(
            cfg, copy.deepcopy(model), tok, rows, writer, steps=steps, lr=cfg.lr, progress=progress
        )
        ev = evaluate(cfg, student.model, tok, loop.task, loop.test, loop.task.chat, progress=progress)
        loop.say(f"[star] control: held-out accuracy {ev['accuracy']:.1%} {_fmt(ev)}")
        summary = dict(iteration=1, steps=steps, records=len(rows), **_eval_summary(ev), **_since(t0))
        loop.save(writer, None, None, {"eval.jsonl": ev["rows"]}, **summary)

    config = loop.config(iteration=1, control="primer rows only")
    loop.reg.ensure(name, "star-control", config, build, loop.seed_run, ignore=RESUMABLE_CHANGES)
    names = [cfg.run_name("iter0"), name]
    return StarResult(
        cfg, [loop.summary_of(n) for n in names], names, loop.seed_run, None, str(loop.reg.root)
    )


def dry_run(cfg: StarConfig, registry=None) -> str:
    """What `run(cfg, registry)` would do, without a model: the data it draws (`draw`), every run it would register
    with its optimizer steps, and which of them the registry holds already (`nbkit star --dry-run`). Iterations
    that train `train_epochs` over what was kept show the most steps they can take: every problem kept."""
    from nbkit.experiments import by_difficulty, n_steps, plan_text
    from nbkit.runs import Registry, base_run_name

    reg, task = registry or Registry(), build_task(cfg)
    if cfg.primer and not reg.exists(cfg.primer):
        raise ConfigError(f"primer run {cfg.primer!r} is not in {reg.root}; leave primer empty to train one")
    plain, hinted, problems, test = draw(cfg, task)
    base, seeds = base_run_name(cfg.model), len(plain) + len(hinted)
    seed_run = base if cfg.seeding == "fewshot" else (cfg.primer or cfg.run_name("primer"))
    runs = [(base, "base", f"{cfg.model} as it is", 0)]
    if seed_run == cfg.run_name("primer"):
        steps = max(1, math.ceil(seeds * cfg.primer_epochs / cfg.batch_size))
        runs.append((seed_run, "star-primer", f"SFT on {seeds} seed rationales, {n_steps(steps)}", steps))
    runs.append((cfg.run_name("iter0"), "star-iteration", f"{seed_run} on {len(test)} held-out problems", 0))
    replay = seeds if cfg.replay_seed and cfg.seeding != "fewshot" else 0
    for i in range(1, cfg.iterations + 1):
        steps = cfg.steps(i, len(problems) + replay)
        what = f"sample {len(problems)} x {cfg.samples_per_problem}"
        what += f", the misses {cfg.retry_samples} more at T={cfg.retry_temperature:g}" * bool(
            cfg.retry_samples
        )
        what += ", hint the misses" * cfg.rationalization
        what += f", SFT {'at most ' * (cfg.train_epochs > 0)}{n_steps(steps)}, evaluate {len(test)}"
        runs.append((cfg.run_name(f"iter{i}"), "star-iteration", what, steps))
    data = [
        f"model: {cfg.model} (not loaded); task: {cfg.task} {cfg.task_args}",
        f"seed rationales: {by_difficulty(plain)}"
        + (f", with a hint: {by_difficulty(hinted)}" * bool(hinted)),
        f"train problems, every iteration: {by_difficulty(problems)}",
        f"held-out problems: {by_difficulty(test)}",
    ]
    return plan_text(data, runs, reg)


@dataclass
class Loop:
    """What the stages of one STaR run share."""

    cfg: StarConfig
    reg: object  # nbkit.runs.Registry
    task: object
    plain: list  # seed examples, and those the primer sees with a hint
    hinted: list
    problems: list  # the train set every iteration goes over
    test: list
    stages: dict[str, Callable]  # sample, train, evaluate
    progress: bool = True
    base: str = ""
    seed_run: str = ""
    device: str = "auto"
    held: dict = field(default_factory=dict)  # run name -> (model, tokenizer) this process holds
    t0: tuple = (0.0, 0.0)  # when the current iteration started (wall, CPU)

    @classmethod
    def start(cls, cfg: StarConfig, reg, stages: dict, progress: bool = True) -> Loop:
        """Check the config against the registry, draw the data, register the base run."""
        from nbkit.runs import base_run

        task = build_task(cfg)
        if cfg.keep == "faithful" and task.faithful(task.train(1)[0], "") is None:
            raise ConfigError(
                f"keep='faithful' needs a task that can check each step; {cfg.task} cannot (use 'answer')"
            )
        if cfg.primer and not reg.exists(cfg.primer):
            raise ConfigError(
                f"primer run {cfg.primer!r} is not in {reg.root}; leave primer empty to train one"
            )
        reuse.refuse_old_layout(
            reg, [cfg.run_name("primer")] + [cfg.run_name(f"iter{i}") for i in range(cfg.iterations + 1)]
        )
        plain, hinted, problems, test = draw(cfg, task)
        loop = cls(cfg, reg, task, plain, hinted, problems, test, stages, progress)
        loop.device = str(dist.state().device) if dist.world() > 1 else "auto"
        loop.base = base_run(reg, cfg.model)
        loop.seed_run = loop.base if cfg.seeding == "fewshot" else (cfg.primer or cfg.run_name("primer"))
        dist.barrier()  # the base run is registered
        return loop

    # --- stages ---------------------------------------------------------------------------------------------

    def primer(self) -> None:
        """SFT of the base model on the seed rationales (with `primer_hints` of them hinted) -> the primer run."""
        cfg, plain, hinted = self.cfg, self.plain, self.hinted
        if self.seed_run != cfg.run_name("primer"):  # the few-shot seed, or a registered primer
            return

        def build(writer):
            self.say(
                f"[star] primer: SFT on {len(plain)} seed rationales + {len(hinted)} with a hint -> {self.seed_run}"
            )
            t0, (model, tok) = _now(), self.model_of(self.base)
            records = primer_records(self.task, plain, hinted)
            how = dict(steps=None, lr=cfg.primer_lr, epochs=cfg.primer_epochs, progress=self.progress)
            model = self.stages["train"](cfg, model, tok, records, writer, **how).model
            counts = dict(seed_examples=len(plain), hinted_examples=len(hinted), records=len(records))
            self.save(writer, model, tok, {"rationales.jsonl": records}, **counts, **_since(t0))
            self.held.pop(self.base)
            self.held[self.seed_run] = (model, tok)

        self.reg.ensure(
            self.seed_run, "star-primer", self.config(), build, self.base, ignore=RESUMABLE_CHANGES
        )

    def seed_eval(self) -> None:
        """Iteration 0: the seed model on the held-out problems (read back from another loop's, when it has one)."""
        cfg = self.cfg
        source = cfg.model if self.seed_run == self.base else self.reg.get(self.seed_run).model_source

        def build(writer):
            t0 = _now()
            ev = dist.broadcast(self.earlier_seed_eval() if dist.is_main() else None)
            ev = ev or self.stages["evaluate"](
                cfg, *self.model_of(self.seed_run), self.task, self.test, self.chat, progress=self.progress
            )
            self.say(
                f"[star] iteration 0 (seed {self.seed_run}): held-out accuracy {ev['accuracy']:.1%} {_fmt(ev)}"
            )
            summary = dict(iteration=0, **_eval_summary(ev), **_since(t0))
            self.save(writer, None, None, {"eval.jsonl": ev["rows"]}, **summary)

        # its "model" is the seed's checkpoint (what the compare app loads), whose path moves when runs are
        # imported; the primer run holds the config's model
        ignore = RESUMABLE_CHANGES | ({"model"} if source != cfg.model else set())
        config = self.config(iteration=0, model=source)
        self.reg.ensure(cfg.run_name("iter0"), "star-iteration", config, build, self.seed_run, ignore=ignore)

    def collect(self, i: int, current: str) -> tuple[list, list, dict] | None:
        """Steps 1-3 of iteration i: this process's shard of the problems gets a rationale from the latest model,
        kept when its answer is right; the failures are retried with the answer as a hint. Gathered over ranks.
        None when iteration i is registered already (from an earlier session: resume after it)."""
        cfg, task = self.cfg, self.task
        if dist.broadcast(self.reg.exists(cfg.run_name(f"iter{i}"))):
            return None
        self.t0, (model, tok) = _now(), self.model_of(current)  # the iteration's clock starts here
        mine = dist.shard(self.problems)
        texts = self.sample_once(
            current, model, tok, [self.chat(ex) for ex in mine], 1000 * cfg.seed + i, f"iter {i}: rationales"
        )
        rule = dict(faithful=cfg.keep == "faithful", worked=cfg.keep == "worked")
        kept, failed = filter_rationales(task, mine, texts, **rule)
        live.record_samples(task, mine, texts)  # the live view of a notebook cell, if any
        resampled = []
        if cfg.retry_samples and failed:  # more tries, at a temperature, for what the first pass got wrong
            retry = dataclasses.replace(
                cfg, samples_per_problem=cfg.retry_samples, temperature=cfg.retry_temperature
            )
            prompts, seed = [self.chat(ex) for ex in failed], 1000 * cfg.seed + 250 + i
            texts = self.sample_once(current, model, tok, prompts, seed, f"iter {i}: resampling", retry)
            resampled, failed = filter_rationales(task, failed, texts, **rule)
        rationalized = []
        if cfg.rationalization and failed:
            prompts, seed = [self.chat(ex, hint=ex.answer) for ex in failed], 1000 * cfg.seed + 500 + i
            texts = self.sample_once(current, model, tok, prompts, seed, f"iter {i}: rationalizing")
            rationalized, _ = filter_rationales(task, failed, texts, hinted=True, **rule)
        n_resampled = sum(dist.gather([len(resampled)]))
        kept, rationalized = dist.gather(kept + resampled), dist.gather(rationalized)
        stats = iteration_stats(len(self.problems), len(kept), len(rationalized))
        stats["resampled"] = n_resampled  # of the `correct`: right only on a retry
        stats["kept_by_difficulty"] = count_by_difficulty([ex for ex, _ in kept + rationalized])
        stats |= faithful_counts(task, kept, rationalized)
        stats["unworked_correct"] = sum(not r.strip() for _, r in kept)
        stats["unworked_rationalized"] = sum(not r.strip() for _, r in rationalized)
        stats["sampled_per_rank"] = dist.gather([len(mine)])
        stats["seconds_sampling"] = _since(self.t0)["seconds"]
        faithful = ""
        if "faithful_correct" in stats:
            faithful = (
                f"; right at every step: {stats['faithful_correct']} and {stats['faithful_rationalized']}"
            )
        retried = f" ({n_resampled} on a retry)" if cfg.retry_samples else ""
        self.say(
            f"[star] iteration {i}: {stats['correct']}/{stats['tried']} correct{retried}, {stats['rationalized']} "
            f"rationalized -> training on {stats['kept']} ({stats['used_fraction']:.0%} of the train set){faithful}"
        )
        return kept, rationalized, stats

    def fine_tune(self, i: int, current: str, gathered: tuple[list, list, dict] | None) -> str:
        """Steps 4-5 of iteration i: SFT of the seed model (paper: restart every iteration) on everything kept
        (`gathered` by `collect`), then the held-out evaluation; registers iteration i and returns its name."""
        cfg, task, name = self.cfg, self.task, self.cfg.run_name(f"iter{i}")
        start = self.seed_run if cfg.restart_from_base else current

        def build(w):
            kept, rationalized, stats = gathered
            replay = cfg.replay_seed and cfg.seeding != "fewshot"
            replay = primer_records(task, self.plain, self.hinted) if replay else []
            records = iteration_records(task, kept, rationalized, replay)
            model, tok = self.model_of(start)
            student = copy.deepcopy(model) if cfg.restart_from_base else model
            steps, t1 = cfg.steps(i, len(records)), _now()
            rows = _sft_rows(records)
            model = self.stages["train"](
                cfg, student, tok, rows, w, steps=steps, lr=cfg.lr, progress=self.progress
            ).model
            stats["seconds_training"], t2 = _since(t1)["seconds"], _now()
            ev = self.stages["evaluate"](cfg, model, tok, task, self.test, task.chat, progress=self.progress)
            live.note("held-out accuracy", ev["accuracy"])
            examples = {
                "direct": [_show(task, *k) for k in kept[:2]],
                "rationalized": [_show(task, *r) for r in rationalized[:2]],
            }
            summary = {"iteration": i, "steps": steps, **stats, **_eval_summary(ev)}
            summary |= {"seconds_eval": _since(t2)["seconds"], **_since(self.t0), "examples": examples}
            self.say(
                f"[star] iteration {i}: {steps} steps, held-out accuracy {ev['accuracy']:.1%} {_fmt(ev)}, "
                f"{summary['seconds']:.0f} s"
            )
            self.save(w, model, tok, {"rationales.jsonl": records, "eval.jsonl": ev["rows"]}, **summary)
            if current != self.seed_run:
                self.held.pop(current, None)
            self.held[name] = (model, tok)

        self.reg.ensure(
            name, "star-iteration", self.config(iteration=i), build, start, ignore=RESUMABLE_CHANGES
        )
        return name

    def nothing_kept(self, i: int, current: str, stats: dict) -> str:
        """Why the loop stops: iteration i kept nothing to fine-tune on."""
        why = (
            f"iteration {i}: none of the {stats['tried']} problems got a correct rationale"
            + (" even with the answer as a hint" if self.cfg.rationalization else "")
            + f", so there is nothing to fine-tune on and the loop stops. The model ({current}) cannot yet "
            "write what the answer check reads: prime it with more seed examples or epochs, use easier "
            "problems, sample more (samples_per_problem, temperature), or start from a larger model."
        )
        self.say(f"[star] {why}")
        return why

    # --- what the stages share -----------------------------------------------------------------------------

    def say(self, *args) -> None:
        if self.progress and dist.is_main():
            print(*args)

    def config(self, **stage) -> dict:
        """What a run of this loop records as its config: the whole StarConfig, then the stage's keys."""
        return {**dataclasses.asdict(self.cfg), **stage}

    def chat(self, ex, hint=None):
        """The prompt of one problem: the task's chat (or plain) prompt, or the few-shot prompt of the paper."""
        if self.cfg.seeding == "fewshot":
            return self.task.fewshot(self.plain, ex, hint)
        return self.task.chat(ex, hint)

    def model_of(self, run_name: str):
        """(model, tokenizer) of a registered run (the base run: the config's model), loaded once."""
        if run_name not in self.held:
            from nbkit.models import load

            source = self.cfg.model if run_name == self.base else self.reg.get(run_name).model_source
            self.held[run_name] = load(source, dtype="float32", device=self.device)
        return self.held[run_name]

    def save(self, writer, model, tok, files: dict[str, list[dict]], **summary) -> None:
        """A run's checkpoint, jsonl files, final metrics and summary (a NullRun, on the other processes, keeps
        nothing)."""
        if model is not None:
            writer.save_model(model, tok)
        for filename, rows in files.items():
            write_jsonl(writer.path / filename, rows)
        metrics = {f"eval/{k}": v for k, v in summary.items() if isinstance(v, (int, float))}
        writer.log(metrics, step=summary.get("steps"))
        writer.set_summary(**summary)

    def sample_once(
        self, source: str, model, tok, prompts: list, seed: int, desc: str, cfg=None
    ) -> list[list[str]]:
        """The `sample` stage, or what it gave before for the same model, prompts and settings (reuse.py); `cfg`:
        the loop's config with other sampling settings."""
        return reuse.samples(self, source, model, tok, prompts, seed, desc, cfg)

    def earlier_seed_eval(self) -> dict | None:
        """Another loop's held-out evaluation of the same seed model on the same problems, if any (reuse.py)."""
        return reuse.seed_eval(self)

    def summary_of(self, name: str) -> dict:
        """A registered iteration's summary, with its difficulty keys back to ints (JSON made them strings)."""
        summary = dict(self.reg.get(name).summary)
        for key in ("by_difficulty", "kept_by_difficulty"):
            if key in summary:
                summary[key] = {int(k) if str(k).isdigit() else k: v for k, v in summary[key].items()}
        return summary

    def result(self, names: list[str], stopped: str | None) -> StarResult:
        primer_name = self.cfg.run_name("primer")
        primer = (
            self.reg.get(primer_name).summary
            if self.seed_run == primer_name and self.reg.exists(primer_name)
            else {}
        )
        summaries = [self.summary_of(name) for name in names]
        return StarResult(self.cfg, summaries, names, self.seed_run, stopped, str(self.reg.root), primer)


# -------------------------------------------------------------------------------------------- small helpers


def _sft_rows(records: list[dict]) -> list[dict]:
    """What the trainer reads of iteration records: prompt and completion (not their `source`)."""
    return [{k: v for k, v in r.items() if k in {"prompt", "completion"}} for r in records]


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t0: tuple[float, float]) -> dict:
    """Wall-clock and CPU seconds (all threads: about what the wall time would be on an idle core) since t0."""
    return {"seconds": time.perf_counter() - t0[0], "cpu_seconds": time.process_time() - t0[1]}


def _fmt(ev: dict) -> str:
    return "(" + ", ".join(f"d{d}: {a:.0%}" for d, a in ev["by_difficulty"].items()) + ")"


def _show(task, ex, rationale: str) -> dict:
    return {"question": task.prompt(ex), "completion": task.target(ex, rationale)}


def _eval_summary(ev: dict) -> dict:
    flat = {f"accuracy_d{d}": a for d, a in ev["by_difficulty"].items()}
    out = {"accuracy": ev["accuracy"], "by_difficulty": ev["by_difficulty"], "n_test": ev["n"], **flat}
    return out | ({"eval_per_rank": ev["per_rank"]} if "per_rank" in ev else {})
