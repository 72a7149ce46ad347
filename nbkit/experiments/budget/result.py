"""What a budget sweep found: `BudgetResult`, its table, plots, the cold start and the paper's claims.

The claims compare two cells on the same held-out problems: a paired difference of per-problem 0/1 correctness with
a bootstrap 95% interval and McNemar's exact test (`nbkit.claims.paired`), AGREES / DEPARTS only when the interval
excludes 0 and p < 0.05.

Every figure and claim of a sweep is a method of `BudgetResult` (`result.plot_heatmap()`, `result.claims()`); the
module's functions behind them take the results table (and per-problem scores), so they can be checked on a table
made by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from nbkit.experiments.budget.config import BudgetError
from nbkit.files import read_jsonl

HIDDEN = ["sft_run", "dpo_run"]  # columns the printed table leaves out


@dataclass
class BudgetResult:
    """One row per (budget, SFT fraction) cell (`frame()`), and the registry that holds every run behind it."""

    # a pandas DataFrame: budget, fraction, n_sft, n_pairs, spent, accuracy, acc_d*, train_s, run, sft_run, dpo_run
    table: object
    registry: object  # nbkit.runs.Registry
    base_run: str
    base_accuracy: float | None
    seconds: float

    def __post_init__(self):
        self.table.attrs.update(
            base_run=self.base_run, base_accuracy=self.base_accuracy, seconds=self.seconds
        )

    def frame(self):
        """The results table (pandas), one row per cell, budget-major; `nbkit budget --out` writes it."""
        return self.table

    def eval_rows(self, run: str) -> list[dict]:
        return eval_rows(self.registry, run)

    def scores(self) -> dict[str, list[float]]:
        return problem_scores(self.registry, self.table)

    def claims(self) -> list:
        """The paper's three claims (see `claims`)."""
        return claims(self.table, self.scores())

    def claim_sft_wins_small(self):
        return claim_sft_wins_small(self.table, self.scores())

    def claim_dpo_from_base_worst(self) -> list:
        return claim_dpo_from_base_worst(self.table, self.scores())

    def claim_small_sft_rescues(self, small: float = 0.25) -> list:
        return claim_small_sft_rescues(self.table, self.scores(), small)

    def cold_start(self):
        return cold_start(self.registry, self.table, self.base_run)

    def side_by_side(self, names: dict[str, str], n: int = 6):
        return side_by_side(self.registry, names, n)

    def plot_heatmap(self, ax=None, title: str = ""):
        return plot_heatmap(self.table, ax, title)

    def plot_lines(self, ax=None, title: str = ""):
        return plot_lines(self.table, ax, title, self.base_accuracy)

    def plot_cold_start(self, where: str = ""):
        return plot_cold_start(self.registry, self.cold_start(), where)

    def say(self) -> str:
        """What `nbkit budget` prints: the table, the base model's accuracy and the time, then the claims."""
        lines = [
            self.table.drop(columns=HIDDEN).to_string(index=False),
            f"base model accuracy: {self.base_accuracy}; sweep took {self.seconds:.0f} s",
        ]
        return "\n".join(lines + [str(c) for c in self.claims()])


# --------------------------------------------------------------------------------------------- what runs hold


def eval_rows(reg, name: str) -> list[dict]:
    """The evaluation a run stored: [{question, answer, completion, difficulty, correct}, ...]."""
    path = reg.get(name).path / "eval.jsonl"
    return read_jsonl(path) if path.exists() else []


def problem_scores(reg, table) -> dict[str, list[float]]:
    """Per-problem correctness (0/1, in test-set order) of each cell's final run, by run name. Every cell is
    evaluated on the same held-out problems, so two cells' lists pair item by item."""
    return {run: [float(r["correct"]) for r in eval_rows(reg, run)] for run in table.run}


def side_by_side(reg, names: dict[str, str], n: int = 6):
    """A table of the first n test questions with each named run's answer, e.g. {"DPO from base": run, ...}."""
    import pandas as pd

    cols = {label: eval_rows(reg, run) for label, run in names.items()}
    first = next(iter(cols.values()))
    return pd.DataFrame(
        [
            {
                "question": r["question"],
                "answer": r["answer"],
                **{k: v[i]["completion"] for k, v in cols.items()},
            }
            for i, r in enumerate(first[:n])
        ]
    )


def cold_start(reg, table, base_run: str):
    """Per budget, the cold start in four numbers: the base model, the smallest SFT share alone, DPO from the base
    (f = 0) and that SFT share followed by DPO (the cell with the smallest f > 0 that still buys pairs).

    Returns a DataFrame, one row per budget, with those accuracies and the runs behind them.
    """
    import pandas as pd

    base = reg.get(base_run)
    rows = []
    for b, sub in table.groupby("budget"):
        cold, warm = (
            sub[sub.fraction == 0],
            sub[(sub.fraction > 0) & (sub.n_pairs > 0)].sort_values("fraction"),
        )
        if cold.empty or warm.empty:
            continue
        cold, warm = cold.iloc[0], warm.iloc[0]
        rows.append(
            {
                "budget": b,
                "base": base.summary.get("accuracy"),
                "sft_share_alone": reg.get(warm.sft_run).summary.get("accuracy") if warm.sft_run else None,
                "dpo_from_base": cold.accuracy,
                "sft_share_then_dpo": warm.accuracy,
                "n_sft": warm.n_sft,
                "n_pairs_cold": cold.n_pairs,
                "n_pairs_warm": warm.n_pairs,
                "base_run": base.name,
                "sft_run": warm.sft_run,
                "cold_run": cold.run,
                "warm_run": warm.run,
            }
        )
    return pd.DataFrame(rows)


# -------------------------------------------------------------------------------------------- paper claims


def _cell(table, budget: float, fraction: float):
    hit = table[(table.budget == budget) & (table.fraction == fraction)]
    return None if hit.empty else hit.iloc[0]


def claim_sft_wins_small(table, scores: dict):
    """Paper: with the smallest budget, spending it all on SFT beats every split that buys pairs. Tested against
    the best of those splits (picked on the same problems, which favours it: a conservative test).

    table: the sweep's table (budget, fraction, accuracy, run); scores: `problem_scores(reg, table)`. -> Claim
    """
    from nbkit.claims import paired

    b = table.budget.min()
    sft_only, others = _cell(table, b, 1.0), table[(table.budget == b) & (table.fraction < 1)]
    if sft_only is None or others.empty:
        raise BudgetError(f"the grid needs f = 1 and some f < 1 at B = {b:g} to check 'SFT only wins'")
    best = others.loc[others.accuracy.idxmax()]
    return paired(
        scores[sft_only.run],
        scores[best.run],
        f"at B = {b:g}, SFT only (acc {sft_only.accuracy:.2f}) minus the best split with pairs "
        f"(f = {best.fraction:g}, acc {best.accuracy:.2f})",
    )


def claim_dpo_from_base_worst(table, scores: dict) -> list:
    """Paper: f = 0 (all pairs, DPO straight from the base) is the worst split at every budget. Per budget, the
    weakest other split minus f = 0. -> [Claim per budget]"""
    from nbkit.claims import paired

    out = []
    for b, sub in table.groupby("budget"):
        cold, rest = _cell(table, b, 0.0), sub[sub.fraction > 0]
        if cold is None or rest.empty:
            raise BudgetError(f"the grid needs f = 0 and some f > 0 at B = {b:g} to check 'f = 0 is worst'")
        worst = rest.loc[rest.accuracy.idxmin()]
        out.append(
            paired(
                scores[worst.run],
                scores[cold.run],
                f"at B = {b:g}, the weakest split with SFT (f = {worst.fraction:g}, acc {worst.accuracy:.2f}) minus "
                f"DPO from base (f = 0, acc {cold.accuracy:.2f})",
            )
        )
    return out


def claim_small_sft_rescues(table, scores: dict, small: float = 0.25) -> list:
    """Paper: a small SFT share (the smallest 0 < f <= `small` that still buys pairs) beats DPO from the base.
    Per budget, that cell minus f = 0. -> [Claim per budget]"""
    from nbkit.claims import paired

    out = []
    for b, sub in table.groupby("budget"):
        cold = _cell(table, b, 0.0)
        mixed = sub[(sub.fraction > 0) & (sub.fraction <= small) & (sub.n_pairs > 0)]
        if cold is None or mixed.empty:
            raise BudgetError(
                f"the grid needs f = 0 and a share 0 < f <= {small:g} at B = {b:g} to check 'a small SFT share "
                f"rescues DPO'"
            )
        row = mixed.loc[mixed.fraction.idxmin()]
        out.append(
            paired(
                scores[row.run],
                scores[cold.run],
                f"at B = {b:g}, SFT share f = {row.fraction:g} then DPO (acc {row.accuracy:.2f}) minus DPO from base "
                f"(acc {cold.accuracy:.2f})",
            )
        )
    return out


def claims(table, scores: dict) -> list:
    """The paper's three claims as a flat list of Claims (see nbkit.claims). A claim the grid cannot check comes
    back as a line saying which cells it needs, e.g. "claim_small_sft_rescues: not checked: the grid needs ..."."""
    out: list = []
    for claim in (claim_sft_wins_small, claim_dpo_from_base_worst, claim_small_sft_rescues):
        try:
            found = claim(table, scores)
        except BudgetError as e:
            out.append(f"{claim.__name__}: not checked: {e}")
            continue
        out += found if isinstance(found, list) else [found]
    return out


# ------------------------------------------------------------------------------------------------------ plots


def plot_heatmap(table, ax=None, title: str = ""):
    """Accuracy per (budget, SFT fraction) cell, numbers written in."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    grid = table.pivot_table(index="budget", columns="fraction", values="accuracy")
    im = ax.imshow(
        grid.values, cmap="viridis", vmin=0, vmax=max(1e-9, float(grid.values.max())), aspect="auto"
    )
    ax.set_xticks(range(grid.shape[1]), [f"{f:g}" for f in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{b:g}" for b in grid.index])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid.values[i, j]:.2f}", ha="center", va="center", color="w")
    ax.set(xlabel="SFT fraction f", ylabel="budget B", title=title)
    plt.colorbar(im, ax=ax, label="accuracy")
    return ax


def plot_lines(table, ax=None, title: str = "", base_accuracy: float | None = None):
    """Accuracy against the SFT fraction, one line per budget; the base model as a dashed line."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    for b, sub in table.sort_values("fraction").groupby("budget"):
        ax.plot(sub.fraction, sub.accuracy, marker="o", label=f"B = {b:g}")
    if base_accuracy is not None:
        ax.axhline(base_accuracy, ls="--", color="grey", label="base model")
    ax.set(xlabel="SFT fraction f (0 = all DPO, 1 = all SFT)", ylabel="accuracy", title=title)
    ax.legend()
    return ax


def plot_cold_start(reg, cold, where: str = ""):
    """log p(chosen answer) during DPO, from the base against after the small SFT share: one panel per budget of
    the `cold_start` table `cold`; `where` (profile and hardware) ends each title. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cold), figsize=(6.5 * len(cold), 3.6), squeeze=False)
    for ax, row in zip(axes[0], cold.itertuples()):
        for label, run in [("DPO from base", row.cold_run), (f"DPO after SFT {row.n_sft}", row.warm_run)]:
            m = reg.get(run).metrics_frame().dropna(subset=["dpo/logps/chosen"])
            ax.plot(m.step, m["dpo/logps/chosen"], marker=".", label=label)
        ax.set(xlabel="DPO step", ylabel="log p(chosen answer)", title=f"B = {row.budget:g}\n{where}")
        ax.legend()
    return fig
