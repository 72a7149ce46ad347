"""Arena maths and vote storage: hand-computed ratings, symmetry (hypothesis), concurrent voters."""

import math
import random
import sqlite3
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbkit.arena import (
    OUTCOMES,
    Arena,
    ArenaConfig,
    ArenaError,
    VoteStore,
    bootstrap_ci,
    bradley_terry,
    disagreement,
    elo_ratings,
    highlight,
    leaderboard,
    pick_pair,
    rate,
    win_matrix,
)

MODELS = ["a", "b", "c", "d"]
battle = st.tuples(st.sampled_from(MODELS), st.sampled_from(MODELS), st.sampled_from(OUTCOMES)).filter(
    lambda b: b[0] != b[1]
)
MIRROR = {"left": "right", "right": "left", "tie": "tie", "both_bad": "both_bad"}


# ------------------------------------------------------------------------------------------------ Elo by hand


def test_elo_one_win_k32():
    # expected 0.5 each -> the winner gains 32 * 0.5 = 16
    assert elo_ratings([("a", "b", "left")], k=32) == {"a": 1016.0, "b": 984.0}


def test_elo_two_battles_by_hand():
    # after a>b: 1016/984. Then b beats a: E_b = 1 / (1 + 10 ** (32 / 400)) = 0.454020; b += 32 * 0.545980
    r = elo_ratings([("a", "b", "left"), ("b", "a", "left")], k=32)
    assert r["b"] == pytest.approx(984 + 32 * (1 - 1 / (1 + 10 ** (32 / 400))), abs=1e-9)
    assert r["b"] == pytest.approx(1001.4695, abs=1e-4)
    assert r["a"] == pytest.approx(998.5305, abs=1e-4)


def test_elo_tie_between_equals_changes_nothing_and_both_bad_is_a_tie():
    assert elo_ratings([("a", "b", "tie")], k=32) == {"a": 1000.0, "b": 1000.0}
    assert elo_ratings([("a", "b", "both_bad")], k=32) == {"a": 1000.0, "b": 1000.0}


# ------------------------------------------------------------------------------------------------ BT by hand


def test_bradley_terry_two_models_is_the_win_ratio():
    # MLE: p_a / p_b = wins_a / wins_b = 3 / 1 -> gap 400 * log10(3) = 190.849
    r = bradley_terry([("a", "b", "left")] * 3 + [("b", "a", "left")], prior=0)
    assert r["a"] - r["b"] == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert r["a"] - r["b"] == pytest.approx(190.849, abs=1e-3)
    assert (r["a"] + r["b"]) / 2 == pytest.approx(1000.0)  # geometric mean pinned to the base


def test_bradley_terry_ties_count_half():
    # a: 2 wins + half a tie = 2.5; b: 1 win + half = 1.5 -> gap 400 * log10(5 / 3) = 88.739
    r = bradley_terry(
        [("a", "b", "left"), ("a", "b", "left"), ("a", "b", "tie"), ("b", "a", "left")], prior=0
    )
    assert r["a"] - r["b"] == pytest.approx(88.739, abs=1e-3)


def test_bradley_terry_three_models_transitive_by_hand():
    # a beats b 2:1, b beats c 2:1, no a-c games. MLE: p_a/p_b = 2, p_b/p_c = 2 -> gaps 400*log10(2) = 120.41
    battles = (
        [("a", "b", "left")] * 2 + [("b", "a", "left")] + [("b", "c", "left")] * 2 + [("c", "b", "left")]
    )
    r = bradley_terry(battles, prior=0)
    assert r["a"] - r["b"] == pytest.approx(120.412, abs=1e-3)
    assert r["b"] - r["c"] == pytest.approx(120.412, abs=1e-3)


def test_bradley_terry_prior_keeps_an_undefeated_model_finite():
    # without the prior a 3-0 record has no finite MLE; virtual games against the anchor keep it finite
    r = bradley_terry([("a", "b", "left")] * 3, prior=1.0)
    assert all(math.isfinite(v) for v in r.values())
    assert r["a"] > 1000 > r["b"]
    r_more = bradley_terry([("a", "b", "left")] * 30, prior=1.0)
    assert r_more["a"] > r["a"]


def test_win_matrix_half_ties():
    models, w = win_matrix([("a", "b", "left"), ("b", "a", "tie")])
    assert models == ["a", "b"]
    assert w.tolist() == [[0.0, 1.5], [0.5, 0.0]]


def test_rate_rejects_unknown_method():
    with pytest.raises(ArenaError, match="unknown rating method"):
        rate([("a", "b", "left")], method="glicko")


# ------------------------------------------------------------------------------------------------ invariants


@settings(max_examples=60, deadline=None)
@given(st.lists(battle, min_size=1, max_size=25))
def test_ratings_do_not_depend_on_which_side_a_model_sat(battles):
    mirrored = [(right, left, MIRROR[o]) for left, right, o in battles]
    for fn in (lambda b: elo_ratings(b, k=16), lambda b: bradley_terry(b, prior=1.0)):
        got, want = fn(mirrored), fn(battles)
        assert got.keys() == want.keys()
        for m in got:
            assert got[m] == pytest.approx(want[m], abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(battle, min_size=1, max_size=25))
def test_elo_is_zero_sum_and_bt_is_label_free(battles):
    r = elo_ratings(battles, k=16)
    assert sum(r.values()) == pytest.approx(1000.0 * len(r))
    rename = {"a": "w", "b": "x", "c": "y", "d": "z"}
    renamed = bradley_terry([(rename[a], rename[b], o) for a, b, o in battles])
    plain = bradley_terry(battles)
    for m, v in plain.items():
        assert renamed[rename[m]] == pytest.approx(v, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6))
def test_bt_two_model_symmetry(wins, losses):
    r = bradley_terry([("a", "b", "left")] * wins + [("a", "b", "right")] * losses, prior=0)
    s = bradley_terry([("a", "b", "right")] * wins + [("a", "b", "left")] * losses, prior=0)
    assert r["a"] - r["b"] == pytest.approx(s["b"] - s["a"], abs=1e-6)


# ------------------------------------------------------------------------------------------------ bootstrap


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded():
    battles = [("a", "b", "left")] * 12 + [("a", "b", "right")] * 4 + [("b", "c", "left")] * 5
    fn = bradley_terry
    ci = bootstrap_ci(battles, fn, n_boot=100, seed=3)
    point = fn(battles)
    for m, (lo, hi) in ci.items():
        assert lo <= point[m] <= hi
        assert hi > lo
    assert ci == bootstrap_ci(battles, fn, n_boot=100, seed=3)
    assert bootstrap_ci([], fn) == {}


def test_leaderboard_table():
    battles = [("a", "b", "left")] * 3 + [("a", "b", "right"), ("b", "c", "tie"), ("c", "a", "both_bad")]
    df = leaderboard(battles, n_boot=20)
    assert list(df.columns) == ["model", "rating", "ci_lo", "ci_hi", "games", "wins", "ties", "losses"]
    assert df["model"].tolist()[0] == "a"
    row = df.set_index("model").loc["a"]
    assert (row.games, row.wins, row.ties, row.losses) == (5, 3, 1, 1)
    assert (df.ci_lo <= df.rating).all() and (df.rating <= df.ci_hi).all()
    assert leaderboard([]).empty


# ------------------------------------------------------------------------------------------------ pairing


def test_pick_pair_distinct_from_pool_both_orders():
    rng = random.Random(0)
    pairs = [pick_pair(["x", "y", "z"], rng) for _ in range(200)]
    assert all(a != b and {a, b} <= {"x", "y", "z"} for a, b in pairs)
    assert ("x", "y") in pairs and ("y", "x") in pairs


def test_pick_pair_needs_two_models():
    with pytest.raises(ArenaError, match="at least 2"):
        pick_pair(["x", "x"], random.Random(0))


# ------------------------------------------------------------------------------------------------ votes


def test_vote_store_roundtrip_and_wal(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite")
    store.add("a", "b", "left", prompt="p")
    store.add("b", "c", "both_bad")
    assert store.battles() == [("a", "b", "left"), ("b", "c", "both_bad")]
    mode = sqlite3.connect(tmp_path / "v.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert VoteStore(tmp_path / "v.sqlite").count() == 2  # durable: a new store (process) sees them


def test_vote_store_rejects_bad_votes(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite")
    with pytest.raises(ArenaError, match="unknown vote"):
        store.add("a", "b", "maybe")
    with pytest.raises(ArenaError, match="two different"):
        store.add("a", "a", "left")
    assert store.count() == 0


def test_no_vote_lost_under_concurrent_voters(tmp_path):
    path = tmp_path / "v.sqlite"
    n_threads, per_thread = 16, 40
    stores = [VoteStore(path), VoteStore(path)]  # two "processes" sharing the file, threads in each
    errors = []
    start = threading.Barrier(n_threads)

    def voter(i):
        try:
            start.wait()
            store = stores[i % 2]
            for j in range(per_thread):
                store.add(f"m{i}", f"m{i + 1}", OUTCOMES[j % 4], session=str(i))
                if j % 10 == 0:
                    store.battles()  # readers interleaved with writers
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=voter, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert VoteStore(path).count() == n_threads * per_thread
    ids = [r[0] for r in sqlite3.connect(path).execute("SELECT id FROM votes")]
    assert len(set(ids)) == n_threads * per_thread


def test_arena_round_protocol(tmp_path):
    arena = Arena(ArenaConfig(n_boot=5), VoteStore(tmp_path / "v.sqlite"))
    with pytest.raises(ArenaError, match="Ask a question first"):
        arena.vote(None, "left")
    rnd = arena.new_round(["x", "y"], "hi")
    with pytest.raises(ArenaError, match="Wait until"):
        arena.vote(rnd, "left")
    reveal, voted = arena.vote({**rnd, "done": True}, "right")
    a, b = rnd["pair"]
    assert f"A was **{a}**, B was **{b}**" in reveal
    with pytest.raises(ArenaError, match="already has your vote"):
        arena.vote(voted, "left")
    assert arena.store.battles() == [(a, b, "right")]
    assert arena.board()["games"].tolist() == [1, 1]


# ------------------------------------------------------------------------------------------------ token view


def test_disagreement_and_highlight():
    assert disagreement([[-1.0, -2.0], [-3.0, -2.0]]) == [2.0, 0.0]
    assert highlight(["x", "y"], [2.0, 0.5]) == [("x", 1.0), ("y", 0.25)]
    assert highlight(["x"], [0.0]) == [("x", 0.0)]
    with pytest.raises(ArenaError, match="shape"):
        disagreement([])
