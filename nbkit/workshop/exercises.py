"""Exercises that check themselves: the attendee writes the small function at the heart of a paper, nbkit checks it.

Each exercise is a function to write, a fixed list of seeded inputs, and nbkit's own implementation as the oracle:

    from nbkit.workshop.exercises import check_star_filter, show_solution

    def star_filter(first, hinted, answer):
        ...                                   # your code here

    check_star_filter(star_filter, SOLUTIONS)  # prints a check mark and what it shows, or the first failing input,
                                              # what nbkit expects, what yours gave, and a hint
    show_solution("star_filter")              # when stuck: the reference, printed

A check never raises: an unfinished exercise (its body is still `...`, so it returns None) prints "not done yet" and
the notebook carries on, since every later cell uses nbkit's own version. With SOLUTIONS on (the notebook's
`parameters` cell, or the environment variable NBKIT_SOLUTIONS=1, which wins) an unfinished exercise is filled with
the reference solution and checked, so `make report` and CI show every check passing.

The exercises: 00 `accuracy_by_digits`; 01 `star_filter`, `step_schedule`; 02 `group_advantage`, `zero_gradient`;
03 `split_budget`, `dpo_loss`. `EXERCISES` lists them; tests/test_exercises.py shows that each check accepts the
reference and rejects plausible wrong answers.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

# ---------------------------------------------------------------------------------------- reference solutions
# Written the way an attendee would write them; the checks compare them (and yours) with nbkit's implementations.


def accuracy_by_digits(rows: list[dict]) -> dict[int, float]:
    by: dict[int, list[bool]] = {}
    for row in rows:
        by.setdefault(row["difficulty"], []).append(row["correct"])
    return {d: sum(v) / len(v) for d, v in sorted(by.items())}


def star_filter(first: str, hinted: str, answer: str) -> str:
    from nbkit.tasks import Arithmetic

    task = Arithmetic()
    if task.is_correct(first, answer):
        return "keep"  # the model found it alone
    if task.is_correct(hinted, answer) and "hint" not in hinted.lower():
        return "rationalize"  # found with the answer as a hint; trained on without the hint
    return "drop"


def step_schedule(iteration: int, first: int = 40, growth: float = 0.2) -> int:
    return math.floor(first * (1 + growth) ** (iteration - 1))


def group_advantage(rewards: list[float], eps: float = 1e-4) -> list[float]:
    k = len(rewards)
    mean = sum(rewards) / k
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (k - 1))  # Bessel's correction, as TRL
    return [(r - mean) / (std + eps) for r in rewards]


def zero_gradient(groups: list[list[float]]) -> list[bool]:
    return [max(g) == min(g) for g in groups]


def split_budget(
    budget: float, fraction: float, sft_cost: float = 1.0, pair_cost: float = 1.0
) -> tuple[int, int]:
    return math.floor(budget * fraction / sft_cost), math.floor(budget * (1 - fraction) / pair_cost)


def dpo_loss(
    policy_chosen: float, policy_rejected: float, ref_chosen: float, ref_rejected: float, beta: float = 0.1
) -> float:
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -math.log(1 / (1 + math.exp(-beta * margin)))  # -log sigmoid(beta * margin)


# ------------------------------------------------------------------------------------------- the oracles
# nbkit's own implementations, called with the exercise's arguments.


def _oracle_accuracy(rows):
    from nbkit.tasks.base import accuracy_table

    return accuracy_table(rows)["by_difficulty"]


def _oracle_star_filter(first, hinted, answer):
    from nbkit.experiments.star import filter_rationales
    from nbkit.tasks import Arithmetic

    task = Arithmetic()
    a = int(answer)
    ex = task.make(a - a // 3, a // 3)  # any example whose answer is `answer`
    if filter_rationales(task, [ex], [[first]])[0]:
        return "keep"
    return "rationalize" if filter_rationales(task, [ex], [[hinted]], hinted=True)[0] else "drop"


def _oracle_step_schedule(iteration, first=40, growth=0.2):
    from nbkit.experiments.star import step_schedule as schedule

    return schedule(iteration, first, growth)


def _oracle_advantage(rewards):
    import torch

    from nbkit.experiments.rft import group_advantages

    return group_advantages(torch.tensor([rewards], dtype=torch.float64))[0].tolist()


def _oracle_zero_gradient(groups):
    import torch

    from nbkit.experiments.rft import zero_spread

    return zero_spread(torch.tensor(groups, dtype=torch.float64)).tolist()


def _oracle_split(budget, fraction, sft_cost=1.0, pair_cost=1.0):
    from nbkit.experiments.budget import split_budget as split

    return split(budget, fraction, sft_cost, pair_cost)


def _oracle_dpo(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    """TRL DPOTrainer's default loss (loss_type="sigmoid"), on one pair's summed log-probabilities."""
    import torch
    import torch.nn.functional as F

    logits = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    return -F.logsigmoid(torch.tensor(beta * logits, dtype=torch.float64)).item()


# ---------------------------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    args: tuple
    hint: str  # shown when this case fails: what it tests


@dataclass(frozen=True)
class Exercise:
    name: str
    notebook: str
    cases: tuple[Case, ...]
    oracle: Callable
    solution: Callable
    lesson: str  # the sentence printed with the check mark
    tolerance: float | None = None  # numbers: absolute tolerance; None: exact equality


_PAD = "47+85: 7+5=12 -> 2\n4+8: 4+8+1=13 -> 32\ncarry 1 -> 132\n"
_ROWS = (  # (difficulty, correct)
    [(1, c) for c in (True, True, False, True)]
    + [(2, c) for c in (False, True, False, False, False)]
    + [(3, c) for c in (False, False, True)]
)

EXERCISES: dict[str, Exercise] = {
    e.name: e
    for e in [
        Exercise(
            "accuracy_by_digits",
            "00",
            (
                Case(
                    ([{"difficulty": d, "correct": c} for d, c in _ROWS],),
                    "one accuracy per digit count: the "
                    "share of that digit count's rows whose 'correct' is True",
                ),
                Case(
                    ([{"difficulty": 2, "correct": True}, {"difficulty": 1, "correct": False}],),
                    "sort the keys (1 before 2) and divide by the rows of that digit count, not by all rows",
                ),
            ),
            _oracle_accuracy,
            accuracy_by_digits,
            "accuracy by digit count is the tour's plot: one number per difficulty, not one for the whole test set.",
            tolerance=1e-9,
        ),
        Exercise(
            "star_filter",
            "01",
            (
                Case(
                    (_PAD + "Answer: 132", _PAD + "Answer: 132", "132"), "a right first answer is kept as is"
                ),
                Case(
                    (_PAD + "Answer: 122", _PAD + "Answer: 132", "132"),
                    "wrong alone, right with the hint: that is a rationalization",
                ),
                Case((_PAD + "Answer: 122", "47+85 = 123\nAnswer: 123", "132"), "wrong both times: drop it"),
                Case(
                    (_PAD + "Answer: 132", "The hint says 132.\nAnswer: 132", "132"),
                    "the first attempt decides first: right alone means 'keep', whatever the hinted one says",
                ),
                Case(
                    (_PAD + "Answer: 122", "The hint says 132.\nAnswer: 132", "132"),
                    "a hinted rationale that mentions the hint is dropped: it is trained on WITHOUT the hint, "
                    "so 'the hint says' would teach the model to cite a hint it will never see",
                ),
                Case(
                    ("47+85: 132? no.\nAnswer: 123", _PAD + "Answer: 122", "132"),
                    "only the final 'Answer:' counts, not a number somewhere in the text "
                    "(task.is_correct(text, answer) reads it)",
                ),
            ),
            _oracle_star_filter,
            star_filter,
            "STaR trains only on rationales that reach the right answer: found alone (keep), found with the answer "
            "as a hint (rationalize, stored without the hint), or not at all (drop).",
        ),
        Exercise(
            "step_schedule",
            "01",
            tuple(
                Case((i, 40, 0.2), "iteration 1 trains `first` steps; each later one 20% more, rounded down")
                for i in (1, 2, 3, 4, 5)
            )
            + (
                Case((3, 10, 0.5), "growth is a parameter: 10 steps, then 15, then 22 (22.5 rounded down)"),
                Case((1, 7, 0.5), "iteration 1 is exactly `first`: the exponent is iteration - 1"),
            ),
            _oracle_step_schedule,
            step_schedule,
            "STaR's step count grows 20% per iteration (40, 48, 57, 69, 82): more data is kept each time, so each "
            "fine-tune from the seed model gets a little longer.",
        ),
        Exercise(
            "group_advantage",
            "02",
            (
                Case(
                    ([1.0, 0.0, 0.0, 0.0],),
                    "subtract the group's mean, divide by its std (k - 1 in the "
                    "denominator, as torch.std and TRL) plus 1e-4",
                ),
                Case(([1.0, 1.0, 0.0, 0.0, 1.0, 0.0],), "the std uses Bessel's correction: divide by k - 1"),
                Case(([0.2, 0.9, 0.5],), "rewards need not be 0 or 1"),
                Case(
                    ([0.0, 0.0, 0.0, 0.0],), "all equal: every advantage is 0 (the + 1e-4 keeps 0 / 0 away)"
                ),
                Case(
                    ([1.0, 1.0, 1.0, 1.0],),
                    "all right is no better than all wrong: advantages are relative "
                    "to the group, so they are all 0 again",
                ),
            ),
            _oracle_advantage,
            group_advantage,
            "GRPO's advantage is relative to the group: better than your siblings is positive, and a group whose "
            "rewards are all equal gets exactly zero, however good or bad.",
            tolerance=1e-3,
        ),
        Exercise(
            "zero_gradient",
            "02",
            (
                Case(([[1, 0, 0, 0], [0, 0, 0, 0]],), "all wrong: zero std, zero advantages, zero gradient"),
                Case(([[1, 1, 1, 1], [0, 1, 1, 1]],), "all right gives zero gradient too: nothing to prefer"),
                Case(
                    ([[0.5, 0.5, 0.5], [0.5, 0.4, 0.5]],),
                    "any reward repeated k times has zero spread, "
                    "not only 0 and 1; and any difference at all gives a gradient",
                ),
            ),
            _oracle_zero_gradient,
            zero_gradient,
            "a group gives zero gradient exactly when its rewards are all equal: all wrong OR all right, which is "
            "what TRL's frac_reward_zero_std counts.",
        ),
        Exercise(
            "split_budget",
            "03",
            (
                Case((100, 0.25, 1, 1), "a share f of the budget buys SFT examples, the rest (1 - f) pairs"),
                Case(
                    (100, 0.25, 1, 2),
                    "a pair costing 2 units: 75 units buy 37 pairs (round down: the half unit "
                    "left buys nothing)",
                ),
                Case((64, 0.5, 4, 1), "divide each share by its own cost: 32 units / 4 per example = 8"),
                Case((10, 0.35, 1, 1), "round DOWN (3.5 examples buy 3), never up: you cannot overspend"),
                Case((32, 0.0, 1, 1), "f = 0: all pairs, no SFT"),
            ),
            _oracle_split,
            split_budget,
            "the budget split is a cost model: at a fixed B, every SFT example you buy is pairs you do not.",
        ),
        Exercise(
            "dpo_loss",
            "03",
            (
                Case(
                    (-10.0, -12.0, -11.0, -11.0),
                    "loss = -log sigmoid(beta * ((pc - rc) - (pr - rr))): "
                    "chosen up and rejected down against the reference makes it smaller than log 2",
                ),
                Case((-5.0, -5.0, -5.0, -5.0), "policy = reference: the loss is log 2 = 0.693"),
                Case(
                    (-20.0, -8.0, -25.0, -9.0, 0.1),
                    "compare each answer with the REFERENCE's log-prob: here "
                    "the policy prefers the rejected answer outright, but less than the reference did, so DPO "
                    "counts it as progress",
                ),
                Case((-3.0, -9.0, -4.0, -4.0, 0.5), "beta scales the margin inside the sigmoid"),
            ),
            _oracle_dpo,
            dpo_loss,
            "DPO's loss only sees how much more the policy prefers chosen over rejected than the reference did; "
            "beta sets how sharply that margin counts.",
            tolerance=1e-6,
        ),
    ]
}


# ---------------------------------------------------------------------------------------------- checking


def solutions_on(parameter: bool = False) -> bool:
    """NBKIT_SOLUTIONS (1/true/yes/on or 0/false/no/off) when set, else the notebook's SOLUTIONS parameter."""
    env = os.environ.get("NBKIT_SOLUTIONS", "").strip().lower()
    if env in {"1", "true", "yes", "on"}:
        return True
    if env in {"0", "false", "no", "off"}:
        return False
    return bool(parameter)


def _same(expected, got, tolerance: float | None) -> bool:
    if hasattr(got, "tolist"):  # a numpy array or a tensor
        got = got.tolist()
    if tolerance is None:
        if isinstance(expected, tuple) and isinstance(got, list):
            got = tuple(got)
        return bool(expected == got)
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and set(got) == set(expected)
            and all(_same(expected[k], got[k], tolerance) for k in expected)
        )
    if isinstance(expected, list | tuple):
        try:
            got = [float(x) for x in got]
        except (TypeError, ValueError):
            return False
        return len(got) == len(expected) and all(_same(e, g, tolerance) for e, g in zip(expected, got))
    try:
        return math.isclose(float(got), expected, rel_tol=0.0, abs_tol=tolerance)
    except (TypeError, ValueError):
        return False


def _call(ex: Exercise, fn: Callable, case: Case) -> str:
    args = ", ".join(_short(a) for a in case.args)
    return f"{ex.name}({args})"


def _short(x, width: int = 70) -> str:
    text = repr(x)
    return text if len(text) <= width else text[: width - 5] + "...]"


def run_check(name: str, fn: Callable) -> tuple[bool, str]:
    """(passed, message) for `fn` against exercise `name`; never raises for anything `fn` does."""
    ex = EXERCISES[name]
    for case in ex.cases:
        expected = ex.oracle(*case.args)
        where = _call(ex, fn, case)
        try:
            got = fn(*case.args)
        except Exception as e:  # noqa: BLE001 - the attendee's code: report it, do not stop the notebook
            return False, f"✗ {where}\n  raised {type(e).__name__}: {e}\n  hint: {case.hint}"
        if not _same(expected, got, ex.tolerance):
            return False, (
                f"✗ {where}\n  expected: {expected!r}\n  yours:    {got!r}\n  hint: {case.hint}\n"
                f'  (stuck? show_solution("{name}"))'
            )
    return True, f"✓ {name}: right on all {len(ex.cases)} inputs. {ex.lesson[0].upper()}{ex.lesson[1:]}"


def _unfinished(fn: Callable, ex: Exercise) -> bool:
    """Still the template: the body is `...`, so it returns None (or it raises NotImplementedError)."""
    try:
        return fn(*ex.cases[0].args) is None
    except NotImplementedError:
        return True
    except Exception:  # noqa: BLE001 - a finished function with a bug: run_check reports it
        return False


def check(name: str, fn: Callable, solutions: bool = False) -> None:
    """Check `fn` for exercise `name` and print the verdict (run_check returns it instead). Never raises."""
    if name not in EXERCISES:
        print(f"no exercise named {name!r}; there are: {', '.join(EXERCISES)}")
        return
    ex = EXERCISES[name]
    if _unfinished(fn, ex):
        if not solutions_on(solutions):
            print(
                f"… {name}: not done yet (it returns None). Write its body and run the cell again; the notebook "
                f'carries on with nbkit\'s own version meanwhile. Stuck? show_solution("{name}")'
            )
            return
        print(f"SOLUTIONS on: {name} filled with the reference solution.")
        fn = ex.solution
    print(run_check(name, fn)[1])


def show_solution(name: str) -> None:
    """Print the reference solution of exercise `name`."""
    if name not in EXERCISES:
        print(f"no exercise named {name!r}; there are: {', '.join(EXERCISES)}")
        return
    print(inspect.getsource(EXERCISES[name].solution))


def check_accuracy_by_digits(fn: Callable, solutions: bool = False) -> None:
    check("accuracy_by_digits", fn, solutions)


def check_star_filter(fn: Callable, solutions: bool = False) -> None:
    check("star_filter", fn, solutions)


def check_step_schedule(fn: Callable, solutions: bool = False) -> None:
    check("step_schedule", fn, solutions)


def check_group_advantage(fn: Callable, solutions: bool = False) -> None:
    check("group_advantage", fn, solutions)


def check_zero_gradient(fn: Callable, solutions: bool = False) -> None:
    check("zero_gradient", fn, solutions)


def check_split_budget(fn: Callable, solutions: bool = False) -> None:
    check("split_budget", fn, solutions)


def check_dpo_loss(fn: Callable, solutions: bool = False) -> None:
    check("dpo_loss", fn, solutions)
