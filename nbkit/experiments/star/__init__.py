"""STaR (Zelikman et al., 2022): bootstrap a model's reasoning from its own rationales that reach the right answer.

One iteration of the loop (nbkit/experiments/star/run.py):
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
  restarts from the primer. `seeding="fewshot"` keeps the paper's prompt seed for capable models.
- Scale. Hundreds of problems and tens of steps instead of 10,000 problems and GPT-J; PROFILES scales them.
- A rationalization that mentions the hint is dropped, since it would be trained without the hint.

Every iteration is a registered run ("<profile>-<name>-iter<i>", parent: the primer) holding its checkpoint, the
kept rationales (rationales.jsonl), the held-out completions (eval.jsonl) and a summary: tried, correct,
rationalized, fraction of the train set used, accuracy overall and per difficulty, seconds. Iteration 0 is the seed
model itself (no checkpoint of its own). A rerun continues after the last registered iteration.

    from nbkit.experiments.star import StarConfig, run
    result = run(StarConfig.for_profile("cpu"))
    result.frame()                          # one row per iteration
    result.plot(); result.claims()          # the paper's figure; its claims, with intervals

    nbkit star --config configs/star_arithmetic.yaml [--iterations 5] [--runs DIR]
    torchrun --nproc_per_node 2 -m nbkit.cli star --profile smoke    # every rank samples and evaluates its shard

Only what notebook 01, the CLI and the workshop exercises use is exported here; the rest is imported from its
module, e.g. `from nbkit.experiments.star.data import split_rationale`.
"""

from nbkit.experiments.star.config import PROFILES, StarConfig, step_schedule
from nbkit.experiments.star.data import filter_rationales, primer_records, seed_examples
from nbkit.experiments.star.result import StarResult, plot_side_by_side
from nbkit.experiments.star.run import dry_run, replay_control, run

Config = StarConfig  # what `nbkit star` parses

__all__ = [
    "Config",
    "PROFILES",
    "StarConfig",
    "StarResult",
    "dry_run",
    "filter_rationales",
    "plot_side_by_side",
    "primer_records",
    "replay_control",
    "run",
    "seed_examples",
    "step_schedule",
]
