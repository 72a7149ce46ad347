"""n-digit addition, the STaR paper's arithmetic task, with a column-by-column scratchpad.

The paper's scratchpad (Nye et al. 2021) lists digit pairs and carries. Ours adds one column per line, right to left.
Each line starts with what is left of the two numbers, then adds their last digits and the carry, and keeps a running
result, so that every step reads only what sits right next to it and the answer is a copy:

    What is 847 + 285?
    847+285: 7+5=12 -> 2
    84+28: 4+8+1=13 -> 32
    8+2: 8+2+1=11 -> 132
    carry 1 -> 1132
    Answer: 1132

Why the numbers are written out again on every line (measured with SmolLM2-135M in the STaR cpu profile,
`benchmarks/star_scratchpad_formats.py`): with digits only ("7+5=12 -> 2 / 4+8+1=13 -> 32 / ...", 42 tokens for a
3-digit sum instead of 76), the primer, which sees 1-2 digit sums plainly, began 13 of its 24 wrong 3-digit answers
by adding digits from the wrong column, for example the first digits as the second column (877 + 853 -> "8+8+1=17"
on line two); with the numbers written out, 0 of 24. "The second digit from the right" is a position lookup that a
small model does not carry over to longer numbers; here line two's digits are the last ones before "+" and ":".
The errors left are wrong sums. Over the cpu STaR loop (faithful filter) this format went 36% -> 36% -> 34% -> 43%
held-out; digits only went 41% -> 43% -> 40% -> 23%.

Train and test are disjoint by construction: a problem's split is a hash of the unordered pair {a, b}, so no seed or
size can leak test problems into training, not even as the same sum written the other way round.
"""

from __future__ import annotations

import hashlib
import random
import re

from nbkit.tasks.base import Example, Task, TaskError

_ANSWER = re.compile(r"Answer:\s*(-?[\d,]+)")
_NUMBER = re.compile(r"-?\d[\d,]*")


def scratchpad(a: int, b: int) -> str:
    """Example: scratchpad(847, 285) -> the four lines in the module docstring, without the Answer line."""
    sa, sb = str(a), str(b)
    lines, carry, so_far = [], 0, ""
    while sa or sb:
        x, y = int(sa[-1]) if sa else 0, int(sb[-1]) if sb else 0
        total = x + y + carry
        expr = f"{sa or 0}+{sb or 0}: {x}+{y}" + (f"+{carry}" if carry else "")
        carry, digit = divmod(total, 10)
        so_far = f"{digit}{so_far}"
        lines.append(f"{expr}={total} -> {so_far}")
        sa, sb = sa[:-1], sb[:-1]
    if carry:
        lines.append(f"carry {carry} -> {carry}{so_far}")
    return "\n".join(lines)


def carry_scratchpad(a: int, b: int) -> str:
    """`scratchpad`'s lines with the carry written out: every line adds the carry that comes in (also 0) and ends
    with the carry that goes out, so the next line copies it from right above instead of working it out from a
    total (the primer's commonest slip with `scratchpad` is a dropped carry).

    Example: carry_scratchpad(847, 285) ->
        "847+285: 7+5+0=12, carry 1 -> 2\n84+28: 4+8+1=13, carry 1 -> 32\n8+2: 8+2+1=11, carry 1 -> 132\n"
        "carry 1 -> 1132"
    """
    sa, sb = str(a), str(b)
    lines, carry, so_far = [], 0, ""
    while sa or sb:
        x, y = int(sa[-1]) if sa else 0, int(sb[-1]) if sb else 0
        total = x + y + carry
        expr = f"{sa or 0}+{sb or 0}: {x}+{y}+{carry}={total}"
        carry, digit = divmod(total, 10)
        so_far = f"{digit}{so_far}"
        lines.append(f"{expr}, carry {carry} -> {so_far}")
        sa, sb = sa[:-1], sb[:-1]
    if carry:
        lines.append(f"carry {carry} -> {carry}{so_far}")
    return "\n".join(lines)


def column_scratchpad(a: int, b: int) -> str:
    """One clause per column, right to left, with the carry that comes in: shorter than `scratchpad` (58 tokens
    for a 3-digit sum instead of 76) and the same length rule for every column.

    Example: column_scratchpad(47, 85) -> "7+5+0=12, write 2 carry 1. 4+8+1=13, write 3 carry 1. write 1."
    """
    sa, sb = str(a)[::-1], str(b)[::-1]
    clauses, carry = [], 0
    for i in range(max(len(sa), len(sb))):
        x, y = int(sa[i]) if i < len(sa) else 0, int(sb[i]) if i < len(sb) else 0
        total = x + y + carry
        carry, digit = divmod(total, 10)
        clauses.append(f"{x}+{y}+{total - x - y}={total}, write {digit} carry {carry}.")
    if carry:
        clauses.append(f"write {carry}.")
    return " ".join(clauses)


SCRATCHPADS = {"numbers": scratchpad, "carries": carry_scratchpad, "columns": column_scratchpad}


def in_test_split(a: int, b: int, test_share: int = 5) -> bool:
    """One problem in `test_share` goes to test, decided by a hash of the unordered pair (stable across runs), so
    `a + b` and `b + a` always sit on the same side.

    Example: in_test_split(47, 85) == in_test_split(85, 47).
    """
    lo, hi = sorted((a, b))
    return hashlib.sha256(f"{lo}+{hi}".encode()).digest()[0] % test_share == 0


class Arithmetic(Task):
    """Addition of two n-digit numbers, n in `digits`. Difficulty is n."""

    name = "arithmetic"

    def __init__(
        self,
        digits: tuple[int, ...] | list[int] = (1, 2, 3),
        seed: int = 0,
        system: str | None = None,
        scratchpad: str = "numbers",
        prompt: str = "chat",
    ):
        digits = tuple(int(d) for d in digits)
        if not digits or any(d < 1 or d > 6 for d in digits):
            raise TaskError(f"arithmetic digits must be between 1 and 6, got {digits}")
        if scratchpad not in SCRATCHPADS:
            raise TaskError(f"arithmetic scratchpad {scratchpad!r}: choose one of {', '.join(SCRATCHPADS)}")
        if prompt not in ("chat", "plain"):
            raise TaskError(f"arithmetic prompt {prompt!r}: choose chat or plain")
        self.digits, self.seed, self.system, self.scratchpad = digits, seed, system, scratchpad
        self.prompt_style = prompt

    def _pad(self, a: int, b: int) -> str:
        # looked up at call time, so a benchmark can swap a format in (benchmarks/star_scratchpad_formats.py)
        return scratchpad(a, b) if self.scratchpad == "numbers" else SCRATCHPADS[self.scratchpad](a, b)

    def question_text(self, ex: Example) -> str:
        """Chat: "What is 47 + 85?". Plain: "47 + 85" (the prompt reads "Question: 47 + 85")."""
        return ex.question if self.prompt_style == "plain" else f"What is {ex.meta['a']} + {ex.meta['b']}?"

    def make(self, a: int, b: int) -> Example:
        return Example(
            question=f"{a} + {b}",
            answer=str(a + b),
            difficulty=max(len(str(a)), len(str(b))),
            rationale=self._pad(a, b),
            meta={"a": a, "b": b},
        )

    def _draw(self, n: int, test: bool, salt: str) -> list[Example]:
        """n distinct problems, spread evenly over `digits`, from one side of the split."""
        if n < 0:
            raise TaskError(f"number of problems must be >= 0, got {n}")
        rng = random.Random(f"{self.seed}-{salt}")
        out: list[Example] = []
        for j, d in enumerate(self.digits):
            want = n // len(self.digits) + (1 if j < n % len(self.digits) else 0)
            lo = 0 if d == 1 else 10 ** (d - 1)
            if (10**d - lo) ** 2 <= 20_000:  # small pool (1-2 digits): enumerate it exactly
                pool = [
                    (a, b) for a in range(lo, 10**d) for b in range(lo, 10**d) if in_test_split(a, b) == test
                ]
                if want > len(pool):
                    side = "test" if test else "train"
                    raise TaskError(f"asked for {want} {d}-digit {side} problems; only {len(pool)} exist")
                out += [self.make(a, b) for a, b in rng.sample(pool, want)]
                continue
            seen: set[tuple[int, int]] = set()
            while len(seen) < want:
                a, b = rng.randrange(lo, 10**d), rng.randrange(lo, 10**d)
                if (a, b) not in seen and in_test_split(a, b) == test:
                    seen.add((a, b))
                    out.append(self.make(a, b))
        return out

    def train(self, n: int, salt: str = "train") -> list[Example]:
        """n training problems. A different `salt` draws a different (still train-side) sample."""
        return self._draw(n, test=False, salt=salt)

    def test(self, n: int) -> list[Example]:
        return self._draw(n, test=True, salt="test")

    def faithful(self, ex: Example, rationale: str) -> bool:
        """Example: 47 + 85 with "47+85: 7+5=12 -> 2\\n4+8: 4+8+1=13 -> 32\\ncarry 1 -> 132" -> True; with
        "47+85: 7+5=12 -> 2\\n4+8: 4+8=12 -> 32\\ncarry 1 -> 132" (right answer, a wrong step) -> False."""
        return rationale.strip() == self._pad(ex.meta["a"], ex.meta["b"])

    def extract_answer(self, text: str) -> str | None:
        """Example: "...carry 1 -> 132\\nAnswer: 132" -> "132"; "The sum is 12." -> "12" (last number)."""
        m = _ANSWER.findall(text)
        if m:
            return m[-1]
        nums = _NUMBER.findall(text)
        return nums[-1] if nums else None

    def normalize(self, answer: str) -> str:
        return answer.replace(",", "").strip().lstrip("+")
