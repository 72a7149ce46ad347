"""Multiple-choice questions in CommonsenseQA's format, answered with a letter.

Accepts both schemas CommonsenseQA ships in:
- the original jsonl: {"question": {"stem": ..., "choices": [{"label": "A", "text": ...}, ...]}, "answerKey": "A"}
- the hub's flat one ("tau/commonsense_qa"): {"question": ..., "choices": {"label": [...], "text": [...]},
  "answerKey": "A"}

The prompt lists the choices as "(A) ...", as in the STaR paper; the answer is the letter.
"""

from __future__ import annotations

import re

from nbkit.tasks.base import Example, LoadedTask, TaskError

_ANSWER = re.compile(r"(?:Answer:|answer is)\s*\(?([A-Ea-e])\)?")
_LETTER = re.compile(r"\(([A-Ea-e])\)")


class MultipleChoice(LoadedTask):
    name = "multiple_choice"
    instruction = "Answer the question. End with 'Answer: <letter>'.\n"
    default_test_split = "validation"  # CommonsenseQA publishes no answers for its test split

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

    def extract_answer(self, text: str) -> str | None:
        m = _ANSWER.findall(text) or _LETTER.findall(text)
        return m[-1].upper() if m else None

    def normalize(self, answer: str) -> str:
        return answer.strip().strip("()").upper()
