import numpy as np
import pytest

from nbkit.claims import bootstrap_interval, needed_n, paired, unpaired


def test_paired_clear_rise_agrees_and_interval_brackets_effect():
    before = np.zeros(48)
    after = np.r_[np.ones(30), np.zeros(18)]
    c = paired(after, before, "rises")
    assert c.verdict == "AGREES"
    assert c.effect == pytest.approx(30 / 48)
    assert c.lo <= c.effect <= c.hi
    assert c.lo > 0.4 and c.hi < 0.8
    assert str(c).startswith("AGREES: rises: +0.625")


def test_paired_fall_departs_when_rise_predicted():
    c = paired(np.zeros(40), np.r_[np.ones(30), np.zeros(10)], "rises")
    assert c.verdict == "DEPARTS"


def test_noise_is_inconclusive_with_a_sample_size():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 2, 8), rng.integers(0, 2, 8)
    a[0], b[0] = 1, 0  # a small nonzero effect
    c = paired(a, b, "x")
    assert c.verdict == "INCONCLUSIVE"
    assert c.n_needed is None or c.n_needed > 8
    assert "would decide" in str(c) or "no effect" in str(c)


def test_needed_n_golden():
    d = np.array([0.5, -0.5] * 50)  # sd ~0.5025
    assert needed_n(d, 0.1) == int(np.ceil((1.96 * np.std(d, ddof=1) / 0.1) ** 2))
    assert needed_n(d, 0.0) is None


def test_unpaired():
    clear = unpaired(np.ones(30), np.zeros(30), "b beats a")
    assert clear.verdict == "AGREES" and clear.effect == 1.0
    noise = unpaired(np.r_[np.ones(13), np.zeros(11)], np.r_[np.ones(12), np.zeros(12)], "b beats a")
    assert noise.verdict == "INCONCLUSIVE" and noise.effect == pytest.approx(1 / 24)
    assert noise.lo < 0 < noise.hi and noise.n_needed > 24


def test_errors_are_one_line():
    with pytest.raises(ValueError, match="pair the same items"):
        paired([1, 0], [1], "x")
    with pytest.raises(ValueError, match="no values"):
        bootstrap_interval([])
