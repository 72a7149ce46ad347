"""The RFT experiment's config: RftConfig (every field carries its --help text) and PROFILES, a table of overrides.

cfg = RftConfig.for_profile("smoke", steps=1)        # the smoke row, then overrides
nbkit rft --profile cpu --steps 8 --runs /tmp/runs   # the same fields on the command line
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nbkit.config import ExperimentConfig, opt
from nbkit.errors import ConfigError

FILTERS = ("off", "drop", "resample")


@dataclass
class RftConfig(ExperimentConfig):
    """GRPO with per-prompt diagnostics and an optional SFT warm-start. Defaults are the paper's where it gives one;
    PROFILES scale them to a machine. The paper fixes no GRPO recipe, so these are a small arithmetic run's."""

    model: str = opt("smollm2-135m", "short name, hub id or checkpoint dir")
    task: str = opt("arithmetic", "'arithmetic' or 'gsm8k' (GSM8K-format data)")
    digits: list[int] = opt([1, 2], "arithmetic: operand digit counts")
    data: str | None = opt(None, "gsm8k: a .jsonl file or a hub dataset name")
    data_config: str | None = opt(None, "gsm8k: hub dataset config, e.g. 'main'")
    n_train: int = opt(120, "RFT inputs (training prompts)")
    n_probe: int = opt(16, "held-out prompts probed for per-prompt reward stats")
    steps: int = opt(30, "RFT optimizer steps")
    batch_size: int = opt(8, "completions per optimizer step (per device) = prompts per step x group_size")
    group_size: int = opt(4, "completions sampled per prompt (GRPO's group, k)")
    lr: float = opt(3e-5, "RFT learning rate")
    max_completion_length: int = opt(8, "max new tokens per completion")
    system: str | None = opt(None, "system prompt for every chat (None: the chat template's default)")
    temperature: float = opt(1.0, "sampling temperature in RFT and probes")
    scale_rewards: str = opt("group", "advantage scaling: 'group', 'batch', 'none'")
    lora: bool = opt(False, "RFT trains LoRA adapters instead of all weights (warm-start: always full)")
    warmstart_fraction: float = opt(0.0, "share of the RFT inputs used for an SFT warm-start (0 = none)")
    warmstart_steps: int = opt(10, "SFT warm-start optimizer steps")
    warmstart_lr: float = opt(1e-4, "SFT warm-start learning rate")
    rationale: bool = opt(False, "warm-start targets include the task's rationale (else the answer only)")
    zero_std_filter: str = opt("off", "'off', 'drop' or 'resample' groups whose rewards are all equal")
    max_resample: int = opt(4, "resample: max extra generation rounds per step")
    probe_k: int = opt(8, "samples per probe prompt")
    probe_every: int = opt(0, "also probe every N steps during training (0: only at the start and the end)")
    grad_prompts: int = opt(8, "probe prompts whose gradient norm is measured")
    name: str = opt("rft", "runs are named <profile>-<name> (the warm-start: <profile>-<name>-warmstart)")
    save_model: bool = opt(True, "save the RFT checkpoint in the registry")
    seed: int = opt(0, "seed for data, sampling and training")
    profile: str | None = opt(
        None, "smoke | cpu | gpu: the row of PROFILES applied, and the run-name prefix (None: these defaults)"
    )

    def __post_init__(self):
        self.digits = [int(d) for d in self.digits]
        if self.group_size < 2:
            raise ConfigError(
                f"group_size={self.group_size}: GRPO compares completions of the same prompt, so it needs at "
                f"least 2 (with 1 every group has zero reward std and nothing is learned); set group_size >= 2"
            )
        if self.batch_size < self.group_size or self.batch_size % self.group_size:
            fits = [d for d in range(2, self.batch_size + 1) if self.batch_size % d == 0]
            lo = max(self.group_size, self.batch_size // self.group_size * self.group_size)
            raise ConfigError(
                f"batch_size={self.batch_size} is not a multiple of group_size={self.group_size}: each step trains on "
                f"batch_size completions made of whole groups (group_size completions of one prompt), i.e. "
                f"batch_size / group_size prompts per step. Set batch_size to {lo} or {lo + self.group_size}"
                + (f", or group_size to one of {fits}" if fits else "")
            )
        if self.task not in {"arithmetic", "gsm8k"}:
            raise ConfigError(f"task={self.task!r}: choose 'arithmetic' or 'gsm8k'")
        if self.task == "gsm8k" and not self.data:
            raise ConfigError(
                "task=gsm8k needs data: a .jsonl file or a hub dataset name (e.g. openai/gsm8k)"
            )
        if not 0.0 <= self.warmstart_fraction <= 1.0:
            raise ConfigError(f"warmstart_fraction={self.warmstart_fraction} must be in [0, 1] (0.1 = 10%)")
        if self.zero_std_filter not in FILTERS:
            raise ConfigError(f"zero_std_filter={self.zero_std_filter!r}: choose one of {', '.join(FILTERS)}")
        if self.scale_rewards not in {"group", "batch", "none"}:
            raise ConfigError(f"scale_rewards={self.scale_rewards!r}: choose 'group', 'batch' or 'none'")
        if self.steps < 1 or self.n_train < self.batch_size // self.group_size:
            raise ConfigError(
                f"steps={self.steps} and n_train={self.n_train}: need steps >= 1 and at least one step's "
                f"prompts (batch_size / group_size = {self.batch_size // self.group_size})"
            )
        if self.n_probe and self.probe_k < 2:
            raise ConfigError(f"probe_k={self.probe_k}: a reward std needs at least 2 samples per prompt")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ConfigError(f"name={self.name!r}: use letters, digits, '-', '_', '.'")


# Each profile is a row of overrides of RftConfig's defaults. smoke: the tiny model, seconds. cpu: SmolLM2-135M on
# 1-2 digit sums, minutes; groups of 4 and 16 steps keep the base model stuck without a warm-start and notebook 02
# near 12 minutes (benchmarks/rft_warmstart_gain.py). gpu: Qwen2.5-0.5B on 2-3 digit sums.
PROFILES = {
    "smoke": dict(
        model="tiny",
        n_train=16,
        n_probe=4,
        steps=2,
        batch_size=8,
        group_size=4,
        lr=1e-4,
        max_completion_length=6,
        probe_k=4,
        grad_prompts=2,
        warmstart_steps=2,
        max_resample=1,
    ),
    "cpu": dict(
        system="You are a helpful assistant.",
        max_completion_length=6,
        steps=16,
        batch_size=32,
        group_size=4,
        n_probe=32,
        probe_k=8,
        probe_every=8,
        grad_prompts=16,
        max_resample=2,
        warmstart_steps=1,
    ),
    "gpu": dict(
        model="qwen2.5-0.5b",
        digits=[2, 3],
        n_train=2000,
        n_probe=64,
        steps=200,
        batch_size=64,
        group_size=8,
        lr=1e-5,
        max_completion_length=16,
        probe_every=25,
        grad_prompts=32,
    ),
}
