"""Arena maths and vote storage: hand-computed ratings, symmetry (hypothesis), concurrent voters."""

import json
import math
import random
import sqlite3
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbkit.serve.arena import (
    OUTCOMES,
    Arena,
    ArenaConfig,
    ArenaError,
    VoteStore,
    batch_task,
    bootstrap_ci,
    bradley_terry,
    bt_bootstrap_ci,
    elo_ratings,
    interval_floor,
    leaderboard,
    pick_pair,
    rate,
    tied_ranks,
    win_matrix,
)
from nbkit.serve.leaderboard import matrices, position_bias, separation, votes_to_separate
from nbkit.serve.tokenview import disagreement, highlight

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


def test_batched_bt_bootstrap_equals_one_fit_per_resample():
    """The leaderboard's BT bootstrap fits all resamples at once; same draws, same intervals as fitting each."""
    rng = random.Random(1)
    battles = [(*rng.sample(MODELS, 2), rng.choice(OUTCOMES)) for _ in range(60)] + [("a", "e", "left")] * 2
    for prior in (1.0, 0.0):
        one_by_one = bootstrap_ci(battles, lambda b, p=prior: bradley_terry(b, prior=p), n_boot=40, seed=5)
        batched = bt_bootstrap_ci(battles, prior, n_boot=40, seed=5)
        assert batched.keys() == one_by_one.keys()  # "e" is missing from some resamples: skipped there
        for m, (lo, hi) in one_by_one.items():
            assert batched[m] == pytest.approx((lo, hi), abs=1e-4)
    assert bt_bootstrap_ci([], n_boot=10) == {}


def test_leaderboard_table():
    battles = [("a", "b", "left")] * 3 + [("a", "b", "right"), ("b", "c", "tie"), ("c", "a", "both_bad")]
    df = leaderboard(battles, n_boot=20)
    assert list(df.columns) == [
        "rank",
        "model",
        "rating",
        "ci_lo",
        "ci_hi",
        "games",
        "wins",
        "ties",
        "losses",
    ]
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
    arena = Arena(ArenaConfig(n_boot=5), VoteStore(tmp_path / "v.sqlite"), pool=["x", "y"])
    with pytest.raises(ArenaError, match="Ask a question first"):
        arena.vote(None, "left")
    rnd = arena.new_round("s1", "10.0.0.1")
    assert set(rnd["pair"]) == {"x", "y"} and rnd["turns"] == []
    with pytest.raises(ArenaError, match="Wait until"):
        arena.vote(rnd, "left", "s1", "10.0.0.1")  # created, not served yet
    arena.store.serve_turn(rnd["id"], "hi", "answer a", "answer b")
    with pytest.raises(ArenaError, match="not served to you"):
        arena.vote(rnd, "left", "another-session", "10.0.0.1")
    reveal = arena.vote(rnd, "right", "s1", "10.0.0.1")
    a, b = rnd["pair"]
    assert f"A was **{a}**, B was **{b}**" in reveal
    with pytest.raises(ArenaError, match="already has your vote"):
        arena.vote(rnd, "left", "s1", "10.0.0.1")
    assert arena.store.battles() == [(a, b, "right")]
    assert arena.board()["games"].tolist() == [1, 1]


def test_vote_log_records_prompt_and_both_answers_of_every_turn(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite")
    store.open_round("r1", "x", "y", "s", "c")
    store.serve_turn("r1", "first?", "a1", "b1")
    store.begin_turn("r1")
    with pytest.raises(ArenaError, match="Wait until"):  # a second turn is being answered
        store.vote_round("r1", "tie", "s", "c")
    store.serve_turn("r1", "second?", "a2", "b2")
    assert store.vote_round("r1", "tie", "s", "c") == ("x", "y")
    (row,) = store.log()
    assert json.loads(row["prompt"]) == ["first?", "second?"]
    assert json.loads(row["answer_a"]) == ["a1", "a2"] and json.loads(row["answer_b"]) == ["b1", "b2"]
    assert (row["session"], row["client"], row["round_id"], row["outcome"]) == ("s", "c", "r1", "tie")


def test_concurrent_double_vote_stores_exactly_one_row(tmp_path):
    path = tmp_path / "v.sqlite"
    VoteStore(path).open_round("r1", "x", "y", "s", "c")
    VoteStore(path).serve_turn("r1", "p", "a", "b")
    stores = [VoteStore(path) for _ in range(3)]  # separate connections, as separate processes would have
    start, results = threading.Barrier(6), []

    def vote(i):
        start.wait()
        try:
            stores[i % 3].vote_round("r1", OUTCOMES[i % 4], "s", "c")
            results.append("ok")
        except ArenaError as e:
            results.append(str(e))

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1 and VoteStore(path).count() == 1
    assert all("already has your vote" in r for r in results if r != "ok")


def test_forged_rounds_and_floods_change_no_rating(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite")
    arena = Arena(ArenaConfig(n_boot=5), store, pool=["good", "other"])
    for fake in (
        "made-up-id",
        {"id": "made-up-id", "pair": ("random-init", "good")},
        {"pair": ("a", "b")},
        42,
    ):
        with pytest.raises(ArenaError):
            arena.vote(fake if isinstance(fake, dict) else {"id": fake}, "left", "s", "c")
    for _ in range(20):  # the pool is the server's: a client cannot bring its own model into a round
        assert set(arena.new_round("s", "c")["pair"]) == {"good", "other"}
    assert store.count() == 0
    # one session flooding served rounds: only votes_per_session a minute land
    arena.limits.votes_per_session, landed = 3, 0
    for i in range(8):
        rnd = arena.new_round("flood", "10.0.0.9")
        store.serve_turn(rnd["id"], f"q{i}", "a", "b")
        try:
            arena.vote(rnd, "left", "flood", "10.0.0.9")
            landed += 1
        except ArenaError as e:
            assert "Too many votes from this session: at most 3 a minute" in str(e)
    assert landed == 3
    # many sessions from one address (new session = new round): the per-address cap holds
    arena.limits.votes_per_session, arena.limits.votes_per_address = 100, 5
    for i in range(8):
        rnd = arena.new_round(f"s{i}", "10.0.0.9")
        store.serve_turn(rnd["id"], "q", "a", "b")
        try:
            arena.vote(rnd, "left", f"s{i}", "10.0.0.9")
        except ArenaError as e:
            assert "from this address" in str(e)
    assert store.count() == 5  # 3 from the flood + 2 more until the address reached 5 in the minute


def test_a_voted_round_is_never_continued(tmp_path):
    """The store decides whether a round still takes a vote, not the page's state (a late vote used to write the
    voted round back into it)."""
    store = VoteStore(tmp_path / "v.sqlite")
    arena = Arena(ArenaConfig(n_boot=5), store, pool=["x", "y"])
    rnd = arena.current_round(None, "s", "c", "ana")
    assert arena.current_round(rnd, "s", "c") is rnd  # open: the next question continues it
    store.serve_turn(rnd["id"], "q", "a", "b")
    arena.vote(rnd, "tie", "s", "c", "ana")
    assert arena.current_round(rnd, "s", "c")["id"] != rnd["id"]  # voted: a new round
    assert arena.current_round({"id": "forged"}, "s", "c")["id"] != "forged"
    assert store.version() == (1, 1) and store.log()[0]["attendee"] == "ana"


def test_old_vote_files_gain_the_attendee_column_and_damaged_rows_are_no_battles(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # a file from before rounds and attendees
        db.execute(
            "CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, left TEXT NOT NULL, "
            "right TEXT NOT NULL, outcome TEXT NOT NULL, prompt TEXT, session TEXT)"
        )
        db.execute("INSERT INTO votes (ts, left, right, outcome) VALUES (0, 'a', 'b', 'left')")
        db.execute("INSERT INTO votes (ts, left, right, outcome) VALUES (0, 'a', 'b', 'maybe')")
        db.execute("INSERT INTO votes (ts, left, right, outcome) VALUES (0, 'a', 'a', 'left')")
    store = VoteStore(path)
    assert store.battles() == [("a", "b", "left")]
    assert [r["attendee"] for r in store.log()] == [None] * 3
    store.open_round("r", "a", "b", "s", "c", "ana")
    store.serve_turn("r", "q", "x", "y")
    store.vote_round("r", "right", "s", "c", attendee="ana")
    assert store.log()[-1]["attendee"] == "ana" and store.version() == (4, 4)


def test_batch_offers_tasks_that_build_without_a_download():
    assert len(batch_task("gsm8k").test(20)) == 2 and len(batch_task("multiple_choice").test(20)) == 2
    with pytest.raises(ArenaError, match="evaluates arithmetic, gsm8k, multiple_choice"):
        batch_task("mmlu")


def test_pool_needs_two_models(tmp_path):
    arena = Arena(ArenaConfig(), VoteStore(tmp_path / "v.sqlite"), pool=["only"])
    with pytest.raises(ArenaError, match="at least 2"):
        arena.new_round()


# ------------------------------------------------------------------------------------------------ honesty


def test_interval_floor_by_hand_and_never_zero_width_with_one_vote():
    # 1.96 * 400 / ln(10) / sqrt(0.25 * (1 + 2)) = 340.48 / 0.866 = 393.16
    assert interval_floor(1) == pytest.approx(393.16, abs=0.01)
    assert interval_floor(100, prior=1.0) == pytest.approx(
        1.96 * 400 / math.log(10) / math.sqrt(25.5), abs=1e-9
    )
    df = leaderboard([("a", "b", "left")], n_boot=50)
    assert ((df.ci_hi - df.ci_lo) >= 2 * 393.1).all()
    assert df["rank"].tolist() == [1, 1]  # one vote separates nothing


def test_tied_ranks():
    assert tied_ranks([10, 0, -50], [30, 20, -20]) == [1, 1, 3]
    assert tied_ranks([50, 0], [60, 10]) == [1, 2]


def test_clear_winner_gets_its_own_rank_and_separation_lines():
    battles = [("a", "b", "left")] * 60 + [("a", "b", "right")] * 5
    df = leaderboard(battles, n_boot=50)
    assert df["model"].tolist() == ["a", "b"] and df["rank"].tolist() == [1, 2]
    assert separation(df) == ["a is ahead of b: their intervals do not overlap."]
    close = leaderboard([("a", "b", "left")] * 3 + [("a", "b", "right")] * 2, n_boot=50)
    (line,) = separation(close)
    assert line.startswith("about ") and "more votes to separate" in line


def test_votes_to_separate_by_hand():
    # half-widths 100 + 100 over a gap of 50: shrink 4x -> 16x the games: 10 * 16 - 10 = 150
    assert votes_to_separate(50, 100, 100, 10, 10) == 150
    assert votes_to_separate(300, 100, 100, 10, 10) is None


def test_position_bias_line_by_hand():
    battles = [("x", "y", "left")] * 7 + [("x", "y", "right")] * 3 + [("x", "y", "tie")]
    # Wilson interval for 7/10: centre (0.7 + 0.192) / 1.384 = 0.6446, half 0.2446 -> 40%-89%
    assert position_bias(battles) == (
        "Position bias: A won 7 of 10 decisive votes (70%, 95% CI 40%-89%); 50% means the side does not matter."
    )
    assert "no decisive votes" in position_bias([("x", "y", "tie")])


def test_win_rate_and_count_matrices():
    rate_df, count_df = matrices([("a", "b", "left"), ("a", "b", "tie"), ("b", "c", "right")])
    rate_df, count_df = rate_df.set_index("model"), count_df.set_index("model")
    assert rate_df.loc["a", "b"] == 0.75 and rate_df.loc["b", "a"] == 0.25 and rate_df.loc["c", "b"] == 1.0
    assert math.isnan(rate_df.loc["a", "c"])
    assert count_df.loc["a", "b"] == 2 and count_df.loc["b", "c"] == 1 and count_df.loc["a", "c"] == 0


# ------------------------------------------------------------------------------------------------ token view


def test_disagreement_and_highlight():
    assert disagreement([[-1.0, -2.0], [-3.0, -2.0]]) == [2.0, 0.0]
    assert highlight(["x", "y"], [2.0, 0.5]) == [("x", 1.0), ("y", 0.25)]
    assert highlight(["x"], [0.0]) == [("x", 0.0)]
    with pytest.raises(ArenaError, match="shape"):
        disagreement([])
