"""The scripted judge: a stand-in voter for tests and for the notebook when the arena has no votes. It is a rule
written here, not human preference, and the notebook calls it by that name.

Its whole rule, for two answers to the same question:
1. if the question asks for a sum ("What is 47 + 85?") and exactly one answer ends on that sum (the task's own
   answer check, `Arithmetic.is_correct`: the last number of the answer), that answer wins;
2. otherwise (both right, both wrong, or no sum asked) the shorter answer wins, in characters;
3. the same length: a tie.

    scripted_judge("What is 2 + 2?", "It is 4.", "Let me think: 2 + 2 = 5")   # -> "left"
    scripted_judge("What is 2 + 2?", "2 + 2 = 4, of course", "4")             # -> "right" (both right: shorter)

A model trained on its votes learns to be right more often *and* to be brief: whatever a judge rewards, DPO
teaches, which is why the audit and the notebook look at what got preferred before training on it.
"""

from __future__ import annotations

import re

from nbkit.tasks import Arithmetic

SUM = re.compile(r"(-?\d+)\s*\+\s*(-?\d+)")
JUDGE = (
    "scripted-judge"  # the voter name its votes carry (session and, where the store records one, attendee)
)
_CHECK = Arithmetic()


def question_sum(prompt: str) -> int | None:
    """The sum an arithmetic question asks for, or None. Example: "What is 47 + 85?" -> 132; "Hello" -> None."""
    found = SUM.findall(prompt or "")
    return int(found[-1][0]) + int(found[-1][1]) if found else None


def is_right(prompt: str, text: str) -> bool | None:
    """Whether `text` ends on the sum `prompt` asks for; None when it asks for none.

    Example: ("What is 2 + 2?", "2 + 2 = 4") -> True; ("What is 2 + 2?", "4, or 5") -> False; ("Hi", "4") -> None
    """
    gold = question_sum(prompt)
    return None if gold is None else _CHECK.is_correct(text, str(gold))


def scripted_judge(prompt: str, a: str, b: str) -> str:
    """The vote ("left" = a, "right" = b, or "tie") of the rule above on answers a and b to `prompt`."""
    right_a, right_b = is_right(prompt, a), is_right(prompt, b)
    if right_a != right_b:
        return "left" if right_a else "right"
    la, lb = len(a.strip()), len(b.strip())
    return "tie" if la == lb else "left" if la < lb else "right"
