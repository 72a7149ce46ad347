"""The loop's data: the arithmetic questions the scripted judge's rounds ask, the held-out questions of the
comparison, and where the votes come from (the arena's file, or the judge).

- `build_task(cfg)`: arithmetic with the config's digits.
- `questions(task, cfg)`: (questions for the judge's votes, held-out questions for the new blind rounds); the two
  never share a problem (the task's own train/test split).
- `arena_export(cfg, registry)`: the arena's votes as preference pairs (`nbkit.serve.votes.export_pairs`), or None
  when the config or the file says to use the judge instead.
"""

from __future__ import annotations

from pathlib import Path

from nbkit.experiments.prefs.config import PrefsConfig, PrefsError
from nbkit.serve.votes import VotesError, export_pairs


def build_task(cfg: PrefsConfig):
    from nbkit.tasks import make_task

    return make_task("arithmetic", digits=tuple(cfg.digits), seed=cfg.seed)


def questions(task, cfg: PrefsConfig) -> tuple[list, list]:
    """(n_votes training questions, eval_rounds held-out test questions)."""
    return list(task.train(cfg.n_votes, salt=f"prefs-{cfg.seed}")), list(task.test(cfg.eval_rounds))


def arena_file(cfg: PrefsConfig, registry) -> Path:
    """The arena's vote file: the config's, else the registry's arena.sqlite (where `nbkit compare` writes)."""
    from nbkit.serve.arena import ArenaConfig

    return Path(cfg.arena_db).expanduser() if cfg.arena_db else Path(registry.root) / ArenaConfig().db


def arena_export(cfg: PrefsConfig, registry):
    """The arena's decided rounds as a VoteExport; None for votes="judge", and for votes="auto" when the file is
    missing or holds fewer than min_pairs decided rounds (then the scripted judge votes). votes="arena" refuses
    instead, in one line."""
    if cfg.votes == "judge":
        return None
    path = arena_file(cfg, registry)
    try:
        return export_pairs(path, cfg.min_pairs, cfg.drop_flagged)
    except VotesError as e:
        if cfg.votes == "arena":
            raise PrefsError(f"votes=arena: {e}") from None
        return None
