import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbkit.tasks import FIXTURES, GSM8K, Arithmetic, MultipleChoice, TaskError, accuracy_table, make_task
from nbkit.tasks.arithmetic import carry_scratchpad, column_scratchpad, in_test_split, scratchpad


def test_scratchpad_golden():
    assert scratchpad(47, 85) == "47+85: 7+5=12 -> 2\n4+8: 4+8+1=13 -> 32\ncarry 1 -> 132"
    assert scratchpad(478, 385) == "478+385: 8+5=13 -> 3\n47+38: 7+8+1=16 -> 63\n4+3: 4+3+1=8 -> 863"
    assert scratchpad(3, 4) == "3+4: 3+4=7 -> 7"
    assert scratchpad(47, 5) == "47+5: 7+5=12 -> 2\n4+0: 4+0+1=5 -> 52"  # a shorter number runs out as 0


@given(st.integers(0, 99999), st.integers(0, 99999))
@settings(max_examples=200, deadline=None)
def test_scratchpad_always_ends_in_the_sum(a, b):
    assert scratchpad(a, b).rsplit("-> ", 1)[1] == str(a + b)
    task = Arithmetic()
    ex = task.make(a, b)
    assert task.is_correct(task.target(ex), ex)


def test_column_scratchpad_golden():
    assert column_scratchpad(47, 85) == "7+5+0=12, write 2 carry 1. 4+8+1=13, write 3 carry 1. write 1."
    assert column_scratchpad(3, 4) == "3+4+0=7, write 7 carry 0."
    assert column_scratchpad(5, 95) == "5+5+0=10, write 0 carry 1. 0+9+1=10, write 0 carry 1. write 1."


@given(st.integers(0, 99999), st.integers(0, 99999))
@settings(max_examples=200, deadline=None)
def test_column_scratchpad_writes_the_sum_right_to_left(a, b):
    written = "".join(c.split("write ")[1][0] for c in column_scratchpad(a, b).split(". ") if "write" in c)
    assert written[::-1].lstrip("0") == str(a + b).lstrip("0")
    task = Arithmetic(scratchpad="columns")
    ex = task.make(a, b)
    assert task.is_correct(task.target(ex), ex) and task.faithful(ex, ex.rationale)
    assert not task.faithful(ex, ex.rationale.replace("write", "put", 1))


def test_carry_scratchpad_golden():
    assert carry_scratchpad(847, 285) == (
        "847+285: 7+5+0=12, carry 1 -> 2\n84+28: 4+8+1=13, carry 1 -> 32\n8+2: 8+2+1=11, carry 1 -> 132\n"
        "carry 1 -> 1132"
    )
    assert carry_scratchpad(3, 4) == "3+4: 3+4+0=7, carry 0 -> 7"


@given(st.integers(0, 99999), st.integers(0, 99999))
@settings(max_examples=200, deadline=None)
def test_carry_scratchpad_ends_in_the_sum_and_copies_each_carry(a, b):
    lines = carry_scratchpad(a, b).split("\n")
    assert int(lines[-1].split("-> ")[1]) == a + b
    for above, line in zip(lines, lines[1:]):
        if ": " in line:  # the carry a line adds is the one the line above wrote
            assert line.split("=")[0].rsplit("+", 1)[1] == above.split("carry ")[1][0]
    task = Arithmetic(scratchpad="carries")
    ex = task.make(a, b)
    assert task.is_correct(task.target(ex), ex) and task.faithful(ex, ex.rationale)


def test_unknown_scratchpad_is_one_line():
    with pytest.raises(TaskError, match="choose one of numbers, carries, columns"):
        Arithmetic(scratchpad="roman")


def test_splits_are_disjoint_seeded_and_balanced():
    task = Arithmetic(digits=(1, 2, 3), seed=0)
    train, test = task.train(150), task.test(45)
    assert not {e.question for e in train} & {e.question for e in test}
    assert all(not in_test_split(e.meta["a"], e.meta["b"]) for e in train)
    assert [e.question for e in task.train(150)] == [e.question for e in train]
    assert [e.question for e in Arithmetic(seed=1).train(150)] != [e.question for e in train]
    assert [sum(e.difficulty == d for e in test) for d in (1, 2, 3)] == [15, 15, 15]
    assert len({e.question for e in train}) == 150


def test_split_is_on_the_unordered_pair():
    """`a + b` and `b + a` sit on the same side: no held-out sum is trained on written the other way round."""
    pairs = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    assert all(in_test_split(a, b) == in_test_split(b, a) for a, b in pairs)
    task = Arithmetic(digits=(2,), seed=0)
    train = {tuple(sorted((e.meta["a"], e.meta["b"]))) for e in task.train(3000)}
    test = {tuple(sorted((e.meta["a"], e.meta["b"]))) for e in task.test(800)}
    assert not train & test


def test_arithmetic_bad_inputs():
    with pytest.raises(TaskError, match="between 1 and 6"):
        Arithmetic(digits=(0,))
    with pytest.raises(TaskError, match="only 1[0-9] exist|only 2[0-9] exist"):
        Arithmetic(digits=(1,)).test(50)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("carry 1 -> 132\nAnswer: 132", "132"),
        ("The sum is 12.", "12"),
        ("Answer: 1,024", "1,024"),
        ("no idea", None),
        ("Answer: 5\nAnswer: 7", "7"),
    ],
)
def test_extract_answer(text, expected):
    assert Arithmetic().extract_answer(text) == expected


def test_reward_has_trl_signature_and_reuses_the_check():
    task = Arithmetic()
    completions = ["Answer: 132", [{"role": "assistant", "content": "Answer: 131"}], "1,024", "nothing"]
    assert task.reward(completions, answer=["132", "132", "1024", "5"], prompts=None) == [1.0, 0.0, 1.0, 0.0]
    with pytest.raises(TaskError, match="got 2 completions but 1 answers"):
        task.reward(["a", "b"], answer=["1"])


def test_prompts_chat_hint_and_fewshot():
    task = Arithmetic()
    ex = task.make(47, 85)
    assert task.prompt(ex) == "What is 47 + 85?"
    assert task.prompt(ex, hint="132").endswith("(Hint: the answer is 132.)")
    assert task.chat(ex, system="S") == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "What is 47 + 85?"},
    ]
    shots = task.fewshot([task.make(1, 2)], ex)
    assert [m["role"] for m in shots] == ["user", "assistant", "user"]
    rec = task.sft_record(ex)
    assert rec["completion"][0]["content"].endswith("Answer: 132") and rec["answer"] == "132"
    quiet = Arithmetic(system="")  # an empty system turn keeps a chat template from inserting its default
    assert quiet.chat(ex)[0] == {"role": "system", "content": ""}
    roles = [m["role"] for m in quiet.fewshot([task.make(1, 2)], ex)]
    assert roles == ["system", "user", "assistant", "user"]
    assert quiet.sft_record(ex)["prompt"][0]["role"] == "system"


def test_plain_prompts_carry_the_hint_inline_and_train_on_strings():
    task = Arithmetic(scratchpad="columns", prompt="plain")
    ex = task.make(47, 85)
    assert not task.uses_chat
    assert task.chat(ex) == "Question: 47 + 85\n"
    assert task.chat(ex, hint="132") == "Question: 47 + 85 (the answer is 132)\n"
    rec = task.sft_record(ex)
    assert rec["prompt"] == "Question: 47 + 85\n"
    assert rec["completion"] == "7+5+0=12, write 2 carry 1. 4+8+1=13, write 3 carry 1. write 1.\nAnswer: 132"
    shots = task.fewshot([task.make(1, 2)], ex)
    assert shots.startswith("Question: 1 + 2\n1+2+0=3, write 3 carry 0.\nAnswer: 3\n\n")
    assert shots.endswith("Question: 47 + 85\n")
    with pytest.raises(TaskError, match="chat or plain"):
        Arithmetic(prompt="markdown")


def test_plain_evaluation_skips_the_chat_template(tiny):
    model, tok = tiny
    task = Arithmetic(digits=(1,), prompt="plain")
    ex = task.test(2)
    res = task.evaluate(model, tok, ex, max_new_tokens=4, progress=False)
    assert res["n"] == 2
    # the same greedy completions as sampling the bare prompt strings with chat=False
    from nbkit.sampling import sample

    plain = sample(model, tok, [task.chat(e) for e in ex], max_new_tokens=4, temperature=0, chat=False)
    assert [r["completion"] for r in res["rows"]] == [t[0] for t in plain.texts()]


def test_accuracy_table():
    rows = [
        {"difficulty": 1, "correct": True},
        {"difficulty": 2, "correct": False},
        {"difficulty": 2, "correct": True},
    ]
    assert accuracy_table(rows) == {"accuracy": 2 / 3, "by_difficulty": {1: 1.0, 2: 0.5}, "n": 3}


def test_evaluate_on_tiny(tiny):
    model, tok = tiny
    task = Arithmetic(digits=(1, 2))
    res = task.evaluate(model, tok, task.test(6), max_new_tokens=4, progress=False)
    assert res["n"] == 6 and set(res["by_difficulty"]) == {1, 2}
    assert len(res["rows"]) == 6 and all(isinstance(r["completion"], str) for r in res["rows"])
    with pytest.raises(TaskError, match="0 examples"):
        task.evaluate(model, tok, [])


def test_gsm8k_fixture_through_datasets():
    task = GSM8K(FIXTURES / "gsm8k_sample.jsonl")
    assert len(task.train()) == 8 and len(task.test()) == 2
    ex = task.examples[0]
    assert ex.answer == "72" and "<<" not in ex.rationale and ex.difficulty == 2
    assert task.is_correct("so 72 clips.\nAnswer: 72", ex)
    assert task.is_correct("#### 72", ex) and not task.is_correct("Answer: 71", ex)
    assert GSM8K.parse({"question": "q", "answer": "x\n#### 1,250"}).answer == "1250"
    assert task.normalize("10.0") == "10"


def test_gsm8k_bad_inputs(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(TaskError):
        GSM8K(empty)
    with pytest.raises(TaskError, match="no such file"):
        GSM8K(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "no marker"}) + "\n")
    with pytest.raises(TaskError, match="without '####'"):
        GSM8K(bad)


def test_multiple_choice_both_schemas(tmp_path):
    task = MultipleChoice(FIXTURES / "commonsenseqa_sample.jsonl")
    ex = task.examples[0]
    assert ex.answer == "A" and "(E) avoid" in task.prompt(ex)
    assert task.is_correct("So the answer is (a).", ex) and not task.is_correct("Answer: B", ex)
    flat = tmp_path / "flat.jsonl"
    flat.write_text(
        json.dumps({"question": "Q?", "choices": {"label": ["A", "B"], "text": ["x", "y"]}, "answerKey": "B"})
        + "\n"
    )
    assert MultipleChoice(flat).examples[0].answer == "B"
    flat.write_text(json.dumps({"question": "Q?", "answerKey": "B"}) + "\n")
    with pytest.raises(TaskError, match="CommonsenseQA-format"):
        MultipleChoice(flat)


def test_make_task():
    from nbkit.errors import ConfigError

    assert make_task("arithmetic", digits=(2,)).digits == (2,)
    assert len(make_task("gsm8k", source="gsm8k_sample.jsonl").examples) > 0  # a file under tasks/fixtures
    with pytest.raises(ConfigError, match="known tasks: arithmetic, gsm8k, multiple_choice"):
        make_task("sudoku")
    with pytest.raises(ConfigError, match="does not take arguments"):
        make_task("arithmetic", colour="red")


def test_faithful_checks_every_step_not_only_the_answer():
    task = Arithmetic()
    ex = task.make(47, 85)
    assert task.faithful(ex, "47+85: 7+5=12 -> 2\n4+8: 4+8+1=13 -> 32\ncarry 1 -> 132\n")
    assert not task.faithful(ex, "47+85: 7+5=12 -> 2\n4+8: 4+8=12 -> 32\ncarry 1 -> 132")  # a wrong step
    assert GSM8K(FIXTURES / "gsm8k_sample.jsonl").faithful(ex, "anything") is None
