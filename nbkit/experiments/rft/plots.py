"""The RFT figures. Those of one arm take its tables and axes, and are also methods of `RftResult` (where its
tables are filled in): `plot_signal_map` (with `plot_gain_vs_std`), `plot_scaling` and `plot_gradient_scaling`.
Those of several arms side by side are functions of `results`, {label: RftResult} with the same RFT budget and
probe prompts: `plot_std_histograms`, `plot_zero_std_share`, `plot_signal_maps` and `plot_reward_curves`.
`where` is the caption (profile and hardware, `nbkit.plots.caption`); a figure-level function returns its figure.

    fig = plot_std_histograms(results, where); plt.show()
    fig = results["SFT warm-start + RFT"].plot_gradient_scaling(where); plt.show()
"""

from __future__ import annotations

import numpy as np

from nbkit.experiments.rft.signal_map import signal_table

STUCK, SOLVED = "tab:red", "tab:green"  # all wrong (std 0, reward 0), all right (std 0, reward 1)

# ------------------------------------------------------------------------------------------------ one arm


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
        handles=[
            Patch(color=STUCK, label="all wrong (std 0)"),
            Patch(color=SOLVED, label="all right (std 0)"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.08),
        ncol=2,
        fontsize=8,
    )
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


def plot_scaling(table, axes, eps: float = 1e-4) -> None:
    """Left: gradient norm against reward std, under "group" and "none". Right: their ratio for prompts with spread,
    against 1 / (std + eps), the factor TRL's group scaling multiplies the advantages by."""
    ax1, ax2 = axes
    ax1.scatter(table["std"], table["grad_none"], marker="o", s=40, alpha=0.7, label='scale_rewards="none"')
    ax1.scatter(table["std"], table["grad_group"], marker="x", s=40, label='scale_rewards="group"')
    zero = table[table["std"] == 0]
    if len(zero):
        top = float(zero[["grad_group", "grad_none"]].to_numpy().max())
        ax1.annotate(
            f"{len(zero)} prompts with std 0:\nlargest norm {top:g} under both",
            (0, top),
            (0.05, 0.75),
            textcoords="axes fraction",
            fontsize=8,
            arrowprops=dict(arrowstyle="->", lw=0.8),
        )
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


def plot_gradient_scaling(table, where: str = ""):
    """Gradient norm against reward std under the two advantage scalings, and their ratio (`plot_scaling`).
    table: `RftResult.scaling_table()`."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    plot_scaling(table, axes)
    fig.suptitle(f"Per-prompt gradient norm under the two advantage scalings ({where})", y=1.02)
    return fig


# ------------------------------------------------------------------------------------------ arms side by side


def _first(results: dict):
    return next(iter(results.values())).config


def plot_std_histograms(results: dict, where: str = ""):
    """Per arm, histograms of per-prompt reward std: the probe before and after training, and GRPO's own groups in
    the first and the second half of the run."""
    import matplotlib.pyplot as plt

    cfg = _first(results)
    half = cfg.steps // 2
    fig, axes = plt.subplots(1, len(results), figsize=(15, 3.6), sharey=True)
    for ax, (label, r) in zip(axes, results.items()):
        probes, groups = r.probes, r.groups
        series = {
            f"probe, before (k={cfg.probe_k})": probes.iloc[0]["probe/prompt_std"],
            f"GRPO groups, steps 1-{half} (k={cfg.group_size})": sum(
                groups.loc[:half, "groups/prompt_std"], []
            ),
            f"GRPO groups, steps {half + 1}-{cfg.steps}": sum(
                groups.loc[half + 1 :, "groups/prompt_std"], []
            ),
            f"probe, after {probes.index[-1]} steps": probes.iloc[-1]["probe/prompt_std"],
        }
        for name, stds in series.items():
            ax.hist(stds, bins=12, range=(0, 0.6), density=True, histtype="step", linewidth=2, label=name)
        ax.set(title=label, xlabel="reward std of a prompt's samples")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Per-prompt reward std before and during RFT ({where})", y=1.03)
    return fig


def plot_zero_std_share(results: dict, where: str = ""):
    """Per arm, the share of GRPO's groups whose rewards were all wrong / all right (rolling mean of 5 steps,
    shaded), and the same split on the probe prompts (markers)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(15, 3.6), sharey=True)
    for ax, (label, r) in zip(axes, results.items()):
        train, probes = r.train, r.probes
        split = (
            train[["frac_reward_zero_std_all_wrong", "frac_reward_zero_std_all_right"]]
            .rolling(5, min_periods=1)
            .mean()
        )
        ax.stackplot(
            split.index,
            split.T.values,
            labels=["all wrong", "all right"],
            colors=["tab:red", "tab:green"],
            alpha=0.35,
        )
        ax.plot(
            probes.index,
            probes["probe/frac_zero_std_all_wrong"],
            "o--",
            color="tab:red",
            label="probe: all wrong",
        )
        ax.plot(
            probes.index,
            probes["probe/frac_zero_std_all_right"],
            "s--",
            color="tab:green",
            label="probe: all right",
        )
        ax.set(title=label, xlabel="RFT step", ylim=(0, 1))
    axes[0].set_ylabel("share of prompts with zero reward std")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Zero-std prompts during RFT ({where})", y=1.03)
    return fig


def plot_signal_maps(results: dict, where: str = ""):
    """One row per arm: its signal map and its reward gain against starting std (`plot_signal_map`)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(results),
        2,
        figsize=(14, 15),
        gridspec_kw={"width_ratios": [1.3, 1]},
        constrained_layout=True,
        squeeze=False,
    )
    for (ax_map, ax_gain), (label, r) in zip(axes, results.items()):
        r.plot_signal_map(ax_map, ax_gain, title=label)
    fig.suptitle(f"Per-prompt reward std during RFT, and reward gain against starting std ({where})")
    return fig


def plot_reward_curves(results: dict, where: str = ""):
    """Left: the mean reward of GRPO's training batches (rolling mean of 5 steps). Right: the held-out probe reward."""
    import matplotlib.pyplot as plt

    cfg = _first(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4))
    for label, r in results.items():
        train, probes = r.train, r.probes
        ax1.plot(train.index, train["reward"].rolling(5, min_periods=1).mean(), label=label)
        ax2.plot(probes.index, probes["probe/mean_reward"], "o-", label=label)
    ax1.set(title="training batches (rolling mean of 5)", xlabel="RFT step", ylabel="mean reward")
    ax2.set(title=f"held-out probe ({cfg.n_probe} prompts x {cfg.probe_k} samples)", xlabel="RFT step")
    ax2.legend(fontsize=8)
    fig.suptitle(f"Reward during RFT ({where})", y=1.02)
    return fig
