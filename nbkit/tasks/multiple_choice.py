"""Multiple-choice questions in CommonsenseQA's format, answered with a letter.

Accepts both schemas CommonsenseQA ships in:
- the original jsonl: {"question": {"stem": ..., "choices": [{"label": "A", "text": ...}, ...]}, "answerKey": "A"}
- the hub's flat one ("tau/commonsense_qa"): {"question": ..., "choices": {"label": [...], "text": [...]},
  "answerKey": "A"}

The prompt lists the choices as "(A) ...", as in the STaR paper; the answer is the letter.
"""

from __future__ import annotations

import re
from pathlib import Path

from nbkit.tasks.base import Example, Task, TaskError
from nbkit.tasks.gsm8k import load_records

_ANSWER = re.compile(r"(?:Answer:|answer is)\s*\(?([A-Ea-e])\)?")
_LETTER = re.compile(r"\(([A-Ea-e])\)")


class MultipleChoice(Task):
    name = "multiple_choice"
    instruction = "Answer the question. End with 'Answer: <letter>'.\n"

    def __init__(
        self,
        source: str | Path,
        split: str = "train",
        config: str | None = None,
        test_source: str | Path | None = None,
        test_split: str = "validation",
    ):
        self.examples = [self.parse(r) for r in load_records(source, split, config)]
        self.test_examples = (
            [self.parse(r) for r in load_records(test_source, test_split, config)] if test_source else None
        )

    @staticmethod
    def parse(row: dict) -> Example:
        q = row.get("question")
        if isinstance(q, dict):  # original CommonsenseQA jsonl
            stem, choices = q.get("stem", ""), [(c["label"], c["text"]) for c in q.get("choices", [])]
        else:
            ch = row.get("choices") or {}
            stem, choices = q, list(zip(ch.get("label", []), ch.get("text", [])))
        key = str(row.get("answerKey", "")).strip().upper()
        if not stem or not choices or key not in {label for label, _ in choices}:
            raise TaskError(f"not a CommonsenseQA-format row (stem, choices, answerKey): {str(row)[:120]}")
        return Example(question=stem, answer=key, difficulty=1, meta={"choices": choices})

    def question_text(self, ex: Example) -> str:
        options = "\n".join(f"({label}) {text}" for label, text in ex.meta["choices"])
        return f"Q: {ex.question}\nAnswer Choices:\n{options}"

    def train(self, n: int | None = None, salt: str = "") -> list[Example]:
        pool = self.examples if self.test_examples else self.examples[: len(self.examples) * 4 // 5]
        return pool[:n]

    def test(self, n: int | None = None) -> list[Example]:
        pool = self.test_examples or self.examples[len(self.examples) * 4 // 5 :]
        return pool[:n]

    def extract_answer(self, text: str) -> str | None:
        m = _ANSWER.findall(text) or _LETTER.findall(text)
        return m[-1].upper() if m else None

    def normalize(self, answer: str) -> str:
        return answer.strip().strip("()").upper()
