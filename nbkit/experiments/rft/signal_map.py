"""Where an RL run's gradient can come from, prompt by prompt: the tables behind the signal map and the
advantage-scaling figure (the figures themselves are in `plots.py`).

GRPO learns from a prompt only when the k rewards of its group differ (`rewards.py`). These tables read that per
prompt from the probes an RFT run logs (`RftResult.probes`: one row per probe step, with per-prompt lists):

- `signal_table(probes)`: prompts x probe steps, the reward std of each prompt's k samples and its mean reward, rows
  sorted by the starting std (prompts with signal on top, stuck prompts at the bottom).
- `scaling_table(row)`: per-prompt gradient norms under TRL's `scale_rewards="group"` (advantages divided by the
  group's std) and `"none"` (Dr. GRPO), on the same policy and samples: zero std gives exactly zero under both;
  "group" multiplies the rest by 1 / (std + 1e-4).

    t = signal_table(result.probes); t["std"]   # (prompts, probe steps)
"""

from __future__ import annotations

import numpy as np


def signal_table(probes) -> dict:
    """probes: DataFrame indexed by step with per-prompt lists "probe/prompt_mean", "probe/prompt_std" (and
    "probe/questions"). Returns {"steps": (S,), "questions": (P,), "std": (P, S), "mean": (P, S), "order": (P,)},
    rows sorted by starting std, highest first (ties: higher starting reward first, so all-right sits above
    all-wrong); "order" maps each row to its index in the probe.

    Example: stds at step 0 [[0, 0.5, 0]] with means [[0, 0.5, 1]] -> rows in order [1, 2, 0].
    """
    steps = [int(s) for s in probes.index]
    std = np.array([list(r) for r in probes["probe/prompt_std"]], dtype=float).T  # (P, S)
    mean = np.array([list(r) for r in probes["probe/prompt_mean"]], dtype=float).T
    order = np.lexsort((-mean[:, 0], -std[:, 0]))  # last key sorts first
    first = probes.iloc[0]
    questions = list(first["probe/questions"]) if "probe/questions" in probes else [str(i) for i in order]
    return {
        "steps": steps,
        "questions": [questions[i] for i in order],
        "std": std[order],
        "mean": mean[order],
        "order": order,
    }


def scaling_table(row):
    """A DataFrame, one row per prompt whose gradient was measured: question, mean and std of its rewards, and its
    gradient norm under scale_rewards "group" and "none". row: the first probe row of a run (result.probes.iloc[0])
    with "probe/grad_norm_group" and "probe/grad_norm_none"."""
    import pandas as pd

    n = len(row["probe/grad_norm_group"])
    return pd.DataFrame(
        {
            "question": list(row["probe/questions"])[:n],
            "mean": list(row["probe/prompt_mean"])[:n],
            "std": list(row["probe/prompt_std"])[:n],
            "grad_group": list(row["probe/grad_norm_group"]),
            "grad_none": list(row["probe/grad_norm_none"]),
        }
    )
