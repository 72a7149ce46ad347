"""GSM8K-format word problems: {"question": ..., "answer": "<worked solution>\\n#### 72"}.

Loads a local jsonl file or any `datasets` name with that schema (e.g. "openai/gsm8k", config "main"). The worked
solution becomes the example's gold rationale; its line count is the difficulty (GSM8K's usual proxy: steps).
Calculator annotations such as <<48/2=24>> are removed from rationales.
"""

from __future__ import annotations

import re
from pathlib import Path

from nbkit.tasks.base import Example, Task, TaskError

_CALC = re.compile(r"<<[^>]*>>")
_ANSWER = re.compile(r"(?:####|Answer:)\s*\$?\s*(-?[\d,]*\.?\d+)")
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def load_records(source: str | Path, split: str = "train", config: str | None = None) -> list[dict]:
    """Rows from a local .json/.jsonl file, or from the hub through `datasets.load_dataset(source, config)`."""
    from datasets import load_dataset

    path = Path(str(source)).expanduser()
    try:
        if path.suffix in {".json", ".jsonl"}:
            if not path.exists():
                raise TaskError(f"no such file: {path}")
            ds = load_dataset("json", data_files=str(path), split="train")
        else:
            ds = load_dataset(str(source), config, split=split)
    except TaskError:
        raise
    except Exception as e:  # noqa: BLE001 - datasets raises many types; all mean "cannot load"
        raise TaskError(f"could not load {source!r} (split {split!r}): {type(e).__name__}: {e}") from e
    if len(ds) == 0:
        raise TaskError(f"{source} has no rows")
    return list(ds)


class GSM8K(Task):
    name = "gsm8k"
    instruction = "Solve the problem step by step, then give the final answer as 'Answer: <number>'.\n"

    def __init__(
        self,
        source: str | Path,
        split: str = "train",
        config: str | None = None,
        test_source: str | Path | None = None,
        test_split: str = "test",
    ):
        self.examples = [self.parse(r) for r in load_records(source, split, config)]
        self.test_examples = (
            [self.parse(r) for r in load_records(test_source, test_split, config)] if test_source else None
        )

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

    def train(self, n: int | None = None, salt: str = "") -> list[Example]:
        pool = self.examples if self.test_examples else self.examples[: len(self.examples) * 4 // 5]
        return pool[:n]

    def test(self, n: int | None = None) -> list[Example]:
        pool = self.test_examples or self.examples[len(self.examples) * 4 // 5 :]
        return pool[:n]

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
