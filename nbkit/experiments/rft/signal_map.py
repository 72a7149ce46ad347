"""Where an RL run's gradient can come from, prompt by prompt: the signal map, and what advantage scaling does to it.

GRPO learns from a prompt only when the k rewards of its group differ (`rewards.py`). This module draws that per
prompt, from the probes an RFT run logs (`RftResult.probes`: one row per probe step, with per-prompt lists):

- `signal_table(probes)`: prompts x probe steps, the reward std of each prompt's k samples and whether they were all
  right or all wrong, rows sorted by the starting std (prompts with signal on top, stuck prompts at the bottom).
- `plot_signal_map(probes, ax_map, ax_gain)`: that table as a heat-map, all-wrong and all-right cells in their own
  colours; beside it, each prompt's reward gain over the run against its starting std, with the std^(2/3) shape of
  Razin et al.'s bound on the gradient as a guide.
- `scaling_table(row)` and `plot_scaling(table, axes)`: per-prompt gradient norms under TRL's
  `scale_rewards="group"` (advantages divided by the group's std) and `"none"` (Dr. GRPO), on the same policy and
  samples: zero std gives exactly zero under both; "group" multiplies the rest by 1 / (std + 1e-4).

    fig, (a, b) = plt.subplots(1, 2); plot_signal_map(result.probes, a, b)   # or result.plot_signal_map(a, b)
"""

from __future__ import annotations

import numpy as np

STUCK, SOLVED = "tab:red", "tab:green"  # all wrong (std 0, reward 0), all right (std 0, reward 1)


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


def plot_signal_map(probes, ax_map, ax_gain=None, title: str = "") -> dict:
    """Heat-map of reward std per probe prompt (rows) and probe step (columns); all-wrong cells red, all-right
    green. With `ax_gain`, also each prompt's reward gain (last probe - first) against its starting std, and the
    guide c * std^(2/3), c fitted to the largest gain. Returns the `signal_table`."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    t = signal_table(probes)
    std, mean = t["std"], t["mean"]
    zero = std == 0
    vmax = max(0.5, float(std.max()))
    im = ax_map.imshow(np.ma.masked_where(zero, std), cmap="Blues", vmin=0, vmax=vmax, aspect="auto")
    kind = np.where(zero & (mean >= 1), 1.0, np.where(zero & (mean <= 0), 0.0, np.nan))
    ax_map.imshow(
        np.ma.masked_invalid(kind), cmap=ListedColormap([STUCK, SOLVED]), vmin=0, vmax=1, aspect="auto"
    )
    ax_map.set_xticks(range(len(t["steps"])), [str(s) for s in t["steps"]])
    fs = 7 if len(t["questions"]) <= 40 else 5
    ax_map.set_yticks(range(len(t["questions"])), t["questions"], fontsize=fs)
    ax_map.set(xlabel="RFT step (probe)", ylabel="probe prompt, sorted by starting std", title=title)
    ax_map.figure.colorbar(im, ax=ax_map, label="reward std of the prompt's samples", fraction=0.05)
    ax_map.legend(
        handles=[Patch(color=STUCK, label="all wrong (std 0)"), Patch(color=SOLVED, label="all right (std 0)")],
        loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=8,
    )  # fmt: skip
    if ax_gain is not None:
        plot_gain_vs_std(std[:, 0], mean[:, 0], mean[:, -1], ax_gain, steps=(t["steps"][0], t["steps"][-1]))
    return t


def plot_gain_vs_std(start_std, start_mean, end_mean, ax, steps=(0, None)) -> None:
    """Each prompt's reward gain against its starting reward std, coloured by its starting kind, with the guide
    c * std^(2/3): the shape of Razin et al.'s bound on the expected gradient (Theorem 1), scaled to the data. The
    bound is on the gradient, not the gain; it says a prompt at std 0 cannot move, and one at small std moves slowly."""
    std, m0, m1 = (np.asarray(x, dtype=float) for x in (start_std, start_mean, end_mean))
    gain = m1 - m0
    jitter = (np.arange(len(std)) % 5 - 2) * 0.004  # points at the same std side by side, not on top
    for mask, color, label in (
        ((std == 0) & (m0 <= 0), STUCK, "started all wrong"),
        ((std == 0) & (m0 >= 1), SOLVED, "started all right"),
        (std > 0, "tab:blue", "started with spread"),
    ):
        if mask.any():
            ax.scatter(
                std[mask] + jitter[mask],
                gain[mask],
                s=30,
                alpha=0.7,
                color=color,
                label=f"{label} ({mask.sum()})",
            )
    spread = (std > 0) & (gain > 0)
    c = float((gain[spread] / std[spread] ** (2 / 3)).max()) if spread.any() else 1.0
    xs = np.linspace(0, max(0.55, float(std.max())), 100)
    ax.plot(xs, c * xs ** (2 / 3), "k--", lw=1, label=f"{c:.2f} * std^(2/3) (bound's shape)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(
        xlabel="reward std at the first probe",
        ylabel=f"reward gain, step {steps[0]} -> {steps[1]}",
        title="gain against starting std",
    )
    ax.legend(fontsize=7)


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


def plot_scaling(table, axes, eps: float = 1e-4) -> None:
    """Left: gradient norm against reward std, under "group" and "none". Right: their ratio for prompts with spread,
    against 1 / (std + eps), the factor TRL's group scaling multiplies the advantages by."""
    ax1, ax2 = axes
    ax1.scatter(table["std"], table["grad_none"], marker="o", s=40, alpha=0.7, label='scale_rewards="none"')
    ax1.scatter(table["std"], table["grad_group"], marker="x", s=40, label='scale_rewards="group"')
    zero = table[table["std"] == 0]
    if len(zero):
        top = float(zero[["grad_group", "grad_none"]].to_numpy().max())
        ax1.annotate(f"{len(zero)} prompts with std 0:\nlargest norm {top:g} under both", (0, top), (0.05, 0.75),
                     textcoords="axes fraction", fontsize=8, arrowprops=dict(arrowstyle="->", lw=0.8))  # fmt: skip
    ax1.set(xlabel="prompt's reward std", ylabel="gradient norm of the prompt's GRPO objective")
    ax1.legend(fontsize=8)
    spread = table[table["std"] > 0]
    if len(spread):
        ax2.scatter(
            spread["std"], spread["grad_group"] / spread["grad_none"], s=40, label="measured group / none"
        )
        xs = np.linspace(max(0.05, float(spread["std"].min()) * 0.8), 0.6, 100)
        ax2.plot(xs, 1 / (xs + eps), "k--", lw=1, label="1 / (std + 1e-4)")
    ax2.set(xlabel="prompt's reward std (std > 0 only)", ylabel="amplification by group scaling")
    ax2.legend(fontsize=8)
