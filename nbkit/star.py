"""STaR (Zelikman et al., 2022): bootstrap a model's reasoning from its own rationales that reach the right answer.

One iteration of the loop:
1. sample a rationale for every training problem with the latest model;
2. keep those whose final answer is correct;
3. rationalization: for the failures, sample again with the correct answer given as a hint, keep those that now
   reach it, and store them *without* the hint;
4. fine-tune the seed model (not the latest one: the paper restarts every iteration) on everything kept, for a step
   count that grows 20% per iteration (40 steps in the first);
5. evaluate on held-out problems, register the checkpoint as a run, repeat.

What this simplifies relative to the paper:
- Seeding. The paper prompts GPT-J with a few rationale examples. A 135M model cannot pick up a scratchpad format
  from a prompt (measured: 0% on 2-digit addition; the paper reports the same for GPT-2), so the default seed is a
  small SFT *primer* on <= 64 rationale examples of easy problems, registered as its own run; each iteration then
  restarts from the primer. `seed="fewshot"` keeps the paper's prompt seed for capable models.
- Scale. Hundreds of problems and tens of steps instead of 10,000 problems and GPT-J; `for_profile` scales them.
- A rationalization that mentions the hint is dropped, since it would be trained without the hint.

Every iteration is a registered run ("<profile>-<name>-iter<i>", parent: the primer) holding its checkpoint, the
kept rationales (rationales.jsonl), the held-out completions (eval.jsonl) and a summary: tried, correct,
rationalized, fraction of the train set used, accuracy overall and per difficulty, seconds. Iteration 0 is the seed
model itself (no checkpoint of its own). A rerun continues after the last registered iteration.

    from nbkit.star import StarConfig, run_star
    result = run_star(StarConfig.for_profile("cpu"))
    result.frame()                          # one row per iteration

    nbkit star --config configs/star_arithmetic.yaml [--set iterations=5] [--runs DIR]
    accelerate launch -m nbkit.cli star --config ...   # every rank samples and evaluates its shard and trains
                                                       # (DDP); rank 0 alone writes the registry
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from nbkit.config import opt as _opt
from nbkit.errors import ConfigError, NbkitError

# Fields that may change between a run and its resumption without making the old iterations stale.
RESUMABLE_CHANGES = {"iterations", "sample_batch_size", "verbose"}


# What each profile changes from the paper's defaults (the gpu profile keeps most of them). cpu: measured on 2 cores,
# one STaR iteration from the same 1-2 digit primer, 48 held-out 3-digit sums (the 01 notebook, section 6):
# - plain "Question: a + b" prompts and column clauses: with the answer inline as a hint, SmolLM2-135M
#   rationalizes 126 of 130 failures (chat prompt, hint sentence: 27); 3-digit 0-2% -> 35-48% after iteration 1;
# - training volume: 2-3 epochs over primer rows + kept rows (60-95 steps of batch 8); 30 steps of batch 4 on
#   gold rationales reached 0 of 48;
# - a learning rate decaying to 0 (linear): 46% against 35% at a constant one.
# fmt: off
_PLAIN = {"scratchpad": "columns", "prompt": "plain"}
PROFILE_SIZES = {
    "smoke": dict(iterations=2, problems_per_iteration=12, seed_examples=8, step_scale=0.05, batch_size=4,
                  max_new_tokens=8, test_problems=6, primer_epochs=1.0, lr=1e-3, primer_lr=1e-3, verbose=False,
                  task_args={"digits": [1, 2, 3], **_PLAIN}),
    "cpu": dict(iterations=3, problems_per_iteration=192, seed_examples=64, primer_hints=0.0, batch_size=8,
                lr=5e-5, primer_lr=5e-5, lr_schedule="linear", train_epochs=2.0, replay_seed=True,
                max_new_tokens=132, test_problems=192, task_args={"digits": [1, 2, 3, 4], **_PLAIN}),
    # the paper's loop and step schedule on 1-5 digits, with what the cpu runs found: plain prompts, replay
    "gpu": dict(task_args={"digits": [1, 2, 3, 4, 5], **_PLAIN}, primer_hints=0.0, replay_seed=True,
                lr_schedule="linear", max_new_tokens=172),
}
# fmt: on


@dataclass
class StarConfig:
    """The loop's knobs. Defaults are the paper's (GPT-J on a TPU); `for_profile` scales them to a machine."""

    name: str = _opt("star", "runs are named <profile>-<name>-iter<i>")
    profile: str = _opt("gpu", "smoke | cpu | gpu: the sizes, and the run-name prefix")
    model: str = _opt("qwen2.5-0.5b", "short name, hub id or checkpoint directory")
    task: str = _opt("arithmetic", "arithmetic | gsm8k | multiple_choice")
    task_args: dict = _opt({"digits": [1, 2, 3]}, "task keyword arguments, e.g. {source: file.jsonl}")
    iterations: int = _opt(16, "outer loops (the paper's arithmetic runs 16)")
    problems_per_iteration: int = _opt(10_000, "the train set; every iteration tries all of it (paper: 10k)")
    rationalization: bool = _opt(True, "retry failures with the correct answer as a hint")
    keep: str = _opt(
        "answer",
        "answer: keep rationales that end right (paper) | worked: and that show some work before the answer"
        " | faithful: and that are right at every step",
    )
    restart_from_base: bool = _opt(True, "fine-tune the seed model every iteration (paper), else the latest")
    replay_seed: bool = _opt(
        False, "train every iteration on the primer's rows too, not only on what was kept (not in the paper)"
    )
    train_epochs: float = _opt(
        0.0, "> 0: each iteration trains this many epochs over its rows instead of the step schedule"
    )
    lr_schedule: str = _opt(
        "constant", "SFT learning-rate schedule: constant | linear (decays to 0 by the last step)"
    )
    first_steps: int = _opt(40, "optimizer steps in iteration 1 (paper: 40)")
    step_growth: float = _opt(0.2, "the step count grows by this share per iteration (paper: 20%)")
    step_scale: float = _opt(1.0, "multiplies the whole step schedule")
    batch_size: int = _opt(8, "SFT batch size (paper: 8)")
    lr: float = _opt(1e-5, "SFT learning rate (paper: 1e-6 for GPT-J 6B)")
    temperature: float = _opt(0.0, "rationale sampling temperature (paper: ~0, greedy)")
    samples_per_problem: int = _opt(1, "rationales sampled per problem (paper: 1)")
    max_new_tokens: int = _opt(128, "rationale length limit, in tokens")
    seed: str = _opt("primer", "primer (SFT on seed rationales, small models) | fewshot (the paper's prompt)")
    seed_examples: int = _opt(64, "rationale examples in the primer or the prompt")
    seed_task_args: dict | None = _opt({"digits": [1, 2]}, "arithmetic: task arguments of the (easy) seeds")
    seed_rationales: str | list | None = _opt(None, "jsonl file or list: task rows plus 'rationale' (seeds)")
    primer_hints: float = _opt(
        0.5, "share of the seed examples shown with the answer as a hint (see seed_examples)"
    )
    primer_epochs: float = _opt(3.0, "epochs of the primer SFT")
    primer_lr: float = _opt(5e-5, "learning rate of the primer SFT")
    primer: str | None = _opt(None, "start from this registered primer run instead of training one")
    test_problems: int = _opt(300, "held-out problems evaluated every iteration")
    sample_batch_size: int = _opt(64, "completions per generate() call")
    rng_seed: int = _opt(0, "seeds problem draws, sampling and training")
    verbose: bool = _opt(True, "print one line per stage, and progress bars")

    @classmethod
    def for_profile(cls, name: str) -> StarConfig:
        """smoke: tiny model, seconds. cpu: SmolLM2-135M, >= 3 iterations in ~15 min on 2 cores. gpu: paper-ish."""
        from nbkit.profiles import PROFILES

        if name not in PROFILES:
            raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
        return cls(profile=name, model=PROFILES[name].model, **PROFILE_SIZES.get(name, {}))

    def steps(self, iteration: int, rows: int = 0) -> int:
        """Optimizer steps of iteration i: the paper's schedule, or `train_epochs` over `rows` training rows."""
        if self.train_epochs > 0:
            return max(1, math.ceil(rows * self.train_epochs / self.batch_size))
        return step_schedule(iteration, self.first_steps, self.step_growth, self.step_scale)

    def run_name(self, what: str | int) -> str:
        return f"{self.profile}-{self.name}-" + (f"iter{what}" if isinstance(what, int) else what)


# ----------------------------------------------------------------------------------------------------- the maths


def step_schedule(iteration: int, first: int = 40, growth: float = 0.2, scale: float = 1.0) -> int:
    """Optimizer steps of iteration i >= 1: floor(first * scale * (1 + growth)^(i - 1)), at least 1.

    Example: iterations 1..5 with the paper's defaults -> 40, 48, 57, 69, 82 (the official code floors too).
    """
    return max(1, int(first * scale * (1.0 + growth) ** (iteration - 1) + 1e-9))


def split_rationale(text: str, answer_prefix: str = "Answer:") -> str:
    """The rationale part of a completion: everything before its last answer line.

    Example: "2+3=5 -> 5\\nAnswer: 5" -> "2+3=5 -> 5"
    """
    cut = text.rfind(answer_prefix)
    return (text[:cut] if cut >= 0 else text).rstrip()


def filter_rationales(
    task,
    problems: list,
    texts: list[list[str]],
    hinted: bool = False,
    faithful: bool = False,
    worked: bool = False,
) -> tuple[list, list]:
    """STaR's filter. texts: shape (n_problems, k). Returns (kept, failed).

    kept: [(example, rationale)], the first correct completion of each problem; failed: problems with none.
    A hinted completion that mentions the hint is not kept: it would be trained on without the hint.
    faithful: also require every step to be right (`task.faithful`), not only the answer (not in the paper).
    worked: also require some rationale before the answer line, right or wrong (not in the paper).
    Example: problems [2+3, 4+4], texts [["...Answer: 5"], ["...Answer: 9"]] -> ([(2+3, "...")], [4+4]).
    """
    if len(texts) != len(problems):
        raise ValueError(f"{len(problems)} problems but {len(texts)} groups of completions")
    kept, failed = [], []
    for ex, group in zip(problems, texts):
        good = (
            split_rationale(t, task.answer_prefix)
            for t in group
            if task.is_correct(t, ex) and not (hinted and "hint" in t.lower())
        )
        first = next(
            (r for r in good if (not faithful or task.faithful(ex, r)) and (not worked or r.strip())), None
        )
        if first is not None:
            kept.append((ex, first))
        else:
            failed.append(ex)
    return kept, failed


def iteration_stats(n_problems: int, n_correct: int, n_rationalized: int) -> dict:
    """Example: (200, 90, 30) -> {"tried": 200, "correct": 90, "rationalized": 30, "kept": 120,
    "used_fraction": 0.6, "correct_fraction": 0.45}"""
    kept = n_correct + n_rationalized
    return {
        "tried": n_problems,
        "correct": n_correct,
        "rationalized": n_rationalized,
        "kept": kept,
        "used_fraction": kept / n_problems if n_problems else 0.0,
        "correct_fraction": n_correct / n_problems if n_problems else 0.0,
    }


def faithful_counts(task, kept: list, rationalized: list) -> dict:
    """How many kept rationales are right at every step, not only at the end (tasks that can tell; else {}).

    STaR cannot see this; it is a diagnostic. A small model given the answer as a hint often writes wrong steps
    and then copies the hint, and those rationales are trained on like the others.
    Example: 3 kept (all faithful), 4 rationalized (1 faithful) -> {"faithful_correct": 3, "faithful_rationalized": 1}
    """
    checks = {
        name: [task.faithful(ex, r) for ex, r in pairs]
        for name, pairs in (("faithful_correct", kept), ("faithful_rationalized", rationalized))
    }
    if any(v is None for vs in checks.values() for v in vs):
        return {}
    return {name: sum(vs) for name, vs in checks.items()}


# ------------------------------------------------------------------------------------------- config and data


def validate(cfg: StarConfig) -> None:
    """Fail at once, with one line, on a config that cannot work."""
    from nbkit.tasks import TASKS

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    need(cfg.task in TASKS, f"unknown task {cfg.task!r}; known tasks: {', '.join(TASKS)}")
    need(
        cfg.problems_per_iteration >= 1,
        f"problems_per_iteration must be >= 1 (got {cfg.problems_per_iteration})",
    )
    need(cfg.seed in {"primer", "fewshot"}, f"seed must be 'primer' or 'fewshot', got {cfg.seed!r}")
    need(
        cfg.seed_examples >= 1, f"seed_examples must be >= 1 (got {cfg.seed_examples}): the loop needs a few"
    )
    need(cfg.iterations >= 1, f"iterations must be >= 1, got {cfg.iterations}")
    need(0 <= cfg.primer_hints < 1, f"primer_hints is a share in [0, 1), got {cfg.primer_hints}")
    need(cfg.samples_per_problem >= 1, f"samples_per_problem must be >= 1, got {cfg.samples_per_problem}")
    need(cfg.temperature >= 0, f"temperature must be >= 0, got {cfg.temperature}")
    need(
        cfg.keep in {"answer", "worked", "faithful"},
        f"keep must be 'answer', 'worked' or 'faithful', got {cfg.keep!r}",
    )
    need(
        cfg.first_steps >= 1 and cfg.step_scale > 0 and cfg.step_growth >= 0,
        "first_steps must be >= 1, "
        f"step_scale > 0, step_growth >= 0; got {cfg.first_steps}, {cfg.step_scale}, {cfg.step_growth}",
    )
    need(cfg.train_epochs >= 0, f"train_epochs must be >= 0 (0: the step schedule), got {cfg.train_epochs}")
    need(
        cfg.lr_schedule in {"constant", "linear"},
        f"lr_schedule must be constant or linear, got {cfg.lr_schedule!r}",
    )
    need(cfg.lr > 0 and cfg.primer_lr > 0, f"lr and primer_lr must be > 0, got {cfg.lr}, {cfg.primer_lr}")
    need(
        min(cfg.batch_size, cfg.sample_batch_size, cfg.test_problems, cfg.max_new_tokens) >= 1,
        "batch_size, sample_batch_size, test_problems and max_new_tokens must be >= 1",
    )
    need(bool(cfg.name) and "/" not in cfg.name, f"name must be a plain word, got {cfg.name!r}")


def build_task(cfg: StarConfig, seed_side: bool = False):
    from nbkit.tasks import get_task

    args = dict(cfg.task_args or {})
    if seed_side and cfg.seed_task_args is not None and cfg.task == "arithmetic":
        args |= cfg.seed_task_args  # e.g. easier digits; the format and system turn stay the task's
    if cfg.task == "arithmetic":
        args.setdefault("seed", cfg.rng_seed)
    try:
        return get_task(cfg.task, **args)
    except NbkitError as e:
        raise ConfigError(f"task {cfg.task!r} with {args}: {e}") from e
    except TypeError as e:
        raise ConfigError(f"task {cfg.task!r} does not take arguments {args}: {e}") from e


def seed_examples(cfg: StarConfig, task) -> tuple[list, list]:
    """(plain, hinted): the worked examples the primer (or the few-shot prompt) shows, and those the primer sees
    with the answer as a hint.

    The hinted ones demonstrate rationalization, as the paper's hint prompt does with worked examples and their
    answers: `primer_hints` of the `seed_examples`, drawn for arithmetic from the whole task (every digit count)
    while the plain ones come from the easy `seed_task_args`. The few-shot seed shows every example plainly.
    """
    n_hint = round(cfg.seed_examples * cfg.primer_hints) if cfg.seed == "primer" else 0
    n_plain = cfg.seed_examples - n_hint
    rows = cfg.seed_rationales
    if isinstance(rows, str):
        path = Path(rows).expanduser()
        if not path.exists():
            raise ConfigError(f"seed_rationales file {path} does not exist")
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if rows:
        if not hasattr(task, "parse"):
            raise ConfigError(
                f"seed_rationales are for loaded tasks (gsm8k, multiple_choice), not {cfg.task}"
            )
        if any(not row.get("rationale") for row in rows):
            raise ConfigError("every seed_rationales row needs a 'rationale' field")
        pool = [dataclasses.replace(task.parse(r), rationale=str(r["rationale"])) for r in rows]
    elif cfg.task == "arithmetic":
        plain = build_task(cfg, seed_side=True).train(n_plain, salt="star-seed")
        return plain, task.train(n_hint, salt="star-hint")
    else:
        pool = [ex for ex in task.train(cfg.seed_examples, salt="star-seed") if ex.rationale]
    if not pool:
        raise ConfigError(
            f"no seed examples: task {cfg.task!r} has no gold rationales; give seed_rationales (a jsonl file of "
            "rows in the task's format with a 'rationale' field)"
        )
    pool = pool[: cfg.seed_examples]
    cut = max(1, round(len(pool) * (1 - n_hint / cfg.seed_examples)))
    return pool[:cut], pool[cut:]


def primer_records(task, plain: list, hinted: list) -> list[dict]:
    """SFT rows for the primer: the plain examples, then the hinted ones with "(Hint: the answer is N.)" in the
    prompt and the same kind of rationale as the answer (so the primer learns to use a hint: rationalization).

    Example: 2 plain, 1 hinted -> 3 rows; the last prompt ends with "(Hint: the answer is 11.)".
    """
    rows = [task.sft_record(ex) for ex in plain]
    return rows + [dict(task.sft_record(ex), prompt=task.chat(ex, hint=ex.answer)) for ex in hinted]


def train_problems(cfg: StarConfig, task, seeds: list) -> list:
    """The fixed train set every iteration goes over (without the seed questions, for loaded datasets)."""
    taken = {ex.question for ex in seeds} if cfg.task != "arithmetic" else set()  # arithmetic: pools are tiny
    pool = task.train(
        cfg.problems_per_iteration + (0 if cfg.task == "arithmetic" else len(seeds)), salt="star-train"
    )
    problems = [ex for ex in pool if ex.question not in taken][: cfg.problems_per_iteration]
    if not problems:
        raise ConfigError(
            f"no training problems left for task {cfg.task!r} after setting the seed examples aside"
        )
    return problems


def held_out(task, n: int) -> list:
    """n test problems. Arithmetic: n / len(digits) per digit count (all 20 1-digit ones when fewer exist)."""
    from nbkit.tasks import Arithmetic
    from nbkit.tasks.arithmetic import in_test_split

    if not isinstance(task, Arithmetic):
        return task.test(n)
    out = []
    for d in task.digits:
        want = n // len(task.digits)
        if d == 1:
            want = min(want, sum(in_test_split(a, b) for a in range(10) for b in range(10)))
        out += Arithmetic((d,), seed=task.seed).test(want)
    return out


# ------------------------------------------------------------------------------------------ distributed glue


def _dist() -> tuple[int, int, str]:
    """(rank, world size, device). Under `accelerate launch` this also initializes the process group."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, "auto"
    from accelerate import PartialState

    state = PartialState()
    return state.process_index, state.num_processes, str(state.device)


def _gather(items: list, world: int) -> list:
    """Every rank's list, concatenated in rank order (a no-op on one process)."""
    if world == 1:
        return items
    import torch.distributed as dist

    out = [None] * world
    dist.all_gather_object(out, items)
    return [x for part in out for x in part]


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


# --------------------------------------------------------------------------------------------------- results


@dataclass
class StarResult:
    config: StarConfig
    iterations: list[dict]  # summaries, iteration 0 (the seed model) first
    runs: list[str]  # the registered run of each iteration
    seed_run: str  # the primer (or base) every iteration restarts from
    stopped: str | None = None  # why the loop ended early, if it did
    registry_root: str = ""
    primer: dict = field(default_factory=dict)  # the primer run's summary, when this loop trained it

    def frame(self):
        """One row per iteration: data kept, steps, accuracy overall and per difficulty, seconds."""
        import pandas as pd

        cols = ["iteration", "tried", "correct", "rationalized", "used_fraction", "steps", "accuracy"]
        extra = ["faithful_correct", "faithful_rationalized", "unworked_correct", "unworked_rationalized"]
        extra = [k for k in extra if any(k in s for s in self.iterations)]
        return pd.DataFrame(
            {
                **{c: s.get(c) for c in cols + extra},
                **{f"acc_d{d}": a for d, a in s["by_difficulty"].items()},
                "seconds": s.get("seconds"),
            }
            for s in self.iterations
        )

    def eval_rows(self, iteration: int) -> list[dict]:
        """The held-out completions of one iteration (question, answer, completion, correct, difficulty)."""
        return _read_jsonl(Path(self.registry_root) / self.runs[iteration] / "eval.jsonl")

    def work_frame(self):
        """Per iteration and difficulty: accuracy, the share of held-out answers that show any work before the
        answer line, and the share that is right *and* shows work. STaR's answer-only filter cannot tell a worked
        answer from a bare one."""
        import pandas as pd

        out = []
        for i in range(len(self.runs)):
            by = {}
            for row in self.eval_rows(i):
                by.setdefault(row["difficulty"], []).append(row)
            for d, rows in sorted(by.items()):
                worked = [r for r in rows if split_rationale(r["completion"]).strip()]
                out.append(
                    {
                        "iteration": i,
                        "difficulty": d,
                        "n": len(rows),
                        "accuracy": sum(r["correct"] for r in rows) / len(rows),
                        "shows_work": len(worked) / len(rows),
                        "correct_with_work": sum(r["correct"] for r in worked) / len(rows),
                    }
                )
        return pd.DataFrame(out)

    def before_after(self, difficulty: int | None = None, n: int = 3) -> list[dict]:
        """Held-out questions with the seed model's completion and the last iteration's, fixed ones first."""
        pairs = [
            {
                "question": a["question"],
                "answer": a["answer"],
                "before": a["completion"],
                "before_correct": a["correct"],
                "after": b["completion"],
                "after_correct": b["correct"],
            }
            for a, b in zip(self.eval_rows(0), self.eval_rows(len(self.runs) - 1))
            if difficulty is None or a["difficulty"] == difficulty
        ]
        return sorted(pairs, key=lambda p: (p["before_correct"], not p["after_correct"]))[:n]

    def timing(self) -> dict:
        """Wall-clock seconds per stage (primer, iteration 0 = its evaluation, 1..n) and in all; CPU seconds."""
        stages = {"primer": self.primer.get("seconds", 0.0)}
        stages |= {f"iteration {s['iteration']}": s.get("seconds", 0.0) for s in self.iterations}
        cpu = self.primer.get("cpu_seconds", 0.0) + sum(s.get("cpu_seconds", 0.0) for s in self.iterations)
        return {**stages, "total": sum(stages.values()), "total_cpu": cpu}

    def say(self) -> str:
        lines = [
            f"{r}: accuracy {s['accuracy']:.1%}"
            + (
                f", trained on {s['used_fraction']:.0%} of the train set"
                if "used_fraction" in s
                else " (seed)"
            )
            for r, s in zip(self.runs, self.iterations)
        ]
        return "\n".join(lines + ([f"stopped early: {self.stopped}"] if self.stopped else []))


def plot(result: StarResult, ax=None):
    """Held-out accuracy per iteration, one line per difficulty (the paper's arithmetic figure) plus overall."""
    import matplotlib.pyplot as plt

    from nbkit.plots import caption

    df = result.frame()
    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    unit = "-digit" if result.config.task == "arithmetic" else " (difficulty)"
    for col in [c for c in df.columns if c.startswith("acc_d")]:
        ax.plot(df["iteration"], df[col], marker="o", label=f"{col[5:]}{unit}")
    ax.plot(df["iteration"], df["accuracy"], "k--", marker="s", label="overall")
    ax.set(xlabel="STaR iteration (0 = seed model)", ylabel="held-out accuracy", ylim=(-0.03, 1.03))
    ax.set_title(f"STaR on {result.config.task}\n{caption(result.config.profile)}", fontsize=9)
    ax.set_xticks(list(df["iteration"]))
    ax.legend(fontsize=8)
    return ax


def plot_work(result: StarResult, ax=None):
    """Per difficulty and iteration: held-out accuracy (solid) and the share right *with* work shown (dashed).
    Where the lines part, the model answers without its scratchpad."""
    import matplotlib.pyplot as plt

    from nbkit.plots import caption

    df = result.work_frame()
    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    unit = "-digit" if result.config.task == "arithmetic" else ""
    for d, part in df.groupby("difficulty"):
        line = ax.plot(part["iteration"], part["accuracy"], marker="o", label=f"{d}{unit}: right")[0]
        ax.plot(
            part["iteration"], part["correct_with_work"], ls="--", marker="x", color=line.get_color(),
            label=f"{d}{unit}: right, with work shown",
        )  # fmt: skip
    ax.set(xlabel="STaR iteration (0 = seed model)", ylabel="share of held-out problems", ylim=(-0.03, 1.03))
    ax.set_title(f"Right answers, with and without a rationale\n{caption(result.config.profile)}", fontsize=9)
    ax.set_xticks(sorted(df["iteration"].unique()))
    ax.legend(fontsize=7)
    return ax


# ---------------------------------------------------------------------------------------------------- claims


def correct_vector(result: StarResult, iteration: int, difficulty: int | None = None) -> list[float]:
    """Per held-out problem 1.0 / 0.0, in the evaluation's fixed order (the same problems every iteration)."""
    rows = result.eval_rows(iteration)
    return [float(r["correct"]) for r in rows if difficulty is None or r["difficulty"] == difficulty]


def claim_accuracy_rises(result: StarResult, iteration: int = -1):
    """Paper: held-out accuracy rises over STaR iterations. Paired over held-out problems, seed vs `iteration`."""
    from nbkit.claims import paired

    i = iteration % len(result.runs)
    return paired(
        correct_vector(result, i), correct_vector(result, 0),
        f"held-out accuracy, iteration {i} minus the seed model's",
    )  # fmt: skip


def claim_difficulty_rises(result: StarResult, difficulty: int, iteration: int = 1):
    """Paper (arithmetic figure): the loop teaches longer sums than the seed could do. Paired over the held-out
    problems of one difficulty, seed vs `iteration`."""
    from nbkit.claims import paired

    i = iteration % len(result.runs)
    return paired(
        correct_vector(result, i, difficulty), correct_vector(result, 0, difficulty),
        f"{difficulty}-digit accuracy, iteration {i} minus the seed model's",
    )  # fmt: skip


def claim_rationalization_uses_more(result: StarResult, without: StarResult, iteration: int = 1):
    """Paper (86.7% vs 69.7% on CommonsenseQA): rationalization trains on more of the train set.

    Paired over the train problems. Both arms sample the same problems from the same seed model with the same
    seed, so the problems kept without rationalization are exactly those solved directly in both arms; the
    per-problem difference is 1 for each rationalized problem and 0 elsewhere (the kept sets are nested).
    """
    from nbkit.claims import paired

    n, w, wo = (
        result.iterations[iteration]["tried"],
        result.iterations[iteration],
        without.iterations[iteration],
    )
    return paired(
        [1.0] * w["kept"] + [0.0] * (n - w["kept"]), [1.0] * wo["kept"] + [0.0] * (n - wo["kept"]),
        f"share of the train set kept in iteration {iteration}, with rationalization minus without",
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------- the loop


def run_star(cfg: StarConfig, registry=None) -> StarResult:
    """Run (or resume) the STaR loop described by `cfg`; returns every iteration's summary."""
    from nbkit import live
    from nbkit.runs import Registry

    validate(cfg)
    say = print if cfg.verbose else (lambda *a, **k: None)
    rank, world, device = _dist()
    main = rank == 0
    reg = registry or Registry()
    task = build_task(cfg)
    if cfg.keep == "faithful" and task.faithful(task.train(1)[0], "") is None:
        raise ConfigError(
            f"keep='faithful' needs a task that can check each step; {cfg.task} cannot (use 'answer')"
        )
    plain, hinted = seed_examples(cfg, task)
    problems, test = train_problems(cfg, task, plain + hinted), held_out(task, cfg.test_problems)
    star_cfg = {"star": dataclasses.asdict(cfg)}
    for i in range(cfg.iterations + 1):
        _check_resumable(reg, cfg, cfg.run_name(i))
    fewshot = cfg.seed == "fewshot"

    def chat(ex, hint=None):
        return task.fewshot(plain, ex, hint) if fewshot else task.chat(ex, hint)

    def create(name: str, kind: str, parent: str | None, config: dict):
        return reg.create(name, kind=kind, config={**config, **star_cfg}, parent=parent) if main else None

    # --- the base run, and the seed run every iteration restarts from (the primer, or the base for few-shot) ----
    base = cfg.run_name("base")
    if main and not reg.exists(base):
        with reg.create(base, kind="base", config={"model": cfg.model}):
            pass
    seed_run = base if fewshot else (cfg.primer or cfg.run_name("primer"))
    if cfg.primer and not reg.exists(cfg.primer):
        raise ConfigError(f"primer run {cfg.primer!r} is not in {reg.root}; leave primer empty to train one")
    held: dict[str, tuple] = {}  # run name -> (model, tokenizer) this process holds

    def model_of(run_name: str):
        if run_name not in held:
            source = cfg.model if run_name == base else reg.get(run_name).model_source
            held[run_name] = load_model(source, dtype="float32", device=device)
        return held[run_name]

    if not reg.exists(seed_run):  # the primer (a base run always exists on rank 0 by now)
        say(f"[star] primer: SFT on {len(plain)} seed rationales + {len(hinted)} with a hint -> {seed_run}")
        t0, (model, tok) = _now(), model_of(base)
        records = primer_records(task, plain, hinted)
        writer = create(seed_run, "star-primer", base, {"model": cfg.model})
        with writer or contextlib.nullcontext():
            model = _sft(
                cfg, model, tok, records, None, cfg.primer_lr, writer, epochs=cfg.primer_epochs
            ).model
            _save(
                writer,
                model,
                tok,
                {"rationales.jsonl": records},
                seed_examples=len(plain),
                hinted_examples=len(hinted),
                records=len(records),
                **_since(t0),
            )
        held.pop(base)
        held[seed_run] = (model, tok)
        _barrier(world)

    # --- iteration 0: the seed model, evaluated ----------------------------------------------------------------
    if not reg.exists(cfg.run_name(0)):
        t0 = _now()
        ev = _earlier_seed_eval(reg, cfg, seed_run) or _evaluate(
            cfg, task, *model_of(seed_run), test, chat, world
        )
        say(f"[star] iteration 0 (seed {seed_run}): held-out accuracy {ev['accuracy']:.1%} {_fmt(ev)}")
        source = cfg.model if seed_run == base else reg.get(seed_run).model_source
        writer = create(cfg.run_name(0), "star-iteration", seed_run, {"model": source, "iteration": 0})
        with writer or contextlib.nullcontext():
            _save(
                writer, None, None, {"eval.jsonl": ev["rows"]}, iteration=0, **_eval_summary(ev), **_since(t0)
            )
        _barrier(world)
    summaries, names = [_summary_of(reg, cfg.run_name(0))], [cfg.run_name(0)]

    stopped, current = None, seed_run
    for i in range(1, cfg.iterations + 1):
        name = cfg.run_name(i)
        if reg.exists(name):  # done in an earlier session: resume after it
            summaries.append(_summary_of(reg, name))
            names.append(name)
            current = name
            continue
        t0, (model, tok) = _now(), model_of(current)
        # 1-2: a rationale for every problem from the latest model, kept when its answer is right
        mine = problems[rank::world]
        prompts = [chat(ex) for ex in mine]
        texts = _sample_once(
            reg,
            current,
            cfg,
            model,
            tok,
            prompts,
            1000 * cfg.rng_seed + i,
            f"iter {i}: rationales",
            task.uses_chat,
        )
        rule = dict(faithful=cfg.keep == "faithful", worked=cfg.keep == "worked")
        kept, failed = filter_rationales(task, mine, texts, **rule)
        live.record_samples(task, mine, texts)  # the live view of a notebook cell, if any
        # 3: rationalization: the answer as a hint in the prompt; what is kept is trained on without it
        rationalized = []
        if cfg.rationalization and failed:
            hint_chats = [chat(ex, hint=ex.answer) for ex in failed]
            seed, desc = 1000 * cfg.rng_seed + 500 + i, f"iter {i}: rationalizing"
            texts = _sample_once(reg, current, cfg, model, tok, hint_chats, seed, desc, task.uses_chat)
            rationalized, _ = filter_rationales(task, failed, texts, hinted=True, **rule)
        kept, rationalized = _gather(kept, world), _gather(rationalized, world)
        stats = iteration_stats(len(problems), len(kept), len(rationalized))
        stats["kept_by_difficulty"] = _count_by_difficulty([ex for ex, _ in kept + rationalized])
        stats.update(faithful_counts(task, kept, rationalized))
        stats["unworked_correct"] = sum(not r.strip() for _, r in kept)
        stats["unworked_rationalized"] = sum(not r.strip() for _, r in rationalized)
        stats["seconds_sampling"] = _since(t0)["seconds"]
        say(
            f"[star] iteration {i}: {stats['correct']}/{stats['tried']} correct, {stats['rationalized']} "
            f"rationalized -> training on {stats['kept']} ({stats['used_fraction']:.0%} of the train set)"
            + (
                f"; right at every step: {stats['faithful_correct']} and {stats['faithful_rationalized']}"
                if "faithful_correct" in stats
                else ""
            )
        )
        if stats["kept"] == 0:
            stopped = (
                f"iteration {i}: none of the {stats['tried']} problems got a correct rationale"
                + (" even with the answer as a hint" if cfg.rationalization else "")
                + f", so there is nothing to fine-tune on and the loop stops. The model ({current}) cannot yet "
                "write what the answer check reads: prime it with more seed examples or epochs, use easier "
                "problems, sample more (samples_per_problem, temperature), or start from a larger model."
            )
            say(f"[star] {stopped}")
            break
        # 4: fine-tune the seed model (paper: restart every iteration) on everything kept
        records = [dict(task.sft_record(ex, r), source="direct") for ex, r in kept]
        records += [dict(task.sft_record(ex, r), source="rationalized") for ex, r in rationalized]
        if cfg.replay_seed and not fewshot:
            records += [dict(r, source="primer") for r in primer_records(task, plain, hinted)]
        start = seed_run if cfg.restart_from_base else current
        student = copy.deepcopy(model_of(start)[0]) if cfg.restart_from_base else model
        steps = cfg.steps(i, len(records))
        writer = create(name, "star-iteration", start, {"model": cfg.model, "iteration": i, "steps": steps})
        with writer or contextlib.nullcontext():
            t1 = _now()
            model = _sft(cfg, student, tok, [_strip(r) for r in records], steps, cfg.lr, writer).model
            stats["seconds_training"], t2 = _since(t1)["seconds"], _now()
            # 5: held-out evaluation
            ev = _evaluate(cfg, task, model, tok, test, task.chat, world)
            live.note("held-out accuracy", ev["accuracy"])
            examples = {
                "direct": [_show(task, *k) for k in kept[:2]],
                "rationalized": [_show(task, *r) for r in rationalized[:2]],
            }
            summary = {
                "iteration": i,
                "steps": steps,
                **stats,
                **_eval_summary(ev),
                "seconds_eval": _since(t2)["seconds"],
                **_since(t0),
                "examples": examples,
            }
            say(
                f"[star] iteration {i}: {steps} steps, held-out accuracy {ev['accuracy']:.1%} {_fmt(ev)}, "
                f"{summary['seconds']:.0f} s"
            )
            _save(writer, model, tok, {"rationales.jsonl": records, "eval.jsonl": ev["rows"]}, **summary)
        _barrier(world)
        if current != seed_run:
            held.pop(current, None)
        held[name], current = (model, tok), name
        summaries.append(_int_keys(json.loads(json.dumps(summary, default=str))))
        names.append(name)
    primer = reg.get(seed_run).summary if seed_run == cfg.run_name("primer") and reg.exists(seed_run) else {}
    return StarResult(cfg, summaries, names, seed_run, stopped, str(reg.root), primer)


# -------------------------------------------------------------------------------------------- small helpers


def load_model(source: str, dtype: str = "float32", device: str = "auto"):
    from nbkit.models import load

    return load(source, dtype=dtype, device=device)


def _check_resumable(reg, cfg: StarConfig, name: str) -> None:
    """Refuse to continue a loop whose registered iterations were made with another config."""
    if not reg.exists(name):
        return
    old, new = reg.get(name).config.get("star", {}), dataclasses.asdict(cfg)
    diff = sorted(k for k in new if k not in RESUMABLE_CHANGES and k in old and old[k] != new[k])
    if diff:
        raise ConfigError(
            f"run {name!r} was made with a different config ({diff[0]}: {old[diff[0]]!r} there, "
            f"{new[diff[0]]!r} now); give this loop another name or delete the {cfg.profile}-{cfg.name}-* runs"
        )


def _earlier_seed_eval(reg, cfg: StarConfig, seed_run: str) -> dict | None:
    """Another loop's held-out evaluation of the same seed model on the same problems, if there is one (the
    ablation reuses the main loop's primer: no need to evaluate it twice)."""
    from nbkit.tasks.base import accuracy_table

    same = ("task", "task_args", "test_problems", "max_new_tokens", "seed", "seed_examples", "rng_seed")
    mine = dataclasses.asdict(cfg)
    for run in reg.list():
        theirs = run.config.get("star", {})
        if (
            run.parent == seed_run
            and run.config.get("iteration") == 0
            and all(theirs.get(k) == mine[k] for k in same)
        ):
            rows = _read_jsonl(run.path / "eval.jsonl")
            return {**accuracy_table(rows), "rows": rows}
    return None


def _save(writer, model, tok, files: dict[str, list[dict]], **summary) -> None:
    """Write a run's checkpoint, jsonl files, final metrics and summary (rank 0 only: others have no writer)."""
    if writer is None:
        return
    if model is not None:
        writer.save_model(model, tok)
    for filename, rows in files.items():
        (writer.path / filename).write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    writer.log(
        {f"eval/{k}": v for k, v in summary.items() if isinstance(v, (int, float))}, step=summary.get("steps")
    )
    writer.set_summary(**summary)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t0: tuple[float, float]) -> dict:
    """Wall-clock and CPU seconds (all threads: about what the wall time would be on an idle core) since t0."""
    return {"seconds": time.perf_counter() - t0[0], "cpu_seconds": time.process_time() - t0[1]}


def _fmt(ev: dict) -> str:
    return "(" + ", ".join(f"d{d}: {a:.0%}" for d, a in ev["by_difficulty"].items()) + ")"


def _count_by_difficulty(examples: list) -> dict:
    """Example: examples of difficulty [1, 3, 3] -> {1: 1, 3: 2}"""
    out: dict = {}
    for ex in examples:
        out[ex.difficulty] = out.get(ex.difficulty, 0) + 1
    return dict(sorted(out.items()))


def _show(task, ex, rationale: str) -> dict:
    return {"question": task.prompt(ex), "completion": task.target(ex, rationale)}


def _strip(record: dict) -> dict:
    return {k: v for k, v in record.items() if k in {"prompt", "completion"}}


def _eval_summary(ev: dict) -> dict:
    flat = {f"accuracy_d{d}": a for d, a in ev["by_difficulty"].items()}
    return {"accuracy": ev["accuracy"], "by_difficulty": ev["by_difficulty"], "n_test": ev["n"], **flat}


def _summary_of(reg, name: str) -> dict:
    """A registered iteration's summary, with its difficulty keys back to ints (JSON made them strings)."""
    return _int_keys(dict(reg.get(name).summary))


def _int_keys(summary: dict) -> dict:
    for key in ("by_difficulty", "kept_by_difficulty"):
        if key in summary:
            summary[key] = {int(k) if str(k).isdigit() else k: v for k, v in summary[key].items()}
    return summary


def _sample(
    cfg: StarConfig, model, tok, chats: list, seed: int, desc: str, chat: bool = True
) -> list[list[str]]:
    """cfg.samples_per_problem completions per prompt, shape (n_prompts, k); `chat`: prompts are messages."""
    from nbkit.sampling import sample

    if not chats:
        return []
    opts = dict(
        temperature=cfg.temperature, batch_size=cfg.sample_batch_size, progress=cfg.verbose, desc=desc
    )
    return sample(
        model, tok, chats, cfg.samples_per_problem, cfg.max_new_tokens, seed=seed, chat=chat, **opts
    ).texts()


def _sample_once(
    reg, source: str, cfg: StarConfig, model, tok, prompts: list, seed: int, desc: str, chat: bool
):
    """`_sample`, remembered in the registry (.cache/star-samples/): the arms of an ablation that start from the
    same registered model, with the same prompts, seed and sampling settings, get the same completions without
    sampling again (the 01 notebook's two arms save about 3 minutes on 2 cores). A cache that cannot be read or
    written costs time, never a result."""
    record = Path(reg.root) / source / "run.json"
    identity = (
        record.read_text() if record.exists() else source
    )  # a run re-created under the same name differs
    settings = [
        cfg.samples_per_problem,
        cfg.temperature,
        cfg.max_new_tokens,
        cfg.sample_batch_size,
        seed,
        chat,
    ]
    key = hashlib.sha256(json.dumps([identity, prompts, settings], default=str).encode()).hexdigest()[:32]
    path = Path(reg.root) / ".cache" / "star-samples" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError):
        texts = json.loads(path.read_text())
        if isinstance(texts, list) and len(texts) == len(prompts):
            return texts
    texts = _sample(cfg, model, tok, prompts, seed, desc, chat)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(texts))
        os.replace(tmp, path)
    return texts


def _evaluate(cfg: StarConfig, task, model, tok, test: list, chat, world: int) -> dict:
    """Greedy held-out accuracy; under `accelerate launch` each rank evaluates its shard and the rows are gathered."""
    from nbkit.tasks.base import accuracy_table

    rank = _dist()[0] if world > 1 else 0
    opts = dict(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.sample_batch_size, progress=cfg.verbose)
    rows = _gather(task.evaluate(model, tok, test[rank::world], messages=chat, **opts)["rows"], world)
    return {**accuracy_table(rows), "rows": rows}


def _sft(cfg: StarConfig, model, tok, records, steps, lr, writer, epochs: float = 1.0):
    """TRL's SFTTrainer through nbkit.train.sft; batches of similar length pad less (faster on a CPU)."""
    from nbkit.train import sft

    opts = dict(disable_tqdm=not cfg.verbose, train_sampling_strategy="group_by_length")
    if cfg.lr_schedule != "constant":
        opts["lr_scheduler_type"] = cfg.lr_schedule
    model.train()
    return sft(model, tok, records, steps, epochs, lr, cfg.batch_size, run=writer, seed=cfg.rng_seed, **opts)


# ----------------------------------------------------------------------------------------------------- the CLI


def cli(argv: list[str]) -> int:
    """`nbkit star --config FILE [--profile P] [--set key=value ...] [--runs DIR]`."""
    import yaml

    from nbkit.config import describe, from_dict, load_config
    from nbkit.runs import Registry

    p = argparse.ArgumentParser(
        prog="nbkit star",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run or resume the STaR loop. Keys come from the file, then --profile, then --set.",
        epilog="config keys:\n" + describe(StarConfig),
    )
    p.add_argument("--config", help="YAML or JSON file with StarConfig keys (and optionally profile:)")
    p.add_argument("--profile", help="take this profile's defaults instead of the file's profile")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override one key (YAML value)"
    )
    p.add_argument("--runs", help="registry folder (default ./runs or $NBKIT_RUNS)")
    args = p.parse_args(argv[1:] if argv and argv[0] == "star" else argv)
    data: dict = {}
    if args.config:
        load_config(args.config, StarConfig)  # a bad file fails here, with its name
        data = yaml.safe_load(Path(args.config).read_text()) or {}
    if args.profile:
        data["profile"] = args.profile
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}")
        data[key.strip()] = yaml.safe_load(value)
    result = run_star(from_dict(data, StarConfig, source=args.config or "command line"), Registry(args.runs))
    if _dist()[0] == 0:
        print(result.say())
    return 0
