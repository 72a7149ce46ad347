"""The RFT experiment's config: RftConfig (every field carries its --help text) and PROFILES, a table of overrides.

cfg = RftConfig.for_profile("smoke", steps=1)        # the smoke row, then overrides
nbkit rft --profile cpu --steps 8 --runs /tmp/runs   # the same fields on the command line
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nbkit.config import with_profile
from nbkit.errors import ConfigError

FILTERS = ("off", "drop", "resample")


@dataclass
class RftConfig:
    model: str = field(default="smollm2-135m", metadata={"help": "short name, hub id or checkpoint dir"})
    task: str = field(default="arithmetic", metadata={"help": "'arithmetic' or 'gsm8k' (GSM8K-format data)"})
    digits: list[int] = field(
        default_factory=lambda: [1, 2], metadata={"help": "arithmetic: operand digit counts"}
    )
    data: str | None = field(default=None, metadata={"help": "gsm8k: a .jsonl file or a hub dataset name"})
    data_config: str | None = field(default=None, metadata={"help": "gsm8k: hub dataset config, e.g. 'main'"})
    n_train: int = field(default=120, metadata={"help": "RFT inputs (training prompts)"})
    n_probe: int = field(default=16, metadata={"help": "held-out prompts probed for per-prompt reward stats"})
    steps: int = field(default=30, metadata={"help": "RFT optimizer steps"})
    batch_size: int = field(
        default=8,
        metadata={"help": "completions per optimizer step (per device) = prompts per step x group_size"},
    )
    group_size: int = field(default=4, metadata={"help": "completions sampled per prompt (GRPO's group, k)"})
    lr: float = field(default=3e-5, metadata={"help": "RFT learning rate"})
    max_completion_length: int = field(default=8, metadata={"help": "max new tokens per completion"})
    system: str | None = field(
        default=None, metadata={"help": "system prompt for every chat (None: the chat template's default)"}
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature in RFT and probes"})
    scale_rewards: str = field(
        default="group", metadata={"help": "advantage scaling: 'group', 'batch', 'none'"}
    )
    lora: bool = field(
        default=False,
        metadata={"help": "RFT trains LoRA adapters instead of all weights (warm-start: always full)"},
    )
    warmstart_fraction: float = field(
        default=0.0, metadata={"help": "share of the RFT inputs used for an SFT warm-start (0 = none)"}
    )
    warmstart_steps: int = field(default=10, metadata={"help": "SFT warm-start optimizer steps"})
    warmstart_lr: float = field(default=1e-4, metadata={"help": "SFT warm-start learning rate"})
    rationale: bool = field(
        default=False,
        metadata={"help": "warm-start targets include the task's rationale (else the answer only)"},
    )
    zero_std_filter: str = field(
        default="off", metadata={"help": "'off', 'drop' or 'resample' groups whose rewards are all equal"}
    )
    max_resample: int = field(default=4, metadata={"help": "resample: max extra generation rounds per step"})
    probe_k: int = field(default=8, metadata={"help": "samples per probe prompt"})
    probe_every: int = field(
        default=0,
        metadata={"help": "also probe every N steps during training (0: only at the start and the end)"},
    )
    grad_prompts: int = field(default=8, metadata={"help": "probe prompts whose gradient norm is measured"})
    name: str = field(
        default="rft", metadata={"help": "run name in the registry (warm-start: NAME-warmstart)"}
    )
    save_model: bool = field(default=True, metadata={"help": "save the RFT checkpoint in the registry"})
    seed: int = field(default=0, metadata={"help": "seed for data, sampling and training"})
    profile: str | None = field(
        default=None,
        metadata={"help": "smoke | cpu | gpu: the row of PROFILES applied (None: these defaults)"},
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

    @classmethod
    def for_profile(cls, profile: str, /, **overrides) -> RftConfig:
        """The config of `profile` (a row of PROFILES), then `overrides`, e.g. for_profile("smoke", steps=1)."""
        return with_profile(cls, PROFILES, profile, **overrides)


# Each profile is a row of overrides of RftConfig's defaults.
# smoke: tiny model, 2 steps (seconds). cpu: SmolLM2-135M on 1-2 digit sums (minutes). gpu: Qwen2.5-0.5B.
# cpu, measured (benchmarks/rft_warmstart_gain.py; table in the 02 notebook): the SmolLM2-135M base answers 1-2 digit
# sums in 6 tokens almost never (probe reward 0.04, 88% of prompts all wrong); one SFT step (8 examples) gives
# spread, after which GRPO raises the held-out reward. Groups of 4, not 8: with 8 samples the base finds a right
# answer on enough 1-digit prompts to learn almost as fast unaided. 16 steps (was 20): in 30-step runs the
# warm-started probe reward was 0.13 -> 0.63 by step 20 and 0.63 at 30, and RFT alone 0.04 -> 0.13 at both; 16 steps
# keep 02 at 11.9 min quiet with every claim still AGREES (commit 7cabb23). 32 probe prompts x 8 samples every 8
# steps feed the signal map.
# fmt: off
PROFILES = {
    "smoke": dict(model="tiny", n_train=16, n_probe=4, steps=2, batch_size=8, group_size=4, lr=1e-4,
                  max_completion_length=6, probe_k=4, grad_prompts=2, warmstart_steps=2, max_resample=1),
    "cpu": dict(system="You are a helpful assistant.", max_completion_length=6, steps=16, batch_size=32,
                group_size=4, n_probe=32, probe_k=8, probe_every=8, grad_prompts=16, max_resample=2,
                warmstart_steps=1),
    "gpu": dict(model="qwen2.5-0.5b", digits=[2, 3], n_train=2000, n_probe=64, steps=200, batch_size=64,
                group_size=8, lr=1e-5, max_completion_length=16, probe_every=25, grad_prompts=32),
}
# fmt: on
