import math

import numpy as np
import pytest

from nbkit.claims import (
    Claim,
    bootstrap_interval,
    needed_n,
    paired,
    sign_flip_p,
    sign_test_p,
    unpaired,
)


def _improved(k: int, n: int = 48, worse: int = 0):
    """k of n problems right after and wrong before, `worse` the other way round, the rest unchanged (wrong)."""
    after = np.r_[np.ones(k), np.zeros(worse), np.zeros(n - k - worse)]
    before = np.r_[np.zeros(k), np.ones(worse), np.zeros(n - k - worse)]
    return after, before


def test_paired_clear_rise_agrees_and_interval_brackets_effect():
    before = np.zeros(48)
    after = np.r_[np.ones(30), np.zeros(18)]
    c = paired(after, before, "rises")
    assert c.verdict == "AGREES"
    assert c.effect == pytest.approx(30 / 48)
    assert c.lo <= c.effect <= c.hi
    assert c.lo > 0.4 and c.hi < 0.8
    assert c.p == pytest.approx(2 * 0.5**30)  # 30 discordant pairs, all one way
    assert str(c).startswith("AGREES: rises: +0.625 [95% CI") and ", p=1.86e-09, n=48" in str(c)


@pytest.mark.parametrize(
    "k, p, verdict",
    [
        (
            4,
            0.125,
            "INCONCLUSIVE",
        ),  # 2 * (1/2)^4: the old percentile-only rule said AGREES, CI [+0.021, +0.167]
        (5, 0.0625, "INCONCLUSIVE"),  # 2 * (1/2)^5
        (6, 0.03125, "AGREES"),  # 2 * (1/2)^6
    ],
)
def test_few_changed_items_need_the_exact_test_too(k, p, verdict):
    c = paired(*_improved(k), "rises")
    assert c.lo > 0  # the bootstrap interval alone would call all three
    assert c.p == pytest.approx(p) and c.verdict == verdict
    assert f"p={p:.3g}" in str(c)
    if verdict == "INCONCLUSIVE":
        assert "p >= 0.05" in str(c) and "would decide" in str(c)


def test_needed_n_is_where_the_exact_test_decides():
    # 4 of 48 improved: 6 discordant pairs reach p < 0.05, i.e. n / 12 >= 5.5 -> n = 66; and 66 does decide
    c = paired(*_improved(4), "rises")
    assert c.n_needed == 66
    assert paired(*_improved(6, 66 + 6), "rises").verdict == "AGREES"  # round(72 / 12) = 6 improved
    assert needed_n(_improved(5)[0] - _improved(5)[1], 5 / 48) == 53  # 53 * 5 / 48 = 5.52 -> 6


def test_paired_fall_departs_when_rise_predicted():
    c = paired(np.zeros(40), np.r_[np.ones(30), np.zeros(10)], "rises")
    assert c.verdict == "DEPARTS"


def test_direction_minus_one_agrees_with_a_clear_decrease():
    after, before = _improved(0, worse=10)  # 10 of 48 got worse, none better
    c = paired(after, before, "falls", direction=-1)
    assert c.effect == pytest.approx(-10 / 48) and c.hi < 0
    assert c.p == pytest.approx(2 * 0.5**10) and c.verdict == "AGREES"
    assert paired(before, after, "falls", direction=-1).verdict == "DEPARTS"


def test_an_interval_ending_at_the_null_decides_nothing():
    assert Claim("x", 0.1, 0.0, 0.2, 48, p=0.001).verdict == "INCONCLUSIVE"
    assert Claim("x", -0.1, -0.2, 0.0, 48, direction=-1, p=0.001).verdict == "INCONCLUSIVE"
    assert Claim("x", 0.1, 0.01, 0.2, 48, p=0.05).verdict == "INCONCLUSIVE"  # p must be below 0.05
    assert Claim("x", 0.1, 0.01, 0.2, 48, p=0.049).verdict == "AGREES"
    assert Claim("x", 0.1, 0.01, 0.2, 48).verdict == "AGREES"  # no test: the interval decides alone
    assert "the interval includes 0" in str(Claim("x", 0.1, 0.0, 0.2, 48, p=0.001, n_needed=80))


def test_golden_p_values():
    assert sign_test_p(4, 4) == 0.125
    assert sign_test_p(7, 8) == pytest.approx(2 * (1 + 8) / 256)  # 1 against, 7 for: P(<=1 of 8) doubled
    assert sign_test_p(3, 9) == pytest.approx(2 * (1 + 9 + 36 + 84) / 512)
    assert sign_test_p(5, 10) == 1.0 and sign_test_p(0, 0) == 1.0
    # 0/1 differences: the sign-flip test is McNemar's; zeros (concordant pairs) do not count
    assert sign_flip_p([1, 1, 1, 1, 0, 0, 0]) == 0.125
    assert sign_flip_p([1, 1, 1, 1, 1, 1, 1, -1]) == pytest.approx(18 / 256)
    # of the 16 sign flips of [1, 2, 3, 0.5], 4 reach |sum| >= 5.5: +-6.5 and +-5.5
    assert sign_flip_p([1, 2, 3, -0.5]) == pytest.approx(4 / 16)
    assert sign_flip_p([0.5, 0.25]) == 0.5  # flips give +-0.75, +-0.25: half reach 0.75


def test_sign_flip_p_by_random_flips_is_close_to_the_exact_one():
    d = np.arange(1, 19) * np.r_[np.ones(14), -np.ones(4)]  # 18 differences: beyond exact enumeration
    signs = 1 - 2 * ((np.arange(2**18)[:, None] >> np.arange(18)) & 1)
    exact = np.mean(np.abs(signs @ d) >= abs(d.sum()))
    assert sign_flip_p(d) == pytest.approx(exact, abs=0.005)


def test_noise_is_inconclusive_with_a_sample_size():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 2, 8), rng.integers(0, 2, 8)
    a[0], b[0] = 1, 0  # a small nonzero effect
    c = paired(a, b, "x")
    assert c.verdict == "INCONCLUSIVE"
    assert c.n_needed is None or c.n_needed > 8
    assert "would decide" in str(c) or "no effect" in str(c)


def test_needed_n_golden_for_non_binary_differences():
    d = np.array([0.5, -0.25] * 50)  # mean 0.125, sd ~0.3768, mean(d^2) 0.15625
    interval = int(np.ceil((1.96 * np.std(d, ddof=1) / 0.125) ** 2))  # 35
    test = int(np.ceil(1.96**2 * 0.15625 / 0.125**2))  # 39: the sign-flip test is the stricter
    assert needed_n(d, 0.125) == max(interval, test) == 39
    assert needed_n(d, 0.0) is None


def test_paired_means_of_non_binary_values():
    gain = np.r_[np.full(10, 0.25), np.zeros(22)]  # 10 prompts gained 0.25: p = 2 / 2^10
    c = paired(gain, np.zeros(32), "gains")
    assert c.p == pytest.approx(2 / 1024) and c.verdict == "AGREES"
    c = paired(np.r_[0.25, 0.5, -0.125, np.zeros(29)], np.zeros(32), "gains")
    assert c.p == pytest.approx(4 / 8) and c.verdict == "INCONCLUSIVE"  # +-0.875, +-0.625 of 8 flips


def test_unpaired():
    clear = unpaired(np.ones(30), np.zeros(30), "b beats a")
    assert clear.verdict == "AGREES" and clear.effect == 1.0 and clear.p is None and clear.n == 60
    noise = unpaired(np.r_[np.ones(13), np.zeros(11)], np.r_[np.ones(12), np.zeros(12)], "b beats a")
    assert noise.verdict == "INCONCLUSIVE" and noise.effect == pytest.approx(1 / 24)
    assert noise.lo < 0 < noise.hi and noise.n_needed > 48


def test_unpaired_clusters_widen_the_interval_of_repeated_items():
    # 16 prompts, each seen in three arms with the same gain and group: 48 rows that hold 16 prompts' worth of
    # information. Bootstrapped as 48 items the interval is about sqrt(3) times too narrow.
    rng = np.random.default_rng(0)
    gain, group = np.repeat(rng.normal(0, 1, 16), 3), np.repeat(np.arange(16) < 8, 3)
    ids = np.repeat(np.arange(16), 3)
    rows = unpaired(gain[group], gain[~group], "x")
    clustered = unpaired(gain[group], gain[~group], "x", clusters=(ids[group], ids[~group]))
    assert clustered.effect == rows.effect and (rows.n, clustered.n) == (48, 16)
    assert (clustered.hi - clustered.lo) / (rows.hi - rows.lo) == pytest.approx(np.sqrt(3), rel=0.15)


def test_errors_are_one_line():
    with pytest.raises(ValueError, match="pair the same items"):
        paired([1, 0], [1], "x")
    with pytest.raises(ValueError, match="no values"):
        bootstrap_interval([])
    with pytest.raises(ValueError, match="one cluster id per item"):
        unpaired([1, 0], [1], "x", clusters=(["a"], ["b"]))


def test_share_against_a_target_level():
    from nbkit.claims import binomial_p, share, wilson_interval

    assert binomial_p(10, 10, 0.5) == pytest.approx(2 * 0.5**10)
    assert binomial_p(5, 10, 0.5) == 1.0
    assert binomial_p(0, 20, 0.2) == pytest.approx(
        0.8**20
        + sum(  # outcomes no likelier than 0 of 20
            math.comb(20, i) * 0.2**i * 0.8 ** (20 - i) for i in range(9, 21)
        )
    )
    lo, hi = wilson_interval(48, 48)
    assert lo == pytest.approx(0.9259, abs=1e-4) and hi == pytest.approx(1.0)
    c = share([1] * 46 + [0] * 2, 0.5, "3-digit accuracy at least 50%")
    assert c.verdict == "AGREES" and c.null == 0.5 and c.lo > 0.5
    c = share([1] * 12 + [0] * 36, 0.2, "4-digit accuracy at least 20%")
    assert c.verdict == "INCONCLUSIVE" and c.lo < 0.2 < c.effect and c.n_needed > 48
    assert share([1] * 2 + [0] * 46, 0.5, "x").verdict == "DEPARTS"
    with pytest.raises(ValueError, match="0/1"):
        share([0.5, 1], 0.5, "x")
