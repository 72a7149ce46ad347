"""Claims with error bars: an effect, its bootstrap 95% interval, and a verdict the interval decides.

Every notebook ends its experiments with claim cells. A claim compares what we measured with what the paper says,
on a few dozen problems or prompts, so it must carry its noise:

- AGREES when the interval lies entirely on the paper's side of the null (0 for a difference);
- DEPARTS when it lies entirely on the other side;
- INCONCLUSIVE otherwise, with the sample size that would make an effect of the observed size decisive.

    from nbkit.claims import paired, unpaired, Claim
    c = paired(after, before, claim="STaR raises 3-digit accuracy")   # per-problem 0/1 scores, same problems
    print(c)    # AGREES: STaR raises 3-digit accuracy: +0.54 [95% CI +0.40, +0.67], n=48

The interval is a percentile bootstrap over items (problems or prompts): resample items with replacement, recompute
the mean difference. Paired when both arms were scored on the same items (the usual case here), unpaired otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.96


@dataclass(frozen=True)
class Claim:
    """One claim: the effect (b - a, or a statistic), its interval, n, and what the paper predicts (+1 or -1)."""

    claim: str
    effect: float
    lo: float
    hi: float
    n: int
    direction: int = 1  # +1: the paper predicts effect > null; -1: effect < null
    null: float = 0.0
    n_needed: int | None = None

    @property
    def verdict(self) -> str:
        above, below = self.lo > self.null, self.hi < self.null
        if (above and self.direction > 0) or (below and self.direction < 0):
            return "AGREES"
        if above or below:
            return "DEPARTS"
        return "INCONCLUSIVE"

    @property
    def decided(self) -> bool:
        return self.verdict != "INCONCLUSIVE"

    def __str__(self) -> str:
        text = f"{self.verdict}: {self.claim}: {self.effect:+.3g} [95% CI {self.lo:+.3g}, {self.hi:+.3g}], n={self.n}"
        if not self.decided:
            text += f"; the interval includes {self.null:g}, " + (
                f"about n={self.n_needed} would decide an effect this size"
                if self.n_needed
                else "no effect was measured, so no sample size would decide it"
            )
        return text

    def _repr_markdown_(self) -> str:  # Jupyter shows the verdict in bold
        head, _, rest = str(self).partition(": ")
        return f"**{head}**: {rest}"

    def row(self) -> dict:
        return {
            "claim": self.claim,
            "verdict": self.verdict,
            "effect": self.effect,
            "ci_lo": self.lo,
            "ci_hi": self.hi,
            "n": self.n,
            "n_needed": self.n_needed,
        }


def bootstrap_interval(
    values, stat=np.mean, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` over the rows of `values` (shape (n,) or (n, k)).

    Example: bootstrap_interval([1, 1, 0, 1]) -> about (0.25, 1.0)
    """
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        raise ValueError("bootstrap_interval: no values (0 items); nothing to estimate")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))
    stats = np.array([stat(v[i]) for i in idx])
    tail = (1 - level) / 2
    return float(np.quantile(stats, tail)), float(np.quantile(stats, 1 - tail))


def needed_n(diffs, effect: float) -> int | None:
    """Items that would put the normal-approximation 95% interval of a mean this size clear of 0.

    Example: per-item differences with sd 0.5 and a mean of 0.1 -> (1.96 * 0.5 / 0.1)^2 = 97
    """
    sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0
    if effect == 0 or sd == 0:
        return None
    return int(math.ceil((Z95 * sd / abs(effect)) ** 2))


def paired(after, before, claim: str, direction: int = 1, n_boot: int = 2000, seed: int = 0) -> Claim:
    """Mean of after - before over the same items (e.g. per-problem 0/1 correctness), with its bootstrap interval.

    after, before: shape (n,), item i scored under both arms.
    """
    a, b = np.asarray(after, dtype=float), np.asarray(before, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired claim: {a.shape} vs {b.shape} scores; pair the same items in both arms")
    d = a - b
    lo, hi = bootstrap_interval(d, n_boot=n_boot, seed=seed)
    eff = float(d.mean()) if len(d) else 0.0
    return Claim(claim, eff, lo, hi, len(d), direction, 0.0, needed_n(d, eff))


def unpaired(b, a, claim: str, direction: int = 1, n_boot: int = 2000, seed: int = 0) -> Claim:
    """mean(b) - mean(a) for two independent samples, each resampled on its own."""
    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(va) == 0 or len(vb) == 0:
        raise ValueError("unpaired claim: an arm has no items")
    rng = np.random.default_rng(seed)
    boots = np.array(
        [
            vb[rng.integers(0, len(vb), len(vb))].mean() - va[rng.integers(0, len(va), len(va))].mean()
            for _ in range(n_boot)
        ]
    )
    eff = float(vb.mean() - va.mean())
    lo, hi = float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))
    sd = math.sqrt(va.var(ddof=1) + vb.var(ddof=1)) if min(len(va), len(vb)) > 1 else 0.0
    n_needed = int(math.ceil((Z95 * sd / abs(eff)) ** 2)) if eff and sd else None
    return Claim(claim, eff, lo, hi, min(len(va), len(vb)), direction, 0.0, n_needed)
