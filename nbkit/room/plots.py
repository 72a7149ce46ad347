"""The room's figures and exports: each laptop's claims as dots with their intervals and the pooled estimate, every
laptop's curves with their median, and minutes per stage against the CPU.

Figures are matplotlib `Figure`s made without pyplot, so that the room's server threads share no global state.
`export(entries, folder)` writes the pooled table as CSV and every figure as PNG.
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from nbkit.room import pool

COLORS = {"AGREES": "tab:green", "DEPARTS": "tab:red", "INCONCLUSIVE": "tab:gray", None: "tab:gray"}


def forest(entries: list[dict], title: str = "") -> Figure:
    """One panel per claim with an effect: each laptop's estimate and within-run interval (colored by its verdict),
    and at the bottom the pooled estimate with its between-laptop interval (a diamond, black)."""
    claims, pooled = pool.laptop_claims(entries), pool.pool_claims(entries).set_index("key")
    claims = claims.dropna(subset=["effect", "lo", "hi"])
    keys = [k for k in pooled.index if k in set(claims["key"])]
    if not keys:
        return _empty("no claim with an effect and an interval yet")
    k = max(len(claims[claims["key"] == key]) for key in keys)
    fig = Figure(figsize=(9, len(keys) * (0.9 + 0.22 * k)), layout="constrained")
    axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
    for ax, key in zip(axes, keys):
        rows, p = claims[claims["key"] == key].reset_index(drop=True), pooled.loc[key]
        for y, r in rows.iterrows():
            ax.errorbar(
                r.effect,
                y,
                xerr=[[r.effect - r.lo], [r.hi - r.effect]],
                fmt="o",
                color=COLORS.get(r.verdict, "tab:gray"),
                ms=4,
                capsize=2,
            )
        labels = [f"{r.name} (seed {r.seed})" for r in rows.itertuples()]
        if not math.isnan(p.lo):
            y = len(rows) + 0.5
            ax.errorbar(
                p.effect, y, xerr=[[p.effect - p.lo], [p.hi - p.effect]], fmt="D", color="black", capsize=3
            )
            labels.append("pooled")
            y_ticks = [*range(len(rows)), y]
        else:
            y_ticks = list(range(len(rows)))
        ax.axvline(p.null, color="0.6", lw=0.8, ls="--")  # 0 for a difference, the target for a level
        ax.set_yticks(y_ticks, labels, fontsize=7)
        ax.invert_yaxis()
        counts = " ".join(f"{p[v]} {v.lower()}" for v in pool.COUNTED)
        head = (
            f"pooled {p.verdict or '(needs 2 laptops)'}: {p.effect:+.3f} [{p.lo:+.3f}, {p.hi:+.3f}]; {counts}"
        )
        ax.set_title(textwrap.shorten(p.claim, 110) + "\n" + head, fontsize=8, loc="left")
    axes[-1].set_xlabel(
        "effect (dots: one laptop, its interval within the run; diamond: pooled, between laptops)"
    )
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def overlay(entries: list[dict], title: str = "") -> Figure:
    """One panel per curve and series (the series of one curve on one y scale): every laptop's curve, thin, and the
    laptops' median, thick."""
    frame = pool.curves(entries)
    if frame.empty:
        return _empty("no curves yet")
    medians = pool.curve_medians(frame)
    panels = list(dict.fromkeys(zip(frame["curve"], frame["series"])))
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4 * cols, 3 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (curve, series) in zip(axes, panels):
        part = frame[(frame["curve"] == curve) & (frame["series"] == series)]
        for _, line in part.groupby("laptop", sort=False):
            ax.plot(_x(line["x"]), line["y"], color="tab:blue", alpha=0.35, lw=1, marker=".", ms=3)
        med = medians[(medians["curve"] == curve) & (medians["series"] == series)]
        ax.plot(
            _x(med["x"]), med["median"], color="black", lw=2.5, label=f"median of {part['laptop'].nunique()}"
        )
        ax.set_title(series if series == curve else f"{curve}: {series}", fontsize=9)
        ax.legend(fontsize=7)
    # one curve's series on one scale, so that the runs compare by eye
    for curve in dict.fromkeys(c for c, _ in panels):
        shown = [ax for ax, (c, _) in zip(axes, panels) if c == curve]
        lo, hi = min(ax.get_ylim()[0] for ax in shown), max(ax.get_ylim()[1] for ax in shown)
        for ax in shown:
            ax.set_ylim(lo, hi)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _x(values: pd.Series) -> list:
    """x values as numbers when they all are ("1", "2" included), else as labels."""
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return [str(v) for v in values]


def minutes(entries: list[dict], title: str = "") -> Figure:
    """One panel per stage: minutes of each laptop against its CPU model (which machines will struggle)."""
    frame = pool.stage_minutes(entries)
    if frame.empty:
        return _empty("no times yet: `nbkit report` summaries carry minutes per notebook")
    stages = list(dict.fromkeys(frame["stage"]))
    cpus = sorted(set(frame["cpu"]))
    fig = Figure(figsize=(4 * len(stages), 1.2 + 0.35 * len(cpus)), layout="constrained")
    axes = fig.subplots(1, len(stages), squeeze=False, sharey=True)[0]
    for ax, stage in zip(axes, stages):
        part = frame[frame["stage"] == stage]
        ax.scatter(part["minutes"], [cpus.index(c) for c in part["cpu"]], alpha=0.7)
        ax.axvline(part["minutes"].median(), color="0.5", ls="--", lw=0.8)
        ax.set_title(f"{stage} (median {part['minutes'].median():.1f} min)", fontsize=9)
        ax.set_xlabel("minutes")
        ax.set_xlim(left=0)
    axes[0].set_yticks(range(len(cpus)), [textwrap.shorten(c, 40) for c in cpus], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _empty(message: str) -> Figure:
    fig = Figure(figsize=(6, 1))
    fig.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def export(entries: list[dict], folder: str | Path) -> list[Path]:
    """Write pooled.csv (every experiment's pooled claims), laptops.csv, and for each experiment its three figures
    as PNG (forest-, curves-, minutes-<experiment>.png) into `folder`; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables, people, paths = [], [], []
    for label, group in pool.groups(entries).items():
        tables.append(pool.pool_claims(group).drop(columns="key").assign(experiment=label))
        people.append(pool.laptops(group).assign(experiment=label))
        slug = re.sub(r"[^\w]+", "-", label).strip("-")
        for name, draw in (("forest", forest), ("curves", overlay), ("minutes", minutes)):
            path = folder / f"{name}-{slug}.png"
            draw(group, label).savefig(path, dpi=110)
            paths.append(path)
    for name, frames in (("pooled.csv", tables), ("laptops.csv", people)):
        path = folder / name
        (pd.concat(frames) if frames else pd.DataFrame()).to_csv(path, index=False)
        paths.insert(0, path)
    return paths
