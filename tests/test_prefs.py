"""The preference loop (nbkit.experiments.prefs): the scripted judge, the config, the loop's runs and lineage with
fake stages, the arena's votes as its source, and the win-rate claim."""

import json
from types import SimpleNamespace

import pytest

from nbkit.experiments import prefs
from nbkit.experiments.prefs import PrefsConfig, PrefsError, scripted_judge, win_claim
from nbkit.experiments.prefs.judge import is_right, question_sum
from nbkit.serve.arena import VoteStore


def test_the_scripted_judge_prefers_right_then_short():
    assert question_sum("What is 47 + 85?") == 132 and question_sum("Tell me a joke") is None
    q = "What is 2 + 2?"
    assert scripted_judge(q, "It is 4.", "Let me think: 2 + 2 = 5") == "left"  # right beats wrong
    assert scripted_judge(q, "So 2 + 2 = 5, I think, maybe", "The answer is 4, clearly.") == "right"
    assert scripted_judge(q, "2 + 2 = 4, of course", "4") == "right"  # both right: the shorter
    assert scripted_judge(q, "5", "2 + 2 = 7") == "left"  # both wrong: the shorter
    assert scripted_judge(q, "4", "4") == "tie" and scripted_judge("Hi", "abc", "xyz") == "tie"
    assert scripted_judge("Say hello", "Hello there, friend!", "Hi") == "right"  # no sum asked: the shorter
    assert is_right(q, "4 or 5") is False and is_right("Hi", "4") is None


def test_config_refuses_what_cannot_work_in_one_line():
    with pytest.raises(PrefsError, match="votes='crowd'"):
        PrefsConfig(votes="crowd")
    with pytest.raises(PrefsError, match="n_votes=3 judge votes cannot give min_pairs=16"):
        PrefsConfig(n_votes=3)
    with pytest.raises(PrefsError, match="temperature"):
        PrefsConfig(temperature=0)
    assert PrefsConfig.for_profile("smoke").model == "tiny"
    assert PrefsConfig().name != PrefsConfig(beta=0.2).name  # a setting changes the runs' names


def test_win_claim_by_hand():
    from nbkit.claims import sign_test_p

    c = win_claim([1.0] * 70 + [0.5] * 10 + [0.0] * 20)
    assert c.effect == pytest.approx(0.75) and c.null == 0.5 and c.n == 100
    assert c.p == sign_test_p(70, 90) and 0.66 < c.lo < 0.75 < c.hi < 0.84 and c.verdict == "AGREES"
    even = win_claim([1.0, 0.0] * 10 + [0.5] * 5)
    assert even.effect == 0.5 and even.verdict == "INCONCLUSIVE"
    assert win_claim([0.0] * 30).verdict == "DEPARTS"


# ------------------------------------------------------------------------------------ the loop, fake stages


def fake_answer(cfg, model, tok, prompts, k=1, seed=0):
    """Judge's rounds: a long right answer and a short wrong one. New rounds: the trained model (loaded from a
    checkpoint folder) answers short and right, the old one long and wrong."""
    trained = "checkpoint" in str(getattr(model, "name_or_path", ""))
    out = []
    for p in prompts:
        s = question_sum(p)
        if k == 2:
            out.append([f"Adding them up carefully gives {s}", f"{s + 1}"])
        else:
            out.append([f"{s}" if trained else f"Let me think about it for a while: {s + 3}"])
    return out


def fake_train(cfg, model, tok, pairs, writer):
    fake_train.calls.append(len(pairs))
    log = [{"rewards/accuracies": 1.0, "rewards/margins": 0.5, "step": 1}]
    return SimpleNamespace(model=model, state=SimpleNamespace(global_step=1, log_history=log))


def test_the_loop_registers_votes_dpo_and_compare_with_lineage_and_reuses_them(registry):
    cfg = PrefsConfig.for_profile("smoke")
    fake_train.calls = []
    res = prefs.run(cfg, registry, answer=fake_answer, train=fake_train)
    votes, dpo, compare = (registry.get(n) for n in (res.votes_run, res.dpo_run, res.compare_run))
    assert votes.parent == "base-tiny" and dpo.parent == "base-tiny" and compare.parent == dpo.name
    assert dpo.config["votes_run"] == votes.name and dpo.config["snapshot_id"] == votes.summary["snapshot_id"]
    snap = res.snapshot()
    assert len(snap["round_ids"]) == cfg.n_votes == snap["counts"]["pairs"]  # every judge round decided
    assert fake_train.calls == [cfg.n_votes]
    pairs = res.pairs_frame()
    assert pairs.chosen_correct.all() and not pairs.rejected_correct.any()  # right beat short-but-wrong
    assert res.agreement() == 1.0
    rows = [json.loads(line) for line in (votes.path / "rounds.jsonl").read_text().splitlines()]
    assert len(rows) == cfg.n_votes and {r["attendee"] for r in rows} == {prefs.JUDGE}
    f = res.frame()
    assert len(f) == cfg.eval_rounds and (f.winner == "new").all() and set(f.new_side) == {"A", "B"}
    assert set(f.decided_by) == {"correctness"} and res.claim().verdict == "AGREES"
    assert set(res.leaderboard().model) == {"tiny", dpo.name}
    assert res.timings()["loop"] >= res.timings()["train"] >= 0 and "hot_add" in res.timings()
    assert "wins 8, ties 0, losses 0 of 8" in res.say()

    def never(*a, **k):
        raise AssertionError("a finished stage ran again")

    again = prefs.run(cfg, registry, answer=never, train=never, cast_votes=never)
    assert again.dpo_run == res.dpo_run and len(again.rows) == len(res.rows)


def decided_arena(path, n, outcome="left"):
    store = VoteStore(path)
    for i in range(n):
        store.open_round(f"r{i}", "x", "y", "s", "c")
        store.serve_turn(f"r{i}", f"What is {i} + 1?", f"{i + 1}", "no")
        store.vote_round(f"r{i}", outcome, "s", "c", per_session=100, per_client=100)
    return store


def test_the_arena_s_votes_are_used_when_there_are_enough(registry):
    registry.root.mkdir(parents=True, exist_ok=True)
    cfg = PrefsConfig.for_profile("smoke")
    assert prefs.plan(cfg, registry).source == "judge"  # no arena file yet
    decided_arena(registry.root / "arena.sqlite", 3)
    assert prefs.plan(cfg, registry).source == "judge"  # 3 decided rounds < min_pairs 4
    with pytest.raises(PrefsError, match="votes=arena: only 3 decided rounds"):
        prefs.plan(PrefsConfig.for_profile("smoke", votes="arena"), registry)
    decided_arena(registry.root / "other.sqlite", 6)
    p = prefs.plan(PrefsConfig.for_profile("smoke", arena_db=str(registry.root / "other.sqlite")), registry)
    assert p.source == "arena" and len(p.export.pairs) == 6
    assert p.names["dpo"].endswith(f"-arena{p.export.snapshot_id}-dpo")
    assert "the arena's" in prefs.dry_run(p.cfg, registry) and not registry.exists(p.names["votes"])


def test_a_planned_loop_trains_on_the_votes_of_its_plan_when_the_arena_takes_more(registry):
    """The notebook plans in its first cell and finishes sections later, while the room may still be voting: the
    loop trains on the snapshot it planned with; the late vote belongs to the next plan, with new runs."""
    registry.root.mkdir(parents=True, exist_ok=True)
    store = decided_arena(registry.root / "arena.sqlite", 6)
    cfg = PrefsConfig.for_profile("smoke")
    p = prefs.plan(cfg, registry, answer=fake_answer, train=fake_train)
    store.open_round("late", "x", "y", "s", "c")
    store.serve_turn("late", "What is 9 + 9?", "18", "no")
    store.vote_round("late", "left", "s", "c", per_session=100, per_client=100)
    fake_train.calls = []
    res = prefs.run_plan(p)
    dpo = registry.get(res.dpo_run)
    assert dpo.config["snapshot_id"] == p.export.snapshot_id and fake_train.calls == [6]
    assert len(res.snapshot()["round_ids"]) == 6 and "late" not in res.snapshot()["round_ids"]
    assert prefs.plan(cfg, registry).names["dpo"] != res.dpo_run  # the next plan sees 7 rounds: new runs


def test_a_judge_that_ties_too_often_says_to_raise_n_votes(registry):
    def same_length(cfg, model, tok, prompts, k=1, seed=0):
        return [["abc", "xyz"] for _ in prompts]  # no sum, the same length: every round a tie

    with pytest.raises(
        PrefsError, match=r"scripted judge's 12 votes \(n_votes\): only 0 decided rounds .*12 ties"
    ):
        prefs.run(PrefsConfig.for_profile("smoke"), registry, answer=same_length, train=fake_train)


def test_dry_run_names_every_run_and_loads_nothing(registry):
    text = prefs.dry_run(PrefsConfig.for_profile("smoke"), registry)
    assert "scripted judge, 12 rounds" in text and "-judge-dpo" in text and "4 runs to build" in text
    assert registry.names() == []


@pytest.mark.slow
def test_the_real_loop_trains_a_lora_adapter_on_the_judge_s_votes(registry):
    res = prefs.run(PrefsConfig.for_profile("smoke"), registry, progress=False)
    dpo = registry.get(res.dpo_run)
    assert dpo.adapter and dpo.summary["steps"] >= 1 and dpo.summary["final_reward_accuracy"] is not None
    assert len(res.frame()) == 8 and 0 <= res.claim().effect <= 1
