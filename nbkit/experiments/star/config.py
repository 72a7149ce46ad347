"""STaR's config: StarConfig holds the paper's defaults (GPT-J on a TPU); PROFILES says what each profile changes."""

from __future__ import annotations

import math
from dataclasses import dataclass

from nbkit.config import ExperimentConfig, opt
from nbkit.errors import ConfigError

# Fields that may change between a run and its resumption without making the old iterations stale.
RESUMABLE_CHANGES = {"iterations", "sample_batch_size", "profile"}


@dataclass
class StarConfig(ExperimentConfig):
    """The loop's knobs. Defaults are the paper's where it gives one; PROFILES scale them to a machine."""

    name: str = opt("star", "runs are named <profile>-<name>-iter<i>")
    profile: str = opt("gpu", "smoke | cpu | gpu: the row of PROFILES applied, and the run-name prefix")
    model: str = opt("qwen2.5-0.5b", "short name, hub id or checkpoint directory")
    task: str = opt("arithmetic", "arithmetic | gsm8k | multiple_choice")
    task_args: dict = opt({"digits": [1, 2, 3]}, "task keyword arguments, e.g. {source: file.jsonl}")
    iterations: int = opt(16, "outer loops (the paper's arithmetic runs 16)")
    problems_per_iteration: int = opt(10_000, "the train set; every iteration tries all of it (paper: 10k)")
    rationalization: bool = opt(True, "retry failures with the correct answer as a hint")
    keep: str = opt(
        "answer",
        "answer: keep rationales that end right (paper) | worked: and that show some work before the answer"
        " | faithful: and that are right at every step",
    )
    restart_from_base: bool = opt(True, "fine-tune the seed model every iteration (paper), else the latest")
    replay_seed: bool = opt(
        False, "train every iteration on the primer's rows too, not only on what was kept (not in the paper)"
    )
    train_epochs: float = opt(
        0.0, "> 0: each iteration trains this many epochs over its rows instead of the step schedule"
    )
    lr_schedule: str = opt(
        "constant", "SFT learning-rate schedule: constant | linear (decays to 0 by the last step)"
    )
    first_steps: int = opt(40, "optimizer steps in iteration 1 (paper: 40)")
    step_growth: float = opt(0.2, "the step count grows by this share per iteration (paper: 20%)")
    step_scale: float = opt(1.0, "multiplies the whole step schedule")
    batch_size: int = opt(8, "SFT batch size per process (paper: 8)")
    lr: float = opt(1e-5, "SFT learning rate (paper: 1e-6 for GPT-J 6B)")
    temperature: float = opt(0.0, "rationale sampling temperature (paper: ~0, greedy)")
    samples_per_problem: int = opt(1, "rationales sampled per problem (paper: 1)")
    retry_samples: int = opt(
        0,
        "> 0: the problems the first pass gets wrong get this many more rationales at retry_temperature, without the"
        " hint, before rationalization (the paper samples once; ReST and rejection-sampling fine-tuning sample more)",
    )
    retry_temperature: float = opt(0.7, "sampling temperature of those retries")
    max_new_tokens: int = opt(128, "rationale length limit, in tokens")
    seeding: str = opt(
        "primer", "primer (SFT on seed rationales, small models) | fewshot (the paper's prompt)"
    )
    seed_examples: int = opt(64, "rationale examples in the primer or the prompt")
    seed_task_args: dict | None = opt({"digits": [1, 2]}, "arithmetic: task arguments of the (easy) seeds")
    seed_long_examples: int = opt(
        0,
        "arithmetic: of the seed_examples, this many worked examples of each longer digit count of the task (those"
        " seed_task_args leave out), so the primer has seen the format at every length (not in the paper)",
    )
    seed_rationales: str | None = opt(
        None, "jsonl file of task rows plus 'rationale' (the seeds); from Python or YAML also a list of rows"
    )
    primer_hints: float = opt(
        0.5, "share of the seed examples shown with the answer as a hint (see seed_examples)"
    )
    primer_epochs: float = opt(3.0, "epochs of the primer SFT")
    primer_lr: float = opt(5e-5, "learning rate of the primer SFT")
    primer: str | None = opt(None, "start from this registered primer run instead of training one")
    test_problems: int = opt(300, "held-out problems evaluated every iteration")
    sample_batch_size: int = opt(64, "completions per generate() call")
    seed: int = opt(0, "seeds problem draws, sampling and training")

    def __post_init__(self):
        validate(self)

    def steps(self, iteration: int, rows: int = 0) -> int:
        """Optimizer steps of iteration i: the paper's schedule, or `train_epochs` over `rows` training rows."""
        if self.train_epochs > 0:
            return max(1, math.ceil(rows * self.train_epochs / self.batch_size))
        return step_schedule(iteration, self.first_steps, self.step_growth, self.step_scale)


# What each profile changes from the paper's defaults. cpu and gpu keep what the cpu runs found to work (plain
# prompts, the "carries" scratchpad, a primer that has seen a handful of longer sums, only rationales right at every
# step kept, primer rows replayed, a decaying learning rate; measured in notebook 01).
# smoke's tiny random model learns only the (shorter) column format: enough to reach every stage in seconds.
_PLAIN = {"scratchpad": "columns", "prompt": "plain"}
_CARRIES = {"scratchpad": "carries", "prompt": "plain"}
_FAITHFUL = dict(keep="faithful", seed_long_examples=8, primer_hints=0.0, replay_seed=True)
PROFILES = {
    "smoke": dict(
        model="tiny",
        iterations=2,
        problems_per_iteration=24,
        seed_examples=8,
        step_scale=0.05,
        batch_size=4,
        max_new_tokens=24,
        test_problems=6,
        primer_epochs=50.0,
        lr=1e-3,
        primer_lr=3e-3,
        task_args={"digits": [1], **_PLAIN},
    ),
    "cpu": dict(
        model="smollm2-135m",
        iterations=3,
        problems_per_iteration=192,
        seed_examples=128,
        primer_epochs=4.0,
        batch_size=8,
        lr=5e-5,
        primer_lr=5e-5,
        lr_schedule="linear",
        train_epochs=2.0,
        max_new_tokens=136,  # a right 4-digit scratchpad and answer take at most 122 tokens
        test_problems=192,
        task_args={"digits": [1, 2, 3, 4], **_CARRIES},
        **_FAITHFUL,
    ),
    "gpu": dict(
        model="qwen2.5-0.5b",
        task_args={"digits": [1, 2, 3, 4, 5], **_CARRIES},
        lr_schedule="linear",
        max_new_tokens=176,  # a right 5-digit one at most 157
        retry_samples=4,  # sampling is cheap on a GPU; on the cpu profile's 2 cores the loop climbs without them
        **_FAITHFUL,
    ),
}


def step_schedule(iteration: int, first: int = 40, growth: float = 0.2, scale: float = 1.0) -> int:
    """Optimizer steps of iteration i >= 1: floor(first * scale * (1 + growth)^(i - 1)), at least 1.

    Example: iterations 1..5 with the paper's defaults -> 40, 48, 57, 69, 82 (the official code floors too).
    """
    return max(1, int(first * scale * (1.0 + growth) ** (iteration - 1) + 1e-9))


_CHOICES = {
    "seeding": {"primer", "fewshot"},
    "keep": {"answer", "worked", "faithful"},
    "lr_schedule": {"constant", "linear"},
}


def validate(cfg: StarConfig) -> None:
    """Fail at once, with one line, on a config that cannot work."""
    from nbkit.tasks import TASKS

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    need(cfg.task in TASKS, f"unknown task {cfg.task!r}; known tasks: {', '.join(TASKS)}")
    for key, allowed in _CHOICES.items():
        need(
            getattr(cfg, key) in allowed, f"{key} must be one of {sorted(allowed)}, got {getattr(cfg, key)!r}"
        )
    need(
        cfg.problems_per_iteration >= 1,
        f"problems_per_iteration must be >= 1 (got {cfg.problems_per_iteration})",
    )
    need(
        cfg.seed_examples >= 1, f"seed_examples must be >= 1 (got {cfg.seed_examples}): the loop needs a few"
    )
    need(cfg.iterations >= 1, f"iterations must be >= 1, got {cfg.iterations}")
    need(0 <= cfg.primer_hints < 1, f"primer_hints is a share in [0, 1), got {cfg.primer_hints}")
    need(cfg.samples_per_problem >= 1, f"samples_per_problem must be >= 1, got {cfg.samples_per_problem}")
    need(cfg.temperature >= 0, f"temperature must be >= 0, got {cfg.temperature}")
    need(
        cfg.retry_samples >= 0 and cfg.retry_temperature > 0,
        f"retry_samples must be >= 0 and retry_temperature > 0, got {cfg.retry_samples}, {cfg.retry_temperature}",
    )
    need(cfg.seed_long_examples >= 0, f"seed_long_examples must be >= 0, got {cfg.seed_long_examples}")
    need(
        cfg.first_steps >= 1 and cfg.step_scale > 0 and cfg.step_growth >= 0,
        "first_steps must be >= 1, "
        f"step_scale > 0, step_growth >= 0; got {cfg.first_steps}, {cfg.step_scale}, {cfg.step_growth}",
    )
    need(cfg.train_epochs >= 0, f"train_epochs must be >= 0 (0: the step schedule), got {cfg.train_epochs}")
    need(cfg.lr > 0 and cfg.primer_lr > 0, f"lr and primer_lr must be > 0, got {cfg.lr}, {cfg.primer_lr}")
    need(
        min(cfg.batch_size, cfg.sample_batch_size, cfg.test_problems, cfg.max_new_tokens) >= 1,
        "batch_size, sample_batch_size, test_problems and max_new_tokens must be >= 1",
    )
    need(bool(cfg.name) and "/" not in cfg.name, f"name must be a plain word, got {cfg.name!r}")
