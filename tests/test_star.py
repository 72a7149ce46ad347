"""STaR loop: config errors, the step schedule, the filter and rationalization logic (with a hash-based fake
sampler, so the tiny random model's outputs do not matter), registry lineage, resumption, the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import pytest

from nbkit.cli import main
from nbkit.config import parse_cli
from nbkit.errors import ConfigError
from nbkit.experiments import star
from nbkit.experiments.star import PROFILES as STAR_PROFILES
from nbkit.experiments.star import StarConfig, filter_rationales, primer_records, seed_examples, step_schedule
from nbkit.experiments.star.config import validate
from nbkit.experiments.star.data import (
    build_task,
    faithful_counts,
    iteration_stats,
    split_rationale,
    train_problems,
)
from nbkit.experiments.star.run import evaluate
from nbkit.runs import Registry, RunError
from nbkit.tasks import FIXTURES, Arithmetic
from nbkit.tasks.base import count_by_difficulty

CONFIGS = __import__("pathlib").Path(__file__).resolve().parent.parent / "configs"


def smoke(**kw) -> StarConfig:
    """The smoke profile with chat prompts on 1-3 digits (what most tests read; plain prompts are tested on their own),
    12 problems, and a one-epoch primer (the fakes decide what is right, so the primer need not learn)."""
    defaults = {"task_args": {"digits": [1, 2, 3]}, "problems_per_iteration": 12, "primer_epochs": 1.0}
    return dataclasses.replace(StarConfig.for_profile("smoke"), **{**defaults, **kw})


def _h(text: str) -> int:
    return hashlib.sha256(text.encode()).digest()[0]


def solvable(a: int, b: int) -> bool:
    """The fake model answers a problem correctly when this hash says so (about 1 in 3)."""
    return _h(f"{a}+{b}") % 3 == 0


def rationalizable(a: int, b: int) -> bool:
    return _h(f"hint {a}+{b}") % 2 == 0


def retry_solvable(a: int, b: int) -> bool:
    """Sampled at a temperature (the retries), the fake model also gets these right."""
    return _h(f"retry {a}+{b}") % 2 == 0


class FakeSampler:
    """Stands in for the `sample` stage: answers from a hash of the question, records what it was asked."""

    def __init__(self, always_wrong: bool = False, mention_hint: bool = False):
        self.calls: list[dict] = []
        self.always_wrong, self.mention_hint = always_wrong, mention_hint

    def __call__(self, cfg, model, tok, chats, seed, desc, chat=True, *, progress=True):
        self.calls.append({"desc": desc, "chats": chats, "seed": seed, "chat": chat, "progress": progress})
        out = []
        for prompt in chats:
            text = prompt[-1]["content"] if chat else prompt
            a, b = map(int, re.search(r"(?:What is |Question: )(\d+) \+ (\d+)", text).groups())
            hinted = "Hint" in text or "the answer is" in text
            right = (rationalizable(a, b) if hinted else solvable(a, b)) and not self.always_wrong
            right = right or (cfg.temperature > 0 and retry_solvable(a, b) and not hinted)
            answer = a + b if right else a + b + 1
            note = " (as the hint says)" if hinted and self.mention_hint else ""
            out.append([f"Ones: some work{note}.\nAnswer: {answer}"] * cfg.samples_per_problem)
        return out


class NoTraining:
    """Stands in for the `train` stage where the test is about the loop, not about TRL: returns the model untrained."""

    def __init__(self):
        self.steps: list = []

    def __call__(self, cfg, model, tok, records, writer, *, steps, lr, epochs=1.0, progress=True):
        self.steps.append(steps)
        return type("Trainer", (), {"model": model})()


@pytest.fixture
def stages():
    """The stage functions a test replaces, passed to star.run as parameters (empty: the real ones)."""
    return {}


@pytest.fixture
def fake(stages):
    stages["sample"] = FakeSampler()
    return stages["sample"]


@pytest.fixture
def no_training(stages):
    stages["train"] = NoTraining()
    return stages["train"]


def expected_counts(cfg: StarConfig) -> tuple[int, int]:
    task = build_task(cfg)
    plain, hinted = seed_examples(cfg, task)
    problems = train_problems(cfg, task, plain + hinted)
    correct = [p for p in problems if solvable(p.meta["a"], p.meta["b"])]
    rationalized = [
        p
        for p in problems
        if not solvable(p.meta["a"], p.meta["b"]) and rationalizable(p.meta["a"], p.meta["b"])
    ]
    return len(correct), len(rationalized)


# ------------------------------------------------------------------------------------------------ pure maths


def test_step_schedule_paper_numbers():
    assert [step_schedule(i) for i in range(1, 6)] == [40, 48, 57, 69, 82]
    assert [step_schedule(i, scale=0.5) for i in range(1, 6)] == [20, 24, 28, 34, 41]
    assert [step_schedule(i, growth=0.0) for i in range(1, 4)] == [40, 40, 40]
    assert step_schedule(1, scale=0.001) == 1  # never zero steps
    assert StarConfig(first_steps=10, step_scale=2.0).steps(2) == 24


def test_split_rationale():
    assert split_rationale("Ones: 2 + 3 = 5.\nAnswer: 5") == "Ones: 2 + 3 = 5."
    assert split_rationale("a\nAnswer: 1\nAnswer: 5") == "a\nAnswer: 1"
    assert split_rationale("no answer line") == "no answer line"


def test_filter_keeps_first_correct_and_drops_hint_mentions():
    task = Arithmetic()
    p1, p2, p3 = task.make(2, 3), task.make(4, 4), task.make(7, 7)
    texts = [
        ["x\nAnswer: 6", "good\nAnswer: 5", "other\nAnswer: 5"],
        ["x\nAnswer: 9"] * 3,
        ["y\nAnswer: 14"] * 3,
    ]
    kept, failed = filter_rationales(task, [p1, p2, p3], texts)
    assert kept == [(p1, "good"), (p3, "y")]
    assert failed == [p2]
    kept, failed = filter_rationales(
        task, [p1], [["the Hint says 5\nAnswer: 5", "ok\nAnswer: 5"]], hinted=True
    )
    assert kept == [(p1, "ok")]
    kept, failed = filter_rationales(task, [p1], [["the hint says 5\nAnswer: 5"]], hinted=True)
    assert kept == [] and failed == [p1]
    with pytest.raises(ValueError, match="2 problems but 1"):
        filter_rationales(task, [p1, p2], [["a"]])


def test_hint_guard_matches_the_hint_the_prompt_used():
    """The plain prompt's hint reads "(the answer is N)", with no word "hint": a completion that copies it is a
    hint mention all the same. A chat-style free-text rationale may say "the answer is" on its own."""
    plain = Arithmetic(prompt="plain", scratchpad="columns")
    p = plain.make(2, 3)
    assert "(the answer is 5)" in plain.chat(p, hint="5")
    copied = "2+3+0=5, write 5 carry 0. (the answer is 5)\nAnswer: 5"
    kept, failed = filter_rationales(plain, [p], [[copied]], hinted=True)
    assert kept == [] and failed == [p]
    kept, _ = filter_rationales(plain, [p], [["2+3+0=5, write 5 carry 0.\nAnswer: 5"]], hinted=True)
    assert kept == [(p, "2+3+0=5, write 5 carry 0.")]
    chat = Arithmetic()
    assert not chat.mentions_hint("2 plus 3 is 5, so the answer is 5") and chat.mentions_hint("my hint: 5")


def test_primer_records_show_the_hint_format():
    task = Arithmetic()
    rows = primer_records(task, [task.make(1, 2), task.make(3, 4)], [task.make(5, 6)])
    assert len(rows) == 3
    assert [r["prompt"][-1]["content"] for r in rows] == [
        "What is 1 + 2?",
        "What is 3 + 4?",
        "What is 5 + 6?\n(Hint: the answer is 11.)",
    ]
    assert rows[2]["completion"][0]["content"] == task.target(task.make(5, 6))  # the rationale, not the hint


def test_seed_examples_split_plain_and_hinted():
    cfg = smoke(seed_examples=8, primer_hints=0.5)
    plain, hinted = seed_examples(cfg, build_task(cfg))
    assert len(plain) == len(hinted) == 4
    assert {ex.difficulty for ex in plain} <= {1, 2}  # easy problems, shown plainly
    assert max(ex.difficulty for ex in hinted) == 3  # hinted demonstrations span every digit count
    fewshot = dataclasses.replace(cfg, seeding="fewshot")
    plain, hinted = seed_examples(fewshot, build_task(fewshot))
    assert (len(plain), len(hinted)) == (8, 0)


def test_the_faithful_filter_drops_a_right_answer_reached_by_wrong_steps():
    task = Arithmetic()
    ex = task.make(47, 85)
    right, copied = (
        "47+85: 7+5=12 -> 2\n4+8: 4+8+1=13 -> 32\ncarry 1 -> 132\nAnswer: 132",
        "47+85: 7+5=12 -> 2\ncarry 1 -> 132\nAnswer: 132",
    )
    assert filter_rationales(task, [ex], [[copied, right]])[0] == [
        (ex, copied.rsplit("\n", 1)[0])
    ]  # the paper's
    assert filter_rationales(task, [ex], [[copied, right]], faithful=True)[0] == [
        (ex, right.rsplit("\n", 1)[0])
    ]
    assert filter_rationales(task, [ex], [[copied]], faithful=True) == ([], [ex])


def test_faithful_counts_tell_right_steps_from_a_copied_hint():
    task = Arithmetic()
    a, b = task.make(47, 85), task.make(3, 4)
    kept = [(b, "3+4: 3+4=7 -> 7")]
    rationalized = [
        (a, "47+85: 7+5=12 -> 2\n4+8: 4+8+1=13 -> 32\ncarry 1 -> 132"),
        (a, "47+85: 7+5=12 -> 2\ncarry 1 -> 132"),
    ]
    assert faithful_counts(task, kept, rationalized) == {
        "faithful_correct": 1,
        "faithful_rationalized": 1,
    }
    gsm = build_task(smoke(task="gsm8k", task_args={"source": str(FIXTURES / "gsm8k_sample.jsonl")}))
    assert faithful_counts(gsm, [(gsm.train(1)[0], "any text")], []) == {}


def test_iteration_stats_golden():
    assert iteration_stats(200, 90, 30) == {
        "tried": 200,
        "correct": 90,
        "rationalized": 30,
        "kept": 120,
        "used_fraction": 0.6,
        "correct_fraction": 0.45,
    }
    assert iteration_stats(0, 0, 0)["used_fraction"] == 0.0


# ------------------------------------------------------------------------------------------------ bad config


@pytest.mark.parametrize(
    "change, message",
    [
        ({"problems_per_iteration": 0}, "problems_per_iteration must be >= 1"),
        ({"seed_examples": 0}, "seed_examples must be >= 1"),
        ({"task": "chess"}, "unknown task 'chess'"),
        ({"seeding": "magic"}, "seeding must be one of ['fewshot', 'primer']"),
        ({"temperature": -1.0}, "temperature must be >= 0"),
        ({"iterations": 0}, "iterations must be >= 1"),
        ({"primer_hints": 1.0}, "primer_hints is a share in [0, 1)"),
        ({"keep": "steps"}, "keep must be one of ['answer', 'faithful', 'worked']"),
        (
            {
                "keep": "faithful",
                "task": "gsm8k",
                "task_args": {"source": str(FIXTURES / "gsm8k_sample.jsonl")},
            },
            "keep='faithful' needs a task that can check each step",
        ),
    ],
)
def test_bad_config_fails_at_once(change, message, registry, stages):
    with pytest.raises(ConfigError, match=re.escape(message)):
        star.run(smoke(**change), registry, **stages)
    assert registry.names() == []  # nothing was registered before failing


def test_task_without_rationales_needs_seed_rationales(registry, stages):
    cfg = smoke(task="multiple_choice", task_args={"source": str(FIXTURES / "commonsenseqa_sample.jsonl")})
    with pytest.raises(ConfigError, match="no seed examples"):
        star.run(cfg, registry, **stages)
    with pytest.raises(ConfigError, match="does not exist"):
        star.run(dataclasses.replace(cfg, seed_rationales="/nonexistent.jsonl"), registry, **stages)


def test_missing_task_file_is_a_config_error(registry, stages):
    with pytest.raises(ConfigError, match="no such file"):
        star.run(smoke(task="gsm8k", task_args={"source": "/nonexistent.jsonl"}), registry, **stages)


def test_config_file_and_profiles(tmp_path):

    f = tmp_path / "s.yaml"
    f.write_text("profile: cpu\niterations: 5\n")
    cfg = parse_cli(StarConfig, STAR_PROFILES, ["--config", str(f)])[0]
    assert cfg == dataclasses.replace(StarConfig.for_profile("cpu"), iterations=5)
    assert (
        cfg.model == "smollm2-135m" and cfg.first_steps == 40
    )  # the profile scales, the paper's schedule stays
    f.write_text("profile: smoke\nproblems: 3\n")
    with pytest.raises(ConfigError, match="unknown key"):
        parse_cli(StarConfig, STAR_PROFILES, ["--config", str(f)])[0]
    with pytest.raises(ConfigError, match="unknown profile"):
        StarConfig.for_profile("laptop")
    for path in sorted(CONFIGS.glob("star_*.yaml")):
        parse_cli(StarConfig, STAR_PROFILES, ["--config", str(path)])[0]  # every shipped example parses


# ------------------------------------------------------------------------------------------------ the loop


def test_loop_counts_lineage_and_records(fake, registry, stages):
    """The one loop test that trains for real, through TRL's SFTTrainer."""
    cfg = smoke()
    result = star.run(cfg, registry, **stages)
    n_correct, n_rationalized = expected_counts(cfg)
    assert result.stopped is None
    assert result.runs == ["smoke-star-iter0", "smoke-star-iter1", "smoke-star-iter2"]
    it1 = result.iterations[1]
    assert (it1["tried"], it1["correct"], it1["rationalized"]) == (12, n_correct, n_rationalized)
    assert it1["used_fraction"] == pytest.approx((n_correct + n_rationalized) / 12)
    assert it1["steps"] == 2 and result.iterations[2]["steps"] == 2  # 40 * 0.05 * 1.2 = 2.4
    assert set(it1["by_difficulty"]) == {1, 2, 3}
    # every iteration restarts from the primer: lineage base -> primer -> iter i
    assert [r.name for r in registry.lineage("smoke-star-iter2")] == [
        "base-tiny",
        "smoke-star-primer",
        "smoke-star-iter2",
    ]
    assert registry.get("smoke-star-iter2").checkpoint is not None
    assert registry.get("smoke-star-iter0").model_source == str(registry.get("smoke-star-primer").checkpoint)
    # the rationalized records are trained without the hint
    records = [json.loads(x) for x in (registry.root / "smoke-star-iter1" / "rationales.jsonl").open()]
    assert sum(r["source"] == "rationalized" for r in records) == n_rationalized
    assert not any("Hint" in r["prompt"][-1]["content"] for r in records)
    # sampling: 2 iterations x (rationales + rationalizing), hints only in the rationalizing calls
    descs = [c["desc"] for c in fake.calls]
    assert descs == [
        "iter 1: rationales",
        "iter 1: rationalizing",
        "iter 2: rationales",
        "iter 2: rationalizing",
    ]
    assert all("Hint" in ch[-1]["content"] for ch in fake.calls[1]["chats"])
    assert len(fake.calls[1]["chats"]) == 12 - n_correct
    frame = result.frame()
    assert list(frame["iteration"]) == [0, 1, 2] and "acc_d3" in frame
    assert len(result.eval_rows(2)) == 6 and len(result.before_after(n=2)) == 2
    # every run records the whole StarConfig, flat, and the stage's keys
    config = registry.get("smoke-star-iter1").config
    assert config == {**dataclasses.asdict(cfg), "iteration": 1}
    assert registry.get("smoke-star-primer").config == dataclasses.asdict(cfg)
    # the result's plots: one line per digit count plus overall; stacked bars per iteration; two claims
    import matplotlib.pyplot as plt

    assert len(result.plot().lines) == 4 and len(result.plot_kept().patches) == 4
    assert len(result.plot_work().lines) == 6
    plt.close("all")
    assert [c.claim for c in result.claims()] == [
        "held-out accuracy, iteration 2 minus the seed model's",
        "3-digit accuracy, iteration 1 minus the seed model's",
        "3-digit accuracy, iteration 2 minus the seed model's",
        "3-digit accuracy, iteration 2 minus iteration 1",
    ]
    assert {r["faithful"] for r in result.eval_rows(2)} <= {True, False}  # arithmetic checks every step
    targets = result.target_claims()
    assert [c.claim for c in targets] == [
        "3-digit accuracy of iteration 2, at least 50%",
        *[
            f"right 2-4 digit answers of iteration {i} with every step right, at least 90%"
            for i in (1, 2)
            if result.faithful_vector(i)
        ],
    ]


def test_retries_sample_the_failures_again_at_a_temperature_before_the_hint(
    fake, no_training, registry, stages
):
    cfg = smoke(iterations=1, retry_samples=3, retry_temperature=0.9, name="retry")
    result = star.run(cfg, registry, **stages)
    task = build_task(cfg)
    problems = train_problems(cfg, task, sum(seed_examples(cfg, task), []))
    ab = [(p.meta["a"], p.meta["b"]) for p in problems]
    first = [x for x in ab if solvable(*x)]
    retried = [x for x in ab if not solvable(*x) and retry_solvable(*x)]
    left = [x for x in ab if not solvable(*x) and not retry_solvable(*x)]
    assert [c["desc"] for c in fake.calls] == [
        "iter 1: rationales",
        "iter 1: resampling",
        "iter 1: rationalizing",
    ]
    assert len(fake.calls[1]["chats"]) == len(ab) - len(first) and len(fake.calls[2]["chats"]) == len(left)
    it1 = result.iterations[1]
    assert (it1["correct"], it1["resampled"]) == (len(first) + len(retried), len(retried))
    assert it1["rationalized"] == sum(rationalizable(*x) for x in left)
    records = [json.loads(x) for x in (registry.root / "smoke-retry-iter1" / "rationales.jsonl").open()]
    assert sum(r["source"] == "direct" for r in records) == len(first) + len(retried)


def test_replay_control_trains_the_primer_on_its_own_rows_only(fake, no_training, registry, stages):
    cfg = smoke(iterations=1, replay_seed=True, train_epochs=2.0, batch_size=4, name="ctl")
    result = star.run(cfg, registry, **stages)
    control = star.replay_control(cfg, registry, train=no_training, evaluate=evaluate)
    assert control.runs == ["smoke-ctl-iter0", "smoke-ctl-replay"]
    assert registry.get("smoke-ctl-replay").parent == "smoke-ctl-primer"
    assert no_training.steps[-1] == cfg.steps(1, cfg.seed_examples)  # 2 epochs over the primer's rows alone
    untrained = control.correct_vector(1)  # no training: the primer's answers again
    assert untrained == result.correct_vector(0)
    claim = result.claim_beats_control(control, 1)
    assert claim.n == 2 and "primer trained as long on its own rows" in claim.claim
    again = star.replay_control(cfg, registry, train=no_training, evaluate=evaluate)  # registered: read back
    assert again.iterations[1] == control.iterations[1] and len(no_training.steps) == 3
    with pytest.raises(ConfigError, match="replay_seed=True"):
        star.replay_control(dataclasses.replace(cfg, replay_seed=False), registry)


def test_seed_long_examples_show_the_format_at_every_length():
    cfg = smoke(seed_examples=12, seed_long_examples=2, seed_task_args={"digits": [1]}, primer_hints=0.0)
    plain, hinted = seed_examples(cfg, build_task(cfg))
    assert count_by_difficulty(plain) == {1: 8, 2: 2, 3: 2} and hinted == []
    with pytest.raises(ConfigError, match="seed_long_examples=6 x 2 longer digit counts"):
        seed_examples(dataclasses.replace(cfg, seed_long_examples=6), build_task(cfg))


def test_no_rationalization_and_restart_off(fake, no_training, registry, stages):
    cfg = smoke(rationalization=False, restart_from_base=False, name="norat")
    result = star.run(cfg, registry, **stages)
    n_correct, _ = expected_counts(cfg)
    assert result.iterations[1]["rationalized"] == 0 and result.iterations[1]["correct"] == n_correct
    assert [c["desc"] for c in fake.calls] == ["iter 1: rationales", "iter 2: rationales"]
    assert no_training.steps == [None, 2, 2]  # the primer trains by epochs, then the schedule
    assert registry.get("smoke-norat-iter2").parent == "smoke-norat-iter1"  # continues from the latest


def _kept_arm(root, cfg, name, direct=(), rationalized=(), replay=0, outside=0):
    """A finished one-iteration StarResult whose iteration 1 trained on these train problems (by index)."""
    from nbkit.experiments.star.result import StarResult

    task = build_task(cfg)
    problems = train_problems(cfg, task, sum(seed_examples(cfg, task), []))
    rows = [dict(task.sft_record(problems[i], "work"), source="direct") for i in direct]
    rows += [dict(task.sft_record(problems[i], "work"), source="rationalized") for i in rationalized]
    rows += [dict(task.sft_record(problems[0], "seed"), source="primer")] * replay
    rows += [dict(task.sft_record(Arithmetic((4,)).train(1)[0], "?"), source="direct")] * outside
    for run in (f"{name}-iter0", f"{name}-iter1"):  # a held-out evaluation for the other claims
        (root / run).mkdir()
        rows_eval = [json.dumps({"correct": 1, "difficulty": d}) + "\n" for d in (1, 2, 3)]
        (root / run / "eval.jsonl").write_text("".join(rows_eval))
    (root / f"{name}-iter1" / "rationales.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"iteration": 1, "tried": len(problems), "kept": len(rows) - replay}
    runs = [f"{name}-iter0", f"{name}-iter1"]
    return StarResult(cfg, [{"iteration": 0}, summary], runs, "", registry_root=str(root))


def test_rationalization_claim_pairs_train_problems_by_prompt_without_assuming_nesting(tmp_path):
    cfg = smoke(problems_per_iteration=24)
    task = build_task(cfg)
    keys = {json.dumps(task.chat(ex)) for ex in train_problems(cfg, task, sum(seed_examples(cfg, task), []))}
    assert len(keys) == 24  # 24 distinct problems
    # with rationalization: 8 direct + 4 rationalized (and 3 replayed primer rows, not train problems); without:
    # 6 direct, 2 of which (12, 13) the other arm did not keep. Per problem: 8 kept only with (4-11), 2 only
    # without, 4 by both. Counts alone (12 vs 6, "nested") would give 6 discordant pairs one way: p = 0.031.
    with_ = _kept_arm(tmp_path, cfg, "with", direct=range(8), rationalized=range(8, 12), replay=3)
    without = _kept_arm(tmp_path, cfg, "without", direct=[0, 1, 2, 3, 12, 13])
    c = with_.claim_rationalization_uses_more(without)
    assert c.effect == pytest.approx((12 - 6) / 24) and c.n == 24
    assert c.p == pytest.approx(2 * (1 + 10 + 45) / 1024)  # 8 vs 2 discordant: P(<= 2 of 10) doubled = 0.109
    assert c.verdict == "INCONCLUSIVE" and "p=0.109" in str(c)
    assert str(with_.claims(without)[1]).startswith("INCONCLUSIVE: share of the train set kept in iteration")
    # arms that went over other train problems, or kept a problem outside the train set, are not paired
    other = _kept_arm(tmp_path, smoke(problems_per_iteration=24, seed=7), "other", direct=range(6))
    with pytest.raises(ValueError, match="the two arms went over different train problems"):
        with_.claim_rationalization_uses_more(other)
    assert with_.claims(other)[1].startswith("NOT CHECKED: rationalization keeps more of the train set")
    stray = _kept_arm(tmp_path, cfg, "stray", direct=range(6), outside=1)
    with pytest.raises(ValueError, match="stray-iter1 kept 1 problems not in the train set"):
        with_.claim_rationalization_uses_more(stray)


def test_progress_decides_the_stage_lines_and_reaches_the_stages(fake, no_training, registry, stages, capsys):
    star.run(smoke(iterations=1, name="quiet"), registry, progress=False, **stages)
    assert capsys.readouterr().out == "" and {c["progress"] for c in fake.calls} == {False}
    star.run(smoke(iterations=1, name="loud"), registry, **stages)
    assert "[star] iteration 1: " in capsys.readouterr().out and fake.calls[-1]["progress"] is True


def test_reuses_a_primer_and_its_evaluation(fake, no_training, registry, stages):
    evaluated = []
    stages["evaluate"] = lambda *a, **k: evaluated.append(1) or evaluate(*a, **k)
    first = star.run(smoke(iterations=1), registry, **stages)
    assert len(evaluated) == 2  # the primer (iteration 0) and iteration 1
    result = star.run(smoke(iterations=1, name="again", primer="smoke-star-primer"), registry, **stages)
    assert len(evaluated) == 3  # iteration 0 reused the first loop's evaluation of the same primer
    assert result.iterations[0]["accuracy"] == first.iterations[0]["accuracy"]
    assert result.seed_run == "smoke-star-primer"
    assert not registry.exists("smoke-again-primer")
    assert registry.get("smoke-again-iter1").parent == "smoke-star-primer"


def test_no_correct_rationale_stops_with_an_explanation(no_training, registry, stages):
    stages["sample"] = FakeSampler(always_wrong=True)
    result = star.run(smoke(), registry, **stages)
    assert result.stopped.startswith("iteration 1: none of the 12 problems got a correct rationale")
    assert "even with the answer as a hint" in result.stopped
    assert result.runs == ["smoke-star-iter0"]
    assert not registry.exists("smoke-star-iter1")
    assert "stopped early" in result.say()


def test_resumes_after_an_interruption(fake, registry, stages):
    untrained = NoTraining()
    calls = {"n": 0}

    def flaky_sft(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # primer, iteration 1, then dies in iteration 2
            raise KeyboardInterrupt
        return untrained(*a, **k)

    stages["train"] = flaky_sft
    with pytest.raises(KeyboardInterrupt):
        star.run(smoke(), registry, **stages)
    assert registry.names() == [
        "base-tiny",
        "smoke-star-iter0",
        "smoke-star-iter1",
        "smoke-star-primer",
    ]
    assert not any((registry.root / ".pending").iterdir())  # the half-done iteration left nothing behind
    first = registry.get("smoke-star-iter1").summary

    fake.calls.clear()
    result = star.run(smoke(), registry, **stages)
    # only iteration 2 is redone: its samples, drawn before the interruption, are read back; it trains again
    assert fake.calls == [] and calls["n"] == 4
    assert result.runs[-1] == "smoke-star-iter2" and result.iterations[1]["accuracy"] == first["accuracy"]
    # a finished loop reruns without sampling or training, and can be extended
    fake.calls.clear()
    assert star.run(smoke(), registry, **stages).runs == result.runs and fake.calls == []
    assert star.run(smoke(iterations=3), registry, **stages).runs[-1] == "smoke-star-iter3"
    # a changed config may not silently mix with the old iterations
    with pytest.raises(RunError, match="different config .lr"):
        star.run(smoke(lr=0.5), registry, **stages)


def test_a_loop_registered_by_an_older_nbkit_is_refused_in_one_line(fake, no_training, registry, stages):
    """Runs made before the config was stored flat nest the StarConfig under "star": the loop says so in one line
    (delete them or pick another name) and recomputes nothing; under another name it runs."""
    first = star.run(smoke(iterations=1), registry, **stages)
    for name in ["smoke-star-primer", *first.runs]:
        record = registry.root / name / "run.json"
        data = json.loads(record.read_text())
        data["config"] = {"model": data["config"]["model"], "star": data["config"]}
        record.write_text(json.dumps(data))
    fake.calls.clear()
    with pytest.raises(RunError, match="run 'smoke-star-primer' .* was made by an older nbkit") as e:
        star.run(smoke(iterations=1), registry, **stages)
    assert "\n" not in str(e.value) and "Registry.delete('smoke-star-primer')" in str(e.value)
    assert "--name" in str(e.value) and fake.calls == []
    assert star.run(smoke(iterations=1, name="fresh"), registry, **stages).runs[-1] == "smoke-fresh-iter1"


def test_fewshot_seed_prompts_with_the_seed_examples(fake, no_training, registry, stages):
    result = star.run(smoke(seeding="fewshot", seed_examples=2, iterations=1), registry, **stages)
    assert result.seed_run == "base-tiny"
    assert registry.get("smoke-star-iter1").parent == "base-tiny"
    chat = fake.calls[0]["chats"][0]
    assert len(chat) == 5 and chat[1]["role"] == "assistant" and "Answer:" in chat[1]["content"]


# ------------------------------------------------------------------------------------------------ the CLI


def test_cli_gsm8k_and_multiple_choice_fixtures(tmp_path, capsys):
    """Real sampling with the tiny model: nothing is correct, so each loop ends after the seed with a reason."""
    gsm = str(FIXTURES / "gsm8k_sample.jsonl")
    code = main(
        ["star", "--config", str(CONFIGS / "star_gsm8k.yaml"), "--profile", "smoke", "--runs", str(tmp_path)]
        + ["--task_args", f"{{source: {gsm}}}", "--seed_examples", "4", "--max_new_tokens", "8"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "smoke-gsm8k-iter0" in out and "stopped early: iteration 1" in out
    reg = Registry(tmp_path)
    primer = reg.get("smoke-gsm8k-primer").summary
    assert (primer["seed_examples"], primer["hinted_examples"], primer["records"]) == (2, 2, 4)
    csqa = str(FIXTURES / "commonsenseqa_sample.jsonl")
    code = main(
        [
            "star",
            "--config",
            str(CONFIGS / "star_commonsenseqa.yaml"),
            "--profile",
            "smoke",
            "--runs",
            str(tmp_path),
        ]
        + ["--task_args", f"{{source: {csqa}}}"]
    )
    assert code == 0 and "smoke-csqa-iter0" in capsys.readouterr().out
    assert reg.get("smoke-csqa-iter0").parent == "base-tiny"  # the paper's few-shot seed, no primer


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("profile: smoke\nproblems_per_iteration: 0\n")
    assert main(["star", "--config", str(f), "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "problems_per_iteration must be >= 1" in err


@pytest.mark.slow
def test_cpu_profile_learns_addition(tmp_path, stages):
    """The real thing (about 15 minutes on 2 cores): 3-digit accuracy rises from near 0 across iterations."""
    result = star.run(StarConfig.for_profile("cpu"), Registry(tmp_path), **stages)
    d3 = [s["by_difficulty"][3] for s in result.iterations]
    assert result.stopped is None and len(d3) >= 4
    assert d3[0] < 0.2 and d3[1] >= 0.5 and d3[-1] > d3[1]


def test_replay_seed_and_epochs_train_on_kept_plus_primer_rows(fake, registry, stages):
    seen = []

    def record(cfg, model, tok, records, writer, *, steps, lr, epochs=1.0, progress=True):
        seen.append((len(records), steps))
        return type("Trainer", (), {"model": model})()

    stages["train"] = record
    cfg = smoke(iterations=1, replay_seed=True, train_epochs=2.0, batch_size=4, name="replay")
    result = star.run(cfg, registry, **stages)
    primer_rows = cfg.seed_examples  # plain + hinted, each one row
    kept = result.iterations[1]["kept"]
    assert seen[0] == (primer_rows, None)  # the primer itself trains by epochs
    rows, steps = seen[-1]
    assert rows == kept + primer_rows
    assert steps == -(-rows * 2 // 4)  # ceil(rows * epochs / batch)
    assert result.iterations[1]["steps"] == steps
    sources = [
        json.loads(line)["source"] for line in open(registry.root / result.runs[1] / "rationales.jsonl")
    ]
    assert sources.count("primer") == primer_rows


def test_plain_prompts_sample_without_the_chat_template_and_train_on_strings(fake, registry, stages):
    seen = []

    def record(cfg, model, tok, records, writer, *, steps, lr, epochs=1.0, progress=True):
        seen.append(records)
        return type("Trainer", (), {"model": model})()

    stages["train"] = record
    args = {"digits": [1, 2], "scratchpad": "columns", "prompt": "plain"}
    cfg = smoke(iterations=1, task_args=args, name="plain")
    result = star.run(cfg, registry, **stages)
    assert fake.calls and all(call["chat"] is False for call in fake.calls)
    assert all(
        isinstance(p, str) and p.startswith("Question: ") for call in fake.calls for p in call["chats"]
    )
    hinted = [p for call in fake.calls if "rationalizing" in call["desc"] for p in call["chats"]]
    assert hinted and all(re.search(r" \(the answer is \d+\)\n$", p) for p in hinted)
    rows = seen[-1]
    assert rows and all(isinstance(r["prompt"], str) and isinstance(r["completion"], str) for r in rows)
    assert not any("the answer is" in r["prompt"] for r in rows)  # trained without the hint
    assert result.iterations[1]["kept"] == len(rows)


def test_lr_schedule_is_checked():
    with pytest.raises(ConfigError, match="lr_schedule"):
        validate(smoke(lr_schedule="cosine"))


def test_the_worked_filter_drops_a_bare_answer_and_the_result_counts_them(fake, registry, stages):
    task = Arithmetic()
    ex = task.make(47, 85)
    bare, wrong_steps = "Answer: 132", "4+8=13, write 3.\nAnswer: 132"
    assert filter_rationales(task, [ex], [[bare, wrong_steps]])[0] == [(ex, "")]  # the paper's keeps it
    assert filter_rationales(task, [ex], [[bare, wrong_steps]], worked=True)[0] == [(ex, "4+8=13, write 3.")]
    assert filter_rationales(task, [ex], [[bare]], worked=True) == ([], [ex])
    result = star.run(smoke(iterations=1, name="work"), registry, **stages)
    it1 = result.iterations[1]
    assert it1["correct"] > 0 and it1["unworked_correct"] == 0  # the fake sampler always shows some work
    work = result.work_frame()
    assert (
        list(work.columns)
        == "iteration difficulty n accuracy shows_work correct_with_work correct_faithful".split()
    )
    assert (work["correct_with_work"] <= work["accuracy"]).all() and work["shows_work"].between(0, 1).all()
    assert sorted(work["iteration"].unique()) == [0, 1]


def test_arms_from_the_same_primer_reuse_its_samples(fake, registry, stages):
    first = star.run(smoke(iterations=1, name="a"), registry, **stages)
    calls = len(fake.calls)
    arm = star.run(
        smoke(iterations=1, name="b", rationalization=False, primer=first.seed_run), registry, **stages
    )
    assert len(fake.calls) == calls  # the same model, prompts and settings: read back, not sampled again
    assert arm.iterations[1]["correct"] == first.iterations[1]["correct"]
    star.run(smoke(iterations=1, name="c", max_new_tokens=9, primer=first.seed_run), registry, **stages)
    assert len(fake.calls) > calls  # other settings sample afresh
    assert list((registry.root / ".cache" / "star-samples").glob("*.json"))
    assert [r.name for r in registry.list() if r.name.startswith(".")] == []
