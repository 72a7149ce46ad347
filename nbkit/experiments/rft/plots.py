"""The 02 notebook's figures, arms side by side. results: {label: RftResult}, arms with the same RFT budget and
probe prompts; where: the caption (profile and hardware, `nbkit.plots.caption`). Each returns its figure.

    fig = plot_std_histograms(results, where); plt.show()
"""

from __future__ import annotations

from nbkit.experiments.rft.signal_map import plot_scaling


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
        ax.stackplot(split.index, split.T.values, labels=["all wrong", "all right"],
                     colors=["tab:red", "tab:green"], alpha=0.35)  # fmt: skip
        ax.plot(probes.index, probes["probe/frac_zero_std_all_wrong"], "o--", color="tab:red",
                label="probe: all wrong")  # fmt: skip
        ax.plot(probes.index, probes["probe/frac_zero_std_all_right"], "s--", color="tab:green",
                label="probe: all right")  # fmt: skip
        ax.set(title=label, xlabel="RFT step", ylim=(0, 1))
    axes[0].set_ylabel("share of prompts with zero reward std")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Zero-std prompts during RFT ({where})", y=1.03)
    return fig


def plot_signal_maps(results: dict, where: str = ""):
    """One row per arm: its signal map and its reward gain against starting std (`signal_map.plot_signal_map`)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(results), 2, figsize=(14, 15), gridspec_kw={"width_ratios": [1.3, 1]}, constrained_layout=True,
        squeeze=False,
    )  # fmt: skip
    for (ax_map, ax_gain), (label, r) in zip(axes, results.items()):
        r.plot_signal_map(ax_map, ax_gain, title=label)
    fig.suptitle(f"Per-prompt reward std during RFT, and reward gain against starting std ({where})")
    return fig


def plot_gradient_scaling(table, where: str = ""):
    """Gradient norm against reward std under the two advantage scalings, and their ratio (`plot_scaling`).
    table: `RftResult.scaling_table()`."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    plot_scaling(table, axes)
    fig.suptitle(f"Per-prompt gradient norm under the two advantage scalings ({where})", y=1.02)
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
