"""GSM8K-format word problems: {"question": ..., "answer": "<worked solution>\\n#### 72"}.

Loads a local jsonl file or any `datasets` name with that schema (e.g. "openai/gsm8k", config "main"). The worked
solution becomes the example's gold rationale; its line count is the difficulty (GSM8K's usual proxy: steps).
Calculator annotations such as <<48/2=24>> are removed from rationales.
"""

from __future__ import annotations

import re

from nbkit.tasks.base import Example, LoadedTask, TaskError

_CALC = re.compile(r"<<[^>]*>>")
_ANSWER = re.compile(r"(?:####|Answer:)\s*\$?\s*(-?[\d,]*\.?\d+)")
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


class GSM8K(LoadedTask):
    name = "gsm8k"
    instruction = "Solve the problem step by step, then give the final answer as 'Answer: <number>'.\n"

    @staticmethod
    def parse(row: dict) -> Example:
        if "question" not in row or "answer" not in row:
            raise TaskError(f"GSM8K rows need 'question' and 'answer' fields; got {sorted(row)}")
        solution, sep, final = str(row["answer"]).rpartition("####")
        if not sep:
            raise TaskError(f"GSM8K answer without '####': {str(row['answer'])[:80]!r}")
        rationale = _CALC.sub("", solution).strip()
        steps = max(1, len([line for line in rationale.splitlines() if line.strip()]))
        return Example(
            question=str(row["question"]).strip(),
            answer=final.strip().replace(",", ""),
            difficulty=steps,
            rationale=rationale,
        )

    def extract_answer(self, text: str) -> str | None:
        m = _ANSWER.findall(text)
        if m:
            return m[-1]
        nums = _NUMBER.findall(text)
        return nums[-1] if nums else None

    def normalize(self, answer: str) -> str:
        a = answer.replace(",", "").replace("$", "").strip().rstrip(".")
        try:
            f = float(a)
            return str(int(f)) if f == int(f) else str(f)
        except ValueError:
            return a
