"""TRANSITIONAL: moved to nbkit.experiments.rft (config.py, trainer.py, run.py). These names are re-exported so that
code not yet updated keeps working; import them from nbkit.experiments.rft. To be deleted.

`run_rft(cfg, registry)` is `nbkit.experiments.rft.run(cfg, registry).run`: the registry Run, as before."""

from nbkit.experiments.rft.config import FILTERS, PROFILES, RftConfig
from nbkit.experiments.rft.run import build_task as make_task
from nbkit.experiments.rft.run import rl_records, run, summarize, warmstart_records
from nbkit.experiments.rft.trainer import GroupLogCallback, RftTrainer, make_trainer, take_groups


def run_rft(cfg: RftConfig, registry=None, progress: bool = True):
    """TRANSITIONAL: the registry Run of `nbkit.experiments.rft.run(cfg, registry, progress)`."""
    return run(cfg, registry, progress).run


__all__ = [
    "FILTERS",
    "PROFILES",
    "GroupLogCallback",
    "RftConfig",
    "RftTrainer",
    "make_task",
    "make_trainer",
    "rl_records",
    "run_rft",
    "summarize",
    "take_groups",
    "warmstart_records",
]
