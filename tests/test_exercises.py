"""Every exercise check accepts the reference and rejects plausible wrong answers, with a useful message."""

import math

import pytest

from nbkit.tasks import Arithmetic
from nbkit.workshop import exercises as E

TASK = Arithmetic()


def _pstd(r):
    m = sum(r) / len(r)
    return math.sqrt(sum((x - m) ** 2 for x in r) / len(r))


def _std(r):
    m = sum(r) / len(r)
    return math.sqrt(sum((x - m) ** 2 for x in r) / (len(r) - 1))


def _sig(x):
    return 1 / (1 + math.exp(-x))


# name -> {description: wrong implementation}
WRONG = {
    "accuracy_by_digits": {
        "overall accuracy for every digit count": lambda rows: {
            r["difficulty"]: sum(x["correct"] for x in rows) / len(rows) for r in rows
        },
        "counts instead of shares": lambda rows: {
            d: sum(r["correct"] for r in rows if r["difficulty"] == d)
            for d in sorted({r["difficulty"] for r in rows})
        },
    },
    "star_filter": {
        "keeps hinted rationales that mention the hint": lambda first, hinted, answer: (
            "keep"
            if TASK.is_correct(first, answer)
            else "rationalize"
            if TASK.is_correct(hinted, answer)
            else "drop"
        ),
        "looks at the hinted attempt first": lambda first, hinted, answer: (
            "rationalize"
            if TASK.is_correct(hinted, answer) and "hint" not in hinted.lower()
            else "keep"
            if TASK.is_correct(first, answer)
            else "drop"
        ),
        "answer anywhere in the text": lambda first, hinted, answer: (
            "keep"
            if answer in first
            else "rationalize"
            if answer in hinted and "hint" not in hinted
            else "drop"
        ),
        "never says rationalize": lambda first, hinted, answer: (
            "keep" if TASK.is_correct(first, answer) or TASK.is_correct(hinted, answer) else "drop"
        ),
    },
    "step_schedule": {
        "rounds instead of flooring": lambda i, first=40, growth=0.2: round(first * (1 + growth) ** (i - 1)),
        "exponent i instead of i - 1": lambda i, first=40, growth=0.2: math.floor(first * (1 + growth) ** i),
        "linear growth": lambda i, first=40, growth=0.2: math.floor(first * (1 + growth * (i - 1))),
    },
    "group_advantage": {
        "forgets to subtract the mean": lambda r: [x / (_std(r) + 1e-4) for x in r],
        "population std (divides by k)": lambda r: [(x - sum(r) / len(r)) / (_pstd(r) + 1e-4) for x in r],
        "no epsilon: 0/0 on equal rewards": lambda r: [(x - sum(r) / len(r)) / _std(r) for x in r],
    },
    "zero_gradient": {
        "only all-wrong groups": lambda groups: [max(g) == 0 for g in groups],
        "low std counted as zero": lambda groups: [_std(g) < 0.1 for g in groups],
        "only all-right groups": lambda groups: [min(g) == 1 for g in groups],
    },
    "split_budget": {
        "rounds instead of flooring": lambda b, f, sc=1, pc=1: (round(b * f / sc), round(b * (1 - f) / pc)),
        "costs swapped": lambda b, f, sc=1, pc=1: (math.floor(b * f / pc), math.floor(b * (1 - f) / sc)),
        "ignores the costs": lambda b, f, sc=1, pc=1: (math.floor(b * f), math.floor(b * (1 - f))),
    },
    "dpo_loss": {
        "sign flipped": lambda pc, pr, rc, rr, beta=0.1: -math.log(_sig(-beta * ((pc - rc) - (pr - rr)))),
        "forgets the reference": lambda pc, pr, rc, rr, beta=0.1: -math.log(_sig(beta * (pc - pr))),
        "forgets beta": lambda pc, pr, rc, rr, beta=0.1: -math.log(_sig((pc - rc) - (pr - rr))),
        "sigmoid without the log": lambda pc, pr, rc, rr, beta=0.1: -_sig(beta * ((pc - rc) - (pr - rr))),
    },
}


def test_every_exercise_has_wrong_answers_and_a_check():
    assert set(WRONG) == set(E.EXERCISES)
    for name in E.EXERCISES:
        assert callable(getattr(E, f"check_{name}"))
        assert len(WRONG[name]) >= 2


@pytest.mark.parametrize("name", list(E.EXERCISES))
def test_check_accepts_the_reference(name):
    passed, message = E.run_check(name, E.EXERCISES[name].solution)
    assert passed, message
    assert message.startswith(f"✓ {name}: right on all")


@pytest.mark.parametrize(
    "name,wrong", [(n, w) for n, ws in WRONG.items() for w in ws], ids=lambda x: str(x).replace(" ", "_")
)
def test_check_rejects_a_wrong_answer(name, wrong):
    passed, message = E.run_check(name, WRONG[name][wrong])
    assert not passed, f"{name}: accepted the wrong answer {wrong!r}"
    assert message.startswith(f"✗ {name}(")
    assert "hint:" in message and ("expected:" in message or "raised" in message)


def test_golden_values():
    # by hand: group [1, 0, 0, 0] has mean 0.25 and std 0.5 -> 0.75 / 0.5001 and -0.25 / 0.5001
    assert E.group_advantage([1.0, 0, 0, 0]) == pytest.approx(
        [1.49970006, -0.49990002, -0.49990002, -0.49990002]
    )
    # policy = reference: margin 0 -> -log sigmoid(0) = log 2
    assert E.dpo_loss(-5, -5, -5, -5) == pytest.approx(math.log(2))
    assert E.split_budget(100, 0.25, 1, 2) == (25, 37)
    assert [E.step_schedule(i) for i in range(1, 6)] == [40, 48, 57, 69, 82]


def test_unfinished_exercise_says_not_done_yet_and_does_not_raise(capsys, monkeypatch):
    monkeypatch.delenv("NBKIT_SOLUTIONS", raising=False)

    def star_filter(first, hinted, answer):
        """Your code here."""
        ...

    E.check_star_filter(star_filter)
    out = capsys.readouterr().out
    assert "not done yet" in out and "✓" not in out


def test_solutions_fill_an_unfinished_exercise(capsys, monkeypatch):
    monkeypatch.delenv("NBKIT_SOLUTIONS", raising=False)
    E.check_dpo_loss(lambda *a: None, solutions=True)
    out = capsys.readouterr().out
    assert "filled with the reference" in out and "✓ dpo_loss" in out
    monkeypatch.setenv("NBKIT_SOLUTIONS", "1")  # the environment variable wins over the parameter
    E.check_dpo_loss(lambda *a: None, solutions=False)
    assert "✓ dpo_loss" in capsys.readouterr().out


def test_a_finished_exercise_is_checked_even_with_solutions_on(capsys, monkeypatch):
    monkeypatch.setenv("NBKIT_SOLUTIONS", "1")
    E.check_split_budget(WRONG["split_budget"]["costs swapped"])
    assert "✗ split_budget" in capsys.readouterr().out


def test_a_crashing_answer_prints_the_error_not_a_traceback(capsys):
    E.check_zero_gradient(lambda groups: groups.std())
    out = capsys.readouterr().out
    assert "raised AttributeError" in out and "hint:" in out


def test_show_solution_prints_the_reference(capsys):
    E.show_solution("group_advantage")
    assert "def group_advantage" in capsys.readouterr().out
    E.show_solution("nope")
    assert "no exercise named 'nope'" in capsys.readouterr().out
