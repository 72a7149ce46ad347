"""The arena's votes as a preference dataset (nbkit.serve.votes), their audit (nbkit.serve.audit), the
`nbkit arena export` command, and the instructor's hot-add through the compare app's API."""

import json
import sqlite3

import pytest

from nbkit.serve.arena import VoteStore
from nbkit.serve.audit import audit, intransitive_triples, voter_of
from nbkit.serve.votes import VotesError, export_pairs, round_turns, to_pair


def served(store, rid, left, right, turns, outcome, session="s", client="c"):
    """A round through the arena's protocol: opened, each turn served, one vote."""
    store.open_round(rid, left, right, session, client)
    for prompt, a, b in turns:
        store.serve_turn(rid, prompt, a, b)
    store.vote_round(rid, outcome, session, client, per_session=10**6, per_client=10**6)


@pytest.fixture
def store(tmp_path):
    """Ten decided rounds, 3 ties, 2 both bad, one two-turn round, one vote without a round, one damaged row."""
    s = VoteStore(tmp_path / "arena.sqlite")
    for i in range(10):
        served(
            s, f"r{i}", "x", "y", [(f"What is {i} + 1?", f"{i + 1}", "no idea")], "left" if i % 3 else "right"
        )
    for i in range(3):
        served(s, f"t{i}", "x", "y", [("hi", "hello", "hey")], "tie")
    for i in range(2):
        served(s, f"b{i}", "y", "x", [("hi", "meh", "bah")], "both_bad")
    served(
        s, "multi", "x", "y", [("Name a colour.", "Red.", "Blue."), ("Another?", "Green.", "Sky.")], "right"
    )
    s.add("x", "y", "left", prompt="an imported vote")  # no round, no answers
    served(s, "broken", "x", "y", [("q", "a", "b")], "left")
    with sqlite3.connect(s.path) as c:  # a row damaged on disk: its answers are not JSON any more
        c.execute("UPDATE votes SET answer_a = '[\"cut off' WHERE round_id = 'broken'")
    return s


def test_export_keeps_decided_rounds_and_counts_what_it_leaves_out(store):
    exp = export_pairs(store, min_pairs=5)
    assert exp.counts == {
        "votes": 18,
        "pairs": 11,
        "ties": 3,
        "both_bad": 2,
        "no_round": 1,
        "damaged": 1,
        "flagged_votes": 0,
    }
    assert sorted(exp.round_ids) == sorted([f"r{i}" for i in range(10)] + ["multi"])
    by_id = {p["round_id"]: p for p in exp.pairs}
    assert by_id["r1"]["prompt"] == [{"role": "user", "content": "What is 1 + 1?"}]
    assert by_id["r1"]["chosen"] == [{"role": "assistant", "content": "2"}]  # left won
    assert by_id["r0"]["chosen"] == [{"role": "assistant", "content": "no idea"}]  # right won
    assert (by_id["r0"]["winner"], by_id["r0"]["loser"]) == ("y", "x")
    assert "damaged" in exp.lines()[0] and "1 without a served round" in exp.lines()[0]


def test_a_multi_turn_round_keeps_the_winning_side_as_its_context(store):
    pair = next(p for p in export_pairs(store, min_pairs=5).pairs if p["round_id"] == "multi")
    assert pair["prompt"] == [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},  # B won: its own earlier answer
        {"role": "user", "content": "Another?"},
    ]
    assert pair["chosen"][0]["content"] == "Sky." and pair["rejected"][0]["content"] == "Green."
    assert pair["turns"] == 2


def test_too_few_decided_rounds_is_one_clear_refusal(store, tmp_path):
    with pytest.raises(VotesError, match=r"only 11 decided rounds .*3 ties, 2 both bad.*at least 12"):
        export_pairs(store, min_pairs=12)
    with pytest.raises(VotesError, match="no vote file"):
        export_pairs(tmp_path / "missing.sqlite")
    with pytest.raises(VotesError, match="unknown export format"):
        export_pairs(store, format="kto")


def test_damaged_rows_are_skipped_never_fatal():
    good = {"round_id": "g", "left": "x", "right": "y", "outcome": "left", "session": "s"}
    good |= {"prompt": '["q"]', "answer_a": '["a"]', "answer_b": '["b"]'}
    rows = [
        good,
        {**good, "round_id": "n", "prompt": '["q", "q2"]'},  # two prompts, one answer each
        {**good, "round_id": "o", "outcome": "maybe"},
        {**good, "round_id": "t", "answer_b": "[1]"},  # not text
        {**good, "round_id": "e", "prompt": "[]", "answer_a": "[]", "answer_b": "[]"},
    ]
    exp = export_pairs(rows, min_pairs=1)
    assert exp.round_ids == ["g"] and exp.counts["damaged"] == 4
    with pytest.raises(ValueError):
        round_turns(rows[1])
    assert round_turns({**good, "round_id": None}) == []


def test_the_snapshot_names_its_rounds_and_the_saved_pairs_load_as_a_dataset(store, tmp_path):
    from datasets import load_dataset

    exp = export_pairs(store, min_pairs=5)
    folder = exp.save(tmp_path / "out")
    snap = json.loads((folder / "snapshot.json").read_text())
    assert sorted(snap["round_ids"]) == sorted(exp.round_ids) and snap["snapshot_id"] == exp.snapshot_id
    assert (snap["position"]["left"], snap["position"]["right"]) == (
        7,
        5,
    )  # the vote without a round counts too
    ds = load_dataset("json", data_files=str(folder / "pairs.jsonl"), split="train")
    assert len(ds) == 11 and {"prompt", "chosen", "rejected"} <= set(ds.column_names)
    assert exp.dataset()[0]["chosen"][0]["role"] == "assistant"
    one_more = list(store.log()) + [{**store.log()[0], "id": 999, "round_id": "new"}]
    assert export_pairs(one_more, min_pairs=5).snapshot_id != exp.snapshot_id


# ----------------------------------------------------------------------------------------------------- audit


def test_voter_is_the_attendee_else_the_session():
    assert voter_of({"attendee": "ada", "session": "s1"}) == "ada"
    assert voter_of({"attendee": "", "session": "s1", "client": "10.0.0.1"}) == "session:s1"
    assert voter_of({"client": "10.0.0.1"}) == "address:10.0.0.1"


def vote(voter, left, right, outcome, i=0):
    turn = {"prompt": '["q"]', "answer_a": '["a"]', "answer_b": '["b"]'}
    return {
        "attendee": voter,
        "left": left,
        "right": right,
        "outcome": outcome,
        "round_id": f"{voter}{i}",
    } | turn


def test_a_voter_who_always_favours_one_model_is_flagged_and_can_be_left_out():
    """The forger of issue 25: 25 votes for `tiny`, whichever side it sat on; two honest voters beside."""
    rows = [
        vote("mallory", *(("tiny", "sft", "left") if i % 2 else ("sft", "tiny", "right")), i)
        for i in range(25)
    ]
    rows += [vote("ada", "sft", "tiny", o, i) for i, o in enumerate(["left", "right", "left", "tie"])]
    rows += [vote("bob", "tiny", "dpo", o, i) for i, o in enumerate(["right", "right", "left"])]
    a = audit(rows)
    assert a.flagged == ["mallory"]
    by = {v["voter"]: v for v in a.voters}
    assert by["mallory"]["favourite"] == "tiny" and by["mallory"]["favourite_share"] == 1.0
    assert by["ada"]["flagged"] is False and by["ada"]["ties"] == 1 and by["ada"]["left_share"] == 0.67
    assert any("mallory" in line and "flagged" in line for line in a.lines())
    kept = export_pairs(rows, min_pairs=1)
    dropped = export_pairs(rows, min_pairs=1, drop_flagged=True)
    assert kept.counts["pairs"] == 31 and kept.dropped_voters == []
    assert dropped.counts["pairs"] == 6 and dropped.counts["flagged_votes"] == 25
    assert (
        dropped.dropped_voters == ["mallory"] and "Flagged voters left out (1): mallory" in dropped.lines()[1]
    )


def test_two_votes_are_not_enough_to_flag_and_same_model_rounds_favour_none():
    rows = [vote("ada", "x", "y", "left", i) for i in range(2)] + [
        vote("bob", "x", "x", "left", i) for i in range(5)
    ]
    assert audit(rows).flagged == []


def test_intransitive_triples_by_hand():
    cycle = [("a", "b", "left"), ("b", "c", "left"), ("c", "a", "left")]
    assert intransitive_triples(cycle) == [("a", "b", "c")]
    assert intransitive_triples(cycle[:2] + [("a", "c", "left")]) == []  # a > b > c and a > c: transitive
    assert intransitive_triples(cycle + [("a", "c", "left"), ("a", "c", "left")]) == []  # a now leads c 2-1
    rows = [vote("v", left, right, outcome, i) for i, (left, right, outcome) in enumerate(cycle)]
    assert audit(rows).cycles == [("a", "b", "c")] and "Intransitive triples: 1" in audit(rows).lines()[-1]


def test_position_bias_counts_decided_votes_only(store):
    a = audit([r for r in store.log() if r["round_id"] != "broken"])
    assert (a.left, a.right, a.ties, a.both_bad) == (7, 5, 3, 2)
    assert "A won 7 of 12 decisive votes" in a.position


def test_to_pair_by_hand():
    row = {"round_id": "r", "left": "x", "right": "y", "outcome": "left", "session": "s"}
    pair = to_pair(row, [{"prompt": "2+2?", "a": "4", "b": "5"}])
    assert pair["prompt"] == [{"role": "user", "content": "2+2?"}] and pair["rejected"][0]["content"] == "5"


# ------------------------------------------------------------------------------------------------------- cli


def test_cli_exports_and_refuses_in_one_line(store, tmp_path, capsys):
    from nbkit.cli import main

    out = tmp_path / "pairs"
    assert (
        main(
            [
                "arena",
                "export",
                "--format",
                "dpo",
                "--db",
                str(store.path),
                "-o",
                str(out),
                "--min-pairs",
                "5",
            ]
        )
        == 0
    )
    said = capsys.readouterr().out
    assert "11 preference pairs from 18 votes" in said and (out / "pairs.jsonl").exists()
    assert len((out / "pairs.jsonl").read_text().splitlines()) == 11
    assert main(["arena", "export", "--db", str(store.path), "-o", str(out)]) == 2  # default min 16
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only 11 decided rounds" in err


# ------------------------------------------------------------------------------------------ the hot-add, live


def test_hot_add_through_the_api_needs_the_instructor_password(tmp_path, tiny):
    """A run registered while the arena serves joins the blind pool through the Instructor tab's endpoint; new
    rounds draw it, votes reach the leaderboard. Wrong passwords add nothing."""
    from gradio_client import Client
    from test_apps import warnings_of

    from nbkit.runs import Registry
    from nbkit.serve.launch import Backend, ServeConfig, build_app, launch

    reg = Registry(tmp_path / "runs")
    with reg.create("tiny-base", "base", {"model": "tiny"}, tracking="off"):
        pass
    cfg = ServeConfig.for_profile("smoke")
    cfg.models, cfg.auth, cfg.instructor = ["tiny", "tiny-base"], "class:room", "teach"
    cfg.arena_db, cfg.max_new_tokens = str(tmp_path / "arena.sqlite"), 4
    backend = Backend(cfg, reg)
    backend.arena.cfg.n_boot = 5
    demo = launch(build_app("compare", backend), cfg)
    try:
        model, tok = tiny
        with reg.create("voted-dpo", "dpo", {"model": "tiny"}, tracking="off") as run:  # after the launch
            run.save_model(model, tok)
        client = Client(demo.local_url, auth=("class", "room"), verbose=False)
        job = client.submit("voted-dpo", "guess", api_name="/add_to_pool")
        assert "voted-dpo" not in backend.arena.pool
        assert warnings_of(job) == ["Wrong instructor password: nothing was added."]
        pool_line, added = client.predict("voted-dpo", "teach", api_name="/add_to_pool")
        assert backend.arena.pool == ["tiny", "tiny-base", "voted-dpo"] and "3 models" in pool_line
        assert "Added **voted-dpo**" in added
        seen = set()
        for _ in range(6):  # each round draws 2 of 3: the new model sits in 2 of 3 (all 6 miss it: 0.14%)
            client.predict("hi", "", 0.7, 0.95, 2, api_name="/blind")  # after a vote, a new round
            out = client.predict(api_name="/vote_left")
            reveal = next(x for x in ([out] if isinstance(out, str) else out) if "A was" in str(x))
            seen |= {m for m in ("tiny-base", "voted-dpo") if f"**{m}**" in reveal}
            if "voted-dpo" in seen:
                break
        assert "voted-dpo" in seen
        board = client.predict("bt", api_name="/leaderboard")[0]
        assert "voted-dpo" in [row[1] for row in board["data"]]
    finally:
        demo.close()
