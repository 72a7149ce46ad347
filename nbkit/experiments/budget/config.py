"""The budget sweep's config, its profiles, and the cost model that turns a budget into examples and pairs.

- `BudgetConfig`: every setting, with its --help text; checked when built (a grid that cannot work fails at once,
  in one line, before anything runs).
- `split_budget(B, f, sft_cost, pair_cost) -> (n_sft, n_pairs)`: the cost model; `plan_grid` for a sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nbkit.config import ExperimentConfig, opt, settings_hash
from nbkit.errors import ConfigError

TASKS = ("arithmetic", "gsm8k")


class BudgetError(ConfigError):
    """A budget sweep that cannot work; the message says what to change."""


@dataclass
class BudgetConfig(ExperimentConfig):
    """A sweep of budget x SFT share. Defaults are the paper's where it gives one; PROFILES scale them to a machine.
    The paper's models and budgets need GPUs, so the other defaults are the cpu profile's (its row is empty)."""

    model: str = opt("smollm2-135m", "model short name, hub id or checkpoint")
    task: str = opt("arithmetic", "arithmetic | gsm8k")
    digits: list[int] = opt([2], "arithmetic: digit counts of the operands")
    source: str = opt(
        "gsm8k_sample.jsonl", "gsm8k: a jsonl file, a file in nbkit/tasks/fixtures, or a hub name"
    )
    rationale: bool = opt(False, "targets with the task's worked rationale (else just the answer line)")
    budgets: list[float] = opt(
        [16, 32, 128], "total budgets B, in cost units (16: the smallest decides notebook 03's first claim)"
    )
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
    eval_n: int = opt(
        384, "test problems per evaluation (greedy); 384 decide the smallest budget's claim in notebook 03"
    )
    eval_batch_size: int = opt(64, "prompts per generation batch")
    max_length: int = opt(256, "training sequence length cap (tokens)")
    seed: int = opt(0, "seed for the pools, the sampling and the training")
    profile: str = opt(
        "cpu", "smoke | cpu | gpu: the row of PROFILES applied; it also prefixes the run names"
    )

    def __post_init__(self):
        """The one validation step: the task, then the grid (every cell buys something and fits the pools)."""
        if self.task not in TASKS:
            raise BudgetError(f"budget sweeps run on task 'arithmetic' or 'gsm8k', not {self.task!r}")
        check_grid(self.cells(), self)

    def cells(self) -> list[Cell]:
        """The sweep's (budget, fraction) cells, budget-major (`plan_grid`)."""
        return plan_grid(self.budgets, self.fractions, self.sft_cost, self.pair_cost)

    def sweep_id(self) -> str:
        """Six hex digits naming everything that shapes a cell except the grid, so that changing a setting
        never reuses stale runs while adding a budget or a fraction reuses every finished cell."""
        return settings_hash(self, ignore={"budgets", "fractions", "profile"})

    @property
    def name(self) -> str:
        """What the sweep's runs are named after, beside the profile: "budget-{sweep_id}", e.g. "budget-1db001"."""
        return f"budget-{self.sweep_id()}"


# Each profile is a row of overrides of BudgetConfig's defaults (which are the cpu profile's). smoke: the tiny model,
# seconds. cpu: SmolLM2-135M on 2-digit addition, minutes. gpu: GSM8K with Qwen2.5-0.5B.
PROFILES = {
    "smoke": dict(
        model="tiny",
        budgets=[4, 8],
        fractions=[0.0, 0.5, 1.0],
        pool=8,
        max_new_tokens=4,
        batch_size=8,
        sft_epochs=1.0,
        eval_n=4,
        max_length=64,
    ),
    "cpu": {},
    "gpu": dict(
        model="qwen2.5-0.5b",
        task="gsm8k",
        source="openai/gsm8k",
        rationale=True,
        budgets=[256, 1024],
        fractions=[0.0, 0.1, 0.25, 0.5, 1.0],
        pool=1024,
        rejected_k=4,
        max_new_tokens=256,
        sft_lr=1e-5,
        dpo_lr=5e-7,
        batch_size=16,
        eval_n=500,
        max_length=768,
    ),
}


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
