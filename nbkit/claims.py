"""Claims with error bars: an effect, its 95% interval, a test's p-value, and a verdict that needs both.

Every notebook ends its experiments with claim cells. A claim compares what we measured with what the paper says,
on a few dozen problems or prompts, so it must carry its noise:

- AGREES when the interval lies entirely on the paper's side of the null (0 for a difference) and p < 0.05;
- DEPARTS when the interval lies entirely on the other side and p < 0.05;
- INCONCLUSIVE otherwise (an interval that touches the null decides nothing), with the sample size that would
  decide an effect of the observed size.

    from nbkit.claims import paired, unpaired, Claim
    c = paired(after, before, claim="STaR raises 3-digit accuracy")   # per-problem 0/1 scores, same problems
    print(c)    # AGREES: STaR raises 3-digit accuracy: +0.54 [95% CI +0.40, +0.67], p=3.7e-08, n=48

Paired (both arms scored on the same items, the usual case here):
- the interval is a percentile bootstrap over items of the mean difference;
- the test is the paired sign-flip test: under "the arms do not differ", each item's difference is as likely
  to be +d as -d. For 0/1 scores the differences are -1, 0 or +1 and the test is exactly McNemar's (a two-sided
  binomial test on the discordant items), computed exactly; otherwise it enumerates all sign flips of the nonzero
  differences when there are at most 16, and draws 20,000 at random beyond that.

Why both, and why the sign-flip test rather than a BCa interval: the percentile bootstrap is too generous when
few items change. 4 of 48 problems improved and none got worse gives an interval of [+0.02, +0.17], yet getting
4 heads in 4 fair coin flips has p = 0.125. That small-effect regime is where our claims live, and there the
sign-flip test is exact (it needs no large-sample theory), while BCa's correction is itself estimated from the
same few changes and is degenerate when most differences are equal (many prompts gain exactly 0). One test also
covers both kinds of data: on 0/1 scores the sign-flip test is McNemar's.

Unpaired (two groups of items, e.g. prompts that started with or without reward spread): the interval is a
bootstrap over clusters (a prompt probed in three arms is one cluster: its rows are drawn together), the verdict
is the interval's alone (p is None).

The tests are implemented here (a binomial sum and a sign-flip loop, a few lines each) rather than taken from
scipy, which is not among nbkit's dependencies; the tests pin them to hand-computed p-values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.96
ALPHA = 0.05
EXACT_FLIPS = 16  # enumerate all 2^m sign flips up to this many nonzero differences
RANDOM_FLIPS = 20_000


@dataclass(frozen=True)
class Claim:
    """One claim: the effect (b - a, or a statistic), its interval, a test's p (None: the interval decides alone),
    n, and what the paper predicts (+1 or -1)."""

    claim: str
    effect: float
    lo: float
    hi: float
    n: int
    direction: int = 1  # +1: the paper predicts effect > null; -1: effect < null
    null: float = 0.0
    n_needed: int | None = None
    p: float | None = None

    @property
    def verdict(self) -> str:
        side = 1 if self.lo > self.null else -1 if self.hi < self.null else 0
        if side == 0 or (self.p is not None and not self.p < ALPHA):
            return "INCONCLUSIVE"
        return "AGREES" if side * self.direction > 0 else "DEPARTS"

    @property
    def decided(self) -> bool:
        return self.verdict != "INCONCLUSIVE"

    def __str__(self) -> str:
        p = "" if self.p is None else f", p={self.p:.3g}"
        text = f"{self.verdict}: {self.claim}: {self.effect:+.3g} [95% CI {self.lo:+.3g}, {self.hi:+.3g}]{p}, n={self.n}"
        if not self.decided:
            why = (
                f"the interval includes {self.null:g}"
                if self.lo <= self.null <= self.hi
                else f"p >= {ALPHA:g}"
            )
            text += f"; {why}, " + (
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
            "p": self.p,
            "n": self.n,
            "n_needed": self.n_needed,
            "direction": self.direction,
            "null": self.null,
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


def sign_test_p(k: int, m: int) -> float:
    """Exact two-sided binomial test of k successes in m fair trials (McNemar's test on m discordant pairs, k of
    them in favour of one arm): the chance of a split at least as lopsided.

    Example: sign_test_p(4, 4) -> 2 * (1/2)^4 = 0.125; sign_test_p(7, 8) -> 2 * (1 + 8) / 256 = 0.0703125
    """
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(k, m - k) + 1))
    return min(1.0, 2 * tail / 2**m)


def _two_values(d: np.ndarray) -> bool:
    """The nonzero differences all have the same size (e.g. 0/1 scores): the sign-flip test is a binomial one."""
    nz = np.abs(d[d != 0])
    return len(nz) == 0 or bool(np.allclose(nz, nz[0]))


def sign_flip_p(diffs, seed: int = 0) -> float:
    """Two-sided paired sign-flip test of mean(diffs) = 0: the share of sign assignments of the nonzero differences
    whose |sum| is at least the observed |sum|. Exact (McNemar's) when the nonzero differences share one size,
    exact enumeration up to 16 of them, else 20,000 random flips (p = (1 + hits) / (1 + flips)).

    Example: diffs [1, 2, 3, -0.5]: of the 16 sign flips, 4 reach |sum| >= 5.5 (+-6.5, +-5.5) -> p = 0.25
    """
    d = np.asarray(diffs, dtype=float)
    d = d[d != 0]
    if _two_values(d):
        return sign_test_p(int((d > 0).sum()), len(d))
    observed = abs(d.sum()) * (1 - 1e-9)  # float sums of the same terms may differ in the last bits
    if len(d) <= EXACT_FLIPS:
        signs = 1 - 2 * ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1)  # (2^m, m) of +-1
        return float(np.mean(np.abs(signs @ d) >= observed))
    rng = np.random.default_rng(seed)
    hits = sum(
        int((np.abs(rng.choice([-1.0, 1.0], size=(2000, len(d))) @ d) >= observed).sum())
        for _ in range(RANDOM_FLIPS // 2000)
    )
    return (1 + hits) / (1 + RANDOM_FLIPS)


def needed_n(diffs, effect: float) -> int | None:
    """Items at which, with per-item differences in the observed mix, both the 95% interval would clear 0 (normal
    approximation: (1.96 sd / effect)^2) and the sign-flip test would reach p < 0.05. For 0/1 scores the test part
    is exact: the smallest n whose discordant counts, at the observed rates, give McNemar p < 0.05; otherwise its
    normal approximation 1.96^2 mean(d^2) / effect^2 (the sign-flip null variance of the mean is mean(d^2) / n).

    Example: 4 of 48 improved, none worse -> 6 discordant pairs are needed (p = 0.031): n = 66 (66 / 12 = 5.5 -> 6)
    """
    d = np.asarray(diffs, dtype=float)
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else 0.0
    if effect == 0 or sd == 0:
        return None
    for_interval = math.ceil((Z95 * sd / abs(effect)) ** 2)
    if not _two_values(d):
        return max(for_interval, math.ceil(Z95**2 * float(np.mean(d**2)) / effect**2))
    up, down = float(np.mean(d > 0)), float(np.mean(d < 0))

    def decides(n: int) -> bool:
        k, j = math.floor(n * up + 0.5), math.floor(n * down + 0.5)
        return sign_test_p(k, k + j) < ALPHA

    lo, hi = 1, max(2, len(d))  # bisect for the first n that decides; ties make it "about"
    while not decides(hi):
        lo, hi = hi, hi * 2
        if hi > 10**8:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if decides(mid) else (mid, hi)
    return max(for_interval, hi)


def paired(after, before, claim: str, direction: int = 1, n_boot: int = 2000, seed: int = 0) -> Claim:
    """Mean of after - before over the same items (e.g. per-problem 0/1 correctness), with its bootstrap interval
    and the sign-flip test's p (McNemar's for 0/1 scores).

    after, before: shape (n,), item i scored under both arms.
    Example: 4 of 48 problems improved, none got worse -> +0.083 [95% CI +0.021, +0.167], p=0.125: INCONCLUSIVE
    """
    a, b = np.asarray(after, dtype=float), np.asarray(before, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired claim: {a.shape} vs {b.shape} scores; pair the same items in both arms")
    d = a - b
    lo, hi = bootstrap_interval(d, n_boot=n_boot, seed=seed)
    eff = float(d.mean()) if len(d) else 0.0
    return Claim(claim, eff, lo, hi, len(d), direction, 0.0, needed_n(d, eff), sign_flip_p(d, seed))


def unpaired(
    b, a, claim: str, direction: int = 1, n_boot: int = 2000, seed: int = 0, clusters: tuple | None = None
) -> Claim:
    """mean(b) - mean(a) for two groups of items, with a bootstrap interval over clusters; n counts clusters.

    clusters: (ids of b's items, ids of a's items); items that share an id (one prompt probed in several arms,
    whichever group each row fell in) are drawn together. None: every item is its own cluster.
    Example: b = [1, 1], a = [0, 0], clusters (["p", "q"], ["p", "q"]) -> effect 1.0 over n=2 clusters
    """
    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(va) == 0 or len(vb) == 0:
        raise ValueError("unpaired claim: an arm has no items")
    ids_b, ids_a = clusters if clusters is not None else (range(len(vb)), range(len(vb), len(vb) + len(va)))
    if (len(ids_b), len(ids_a)) != (len(vb), len(va)):
        raise ValueError("unpaired claim: give one cluster id per item")
    names, cluster = np.unique([str(i) for i in [*ids_b, *ids_a]], return_inverse=True)
    values, in_b = np.r_[vb, va], np.r_[np.ones(len(vb)), np.zeros(len(va))]
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(names), np.full(len(names), 1 / len(names)), size=n_boot)[:, cluster]
    n_b, n_a = weights @ in_b, weights @ (1 - in_b)
    ok = (n_b > 0) & (n_a > 0)  # a draw that misses a group altogether has no difference
    boots = (weights @ (values * in_b))[ok] / n_b[ok] - (weights @ (values * (1 - in_b)))[ok] / n_a[ok]
    eff = float(vb.mean() - va.mean())
    lo, hi = float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))
    se = float(np.std(boots))  # shrinks as 1/sqrt(clusters): scale the cluster count to put 1.96 se under eff
    n_needed = math.ceil(len(names) * (Z95 * se / abs(eff)) ** 2) if eff and se else None
    return Claim(claim, eff, lo, hi, len(names), direction, 0.0, n_needed)


def binomial_p(k: int, n: int, p0: float) -> float:
    """Exact two-sided binomial test of k successes in n trials against a success rate p0: the chance, under p0, of
    an outcome no more likely than k (the usual "minlike" two-sided p).

    Example: binomial_p(10, 10, 0.5) -> 2 * 0.5^10 = 0.00195; binomial_p(5, 10, 0.5) -> 1.0
    """
    if n == 0:
        return 1.0
    probs = [math.comb(n, i) * p0**i * (1 - p0) ** (n - i) for i in range(n + 1)]
    return min(1.0, sum(q for q in probs if q <= probs[k] * (1 + 1e-7)))


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a share k / n: stays inside [0, 1] and is not empty at 0 or n (unlike k/n +- z se).

    Example: wilson_interval(48, 48) -> (0.926, 1.0); wilson_interval(0, 48) -> (0.0, 0.074)
    """
    if n == 0:
        return 0.0, 1.0
    phat, z2 = k / n, z * z
    mid, half = (
        (phat + z2 / (2 * n)) / (1 + z2 / n),
        z * math.sqrt(phat * (1 - phat) / n + z2 / (4 * n * n)) / (1 + z2 / n),
    )
    return max(0.0, mid - half), min(1.0, mid + half)


def share(values, target: float, claim: str, direction: int = 1) -> Claim:
    """A share of 0/1 items against a target share (a level, not a difference): the share, its Wilson interval,
    and the exact binomial test against `target`. AGREES (direction +1) when the interval lies above the target
    and p < 0.05: the share is at least the target, beyond noise.

    Example: 46 of 48 right against 0.5 -> 0.958 [95% CI 0.860, 0.988], p=8.4e-12: AGREES
    """
    v = np.asarray(values, dtype=float)
    if not np.isin(v, (0.0, 1.0)).all():
        raise ValueError("share claim: the items must be 0/1 (right or wrong)")
    if not 0 < target < 1:
        raise ValueError(f"share claim: the target share must lie in (0, 1), got {target}")
    k, n = int(v.sum()), len(v)
    if n == 0:
        raise ValueError("share claim: no items; nothing to estimate")
    lo, hi = wilson_interval(k, n)
    n_needed = None
    if k / n != target:  # the n at which a share this far from the target clears it (Wilson, normal approx.)
        q = k / n
        n_needed = (
            math.ceil(Z95**2 * q * (1 - q) / (q - target) ** 2)
            if 0 < q < 1
            else math.ceil(Z95**2 / abs(q - target))
        )
    return Claim(claim, k / n, lo, hi, n, direction, target, n_needed, binomial_p(k, n, target))
