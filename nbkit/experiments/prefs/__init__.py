"""From the room's votes to a better model: arena votes -> DPO -> back into the arena (issue 25).

RLHF in one workshop break: the class votes in blind A/B rounds (`nbkit compare`), the decided rounds become
preference pairs (`nbkit.serve.votes`), DPO trains a LoRA adapter on them (TRL's DPOTrainer through
`nbkit.train.dpo`), the new model joins the running arena's pool (the instructor's hot-add), and new blind rounds
say whether it is preferred. Without arena votes, a scripted judge (`judge.py`: right answers first, then shorter
ones) votes on the model's own answers, so the loop runs alone.

    config.py   PrefsConfig, PROFILES
    judge.py    the scripted judge: scripted_judge(prompt, a, b) -> "left" | "right" | "tie"
    data.py     the task, the questions, and the arena's votes as pairs (or None: the judge votes)
    run.py      run(cfg, registry) -> PrefsResult: votes snapshot -> DPO -> hot-add + new blind rounds, each a
                registry run (stages cast_votes, train, answer); plan(cfg, registry) then run_plan(plan) keeps
                the votes of the moment it planned
    result.py   PrefsResult: frame() (the new rounds), claim() (new model wins more than half), plots, say()

Simplifications: one preference pair per round (the last turn; see nbkit.serve.votes), LoRA DPO from the model the
votes were cast on, and the comparison judged by the scripted judge on held-out arithmetic questions (the room
judges the new model in the arena itself).

    nbkit prefs --profile cpu            # the notebook's loop as a script
"""

from nbkit.experiments.prefs.config import PROFILES, PrefsConfig, PrefsError
from nbkit.experiments.prefs.judge import JUDGE, question_sum, scripted_judge
from nbkit.experiments.prefs.result import PrefsResult, pairs_frame, read_snapshot, win_claim
from nbkit.experiments.prefs.run import dry_run, ensure_dpo, ensure_votes, plan, run, run_plan

Config = PrefsConfig  # what `nbkit prefs` parses

__all__ = [
    "JUDGE",
    "PROFILES",
    "Config",
    "PrefsConfig",
    "PrefsError",
    "PrefsResult",
    "dry_run",
    "ensure_dpo",
    "ensure_votes",
    "pairs_frame",
    "plan",
    "question_sum",
    "read_snapshot",
    "run",
    "run_plan",
    "scripted_judge",
    "win_claim",
]
