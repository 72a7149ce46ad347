"""Small plotting helpers shared by the notebooks. Every figure says which profile and hardware produced it."""

from __future__ import annotations

import matplotlib.pyplot as plt

from nbkit.hardware import hardware_label


def caption(profile: str) -> str:
    """Every figure's second title line. Example: "profile: cpu | CPU AMD EPYC, 2 threads"."""
    return f"profile: {profile} | {hardware_label()}"


def accuracy_by_difficulty(
    results: dict[str, dict], title: str, profile: str, xlabel: str = "digits", ax=None
):
    """Grouped bars: results maps a label (e.g. "iteration 2") to {difficulty: accuracy}."""
    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    labels = list(results)
    levels = sorted({d for r in results.values() for d in r})
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        xs = [j + i * width for j in range(len(levels))]
        ax.bar(xs, [100 * results[label].get(d, 0.0) for d in levels], width=width, label=label)
    ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(levels))], [str(d) for d in levels])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{title}\n{caption(profile)}", fontsize=10)
    if len(labels) > 1:
        ax.legend(fontsize=8)
    return ax
