"""TRANSITIONAL: the budget sweep moved to `nbkit.experiments.budget`; this module re-exports its names so that code
not yet moved keeps working (nbkit.exercises, tests/test_multiprocess.py, tests/test_cli.py). It is deleted once
they import `nbkit.experiments.budget`. New code: `from nbkit.experiments.budget import run, BudgetConfig, ...`.
"""

from __future__ import annotations

from nbkit.experiments.budget import (
    PROFILES,
    BudgetConfig,
    BudgetError,
    BudgetResult,
    Cell,
    claims,
    eval_rows,
    plan,
    plan_grid,
    problem_scores,
    run,
    run_names,
    split_budget,
)


class Sweep:
    """TRANSITIONAL: the old entry point. Sweep(cfg, registry).run(progress) is `run(cfg, registry).frame()`;
    `.names` holds the base and pairs run names."""

    def __init__(self, cfg: BudgetConfig, registry=None):
        self.cfg, self._plan = cfg, plan(cfg, registry)
        self.reg, self.names = self._plan.reg, self._plan.names

    def run(self, progress: bool = True):
        return run(self.cfg, self.reg, progress=progress).frame()


def sweep(cfg: BudgetConfig, registry=None, progress: bool = True):
    """TRANSITIONAL: `run(cfg, registry).frame()`."""
    return run(cfg, registry, progress=progress).frame()


__all__ = [
    "PROFILES",
    "BudgetConfig",
    "BudgetError",
    "BudgetResult",
    "Cell",
    "Sweep",
    "claims",
    "eval_rows",
    "plan_grid",
    "problem_scores",
    "run_names",
    "split_budget",
    "sweep",
]
