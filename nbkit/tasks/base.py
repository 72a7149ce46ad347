"""What every task shares: examples, prompts in plain and chat form, the answer check, TRL's reward signature, and
an evaluation that reports accuracy overall and per difficulty.

A task subclass supplies `question_text`, `extract_answer` and (optionally) `normalize`; everything else here is
built on those three, so the reward can never drift from the evaluation. A task read from a dataset (GSM8K,
multiple choice) derives from `LoadedTask`, which loads the rows and splits them, and supplies `parse(row)`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from nbkit.errors import NbkitError


class TaskError(NbkitError, ValueError):
    """A task cannot be built from what it was given (empty data, bad file, bad arguments)."""


@dataclass(frozen=True)
class Example:
    question: str
    answer: str  # the gold final answer, normalized
    difficulty: int = 1  # arithmetic: digit count; GSM8K: solution steps; multiple choice: 1
    rationale: str | None = None  # a gold rationale where the dataset has one
    meta: dict = field(default_factory=dict, compare=False, hash=False)


def completion_text(completion) -> str:
    """TRL hands rewards either plain strings or conversational completions ([{"role": ..., "content": ...}])."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion)


def split_rationale(text: str, answer_prefix: str = "Answer:") -> str:
    """The rationale part of a completion: everything before its last answer line.

    Example: "2+3=5 -> 5\\nAnswer: 5" -> "2+3=5 -> 5"
    """
    cut = text.rfind(answer_prefix)
    return (text[:cut] if cut >= 0 else text).rstrip()


class Task:
    name = "task"
    answer_prefix = "Answer:"
    instruction = ""  # prepended to every question, e.g. how to format the answer
    # The system message of every chat. None leaves it to the chat template, which may insert a default (SmolLM2:
    # "You are a helpful AI assistant named SmolLM, trained by Hugging Face", 16 tokens); "" sends an empty one.
    system: str | None = None
    # "chat": prompts are chat messages and go through the tokenizer's chat template (instruct models).
    # "plain": a bare "Question: ...\n" string, no template, no system turn: 12 tokens for an arithmetic prompt
    # instead of 26, and a hint a small model can copy from (STaR's rationalization, see `plain_prompt`).
    prompt_style = "chat"

    # ----------------------------------------------------------------------------------------- to override
    def question_text(self, ex: Example) -> str:
        return ex.question

    def extract_answer(self, text: str) -> str | None:
        raise NotImplementedError

    def normalize(self, answer: str) -> str:
        return answer.strip()

    def rationale(self, ex: Example) -> str | None:
        """A correct worked rationale for `ex`, if the task can write or look one up (seed data)."""
        return ex.rationale

    def faithful(self, ex: Example, rationale: str) -> bool | None:
        """Is every step of `rationale` right, not just its final answer? None: this task cannot tell.

        STaR keeps a rationale when it *ends* at the right answer; this checks the way there, where the task
        has a single correct procedure (arithmetic's scratchpad). Free-text rationales (GSM8K) return None.
        """
        return None

    # --------------------------------------------------------------------------------------------- prompts
    def mentions_hint(self, text: str) -> bool:
        """Does a completion talk about the hint it was given, in the words its prompt used (`prompt`: "(Hint: the
        answer is N.)", `plain_prompt`: "(the answer is N)")? Such a rationale would be trained on without the
        hint, where it makes no sense. A free-text rationale may say "so the answer is 12" on its own, so the
        chat style looks for "hint" only.

        Example (plain): "7+5+0=12, write 2 carry 1. (the answer is 12)" -> True; "7+5+0=12, write 2." -> False.
        """
        low = text.lower()
        return "hint" in low or (not self.uses_chat and "(the answer is" in low)

    def prompt(self, ex: Example, hint: str | None = None) -> str:
        """The user turn. `hint` is STaR's rationalization hint: the correct answer, given up front."""
        text = f"{self.instruction}{self.question_text(ex)}"
        if hint is not None:
            text += f"\n(Hint: the answer is {hint}.)"
        return text

    @property
    def uses_chat(self) -> bool:
        """Whether prompts are chat messages (sampling applies the chat template) or plain strings."""
        return self.prompt_style == "chat"

    def plain_prompt(self, ex: Example, hint: str | None = None) -> str:
        """Example: "Question: 47 + 85\n"; with hint "132": "Question: 47 + 85 (the answer is 132)\n".

        The hint sits inside the question line, right before the model starts writing: a 135M model copies it
        into its rationale far more often than a separate hint sentence or a chat turn.
        """
        hint_text = f" (the answer is {hint})" if hint is not None else ""
        return f"Question: {self.instruction}{self.question_text(ex)}{hint_text}\n"

    def chat(self, ex: Example, hint: str | None = None, system: str | None = None) -> list[dict] | str:
        """The model's input for `ex`: chat messages, or the plain prompt string when prompt_style is "plain"."""
        if not self.uses_chat:
            return self.plain_prompt(ex, hint)
        return self._system_turn(system) + [{"role": "user", "content": self.prompt(ex, hint)}]

    def _system_turn(self, system: str | None = None) -> list[dict]:
        """[] or the one system message: `system`, else the task's own (`self.system`)."""
        system = self.system if system is None else system
        return [{"role": "system", "content": system}] if system is not None else []

    def target(self, ex: Example, rationale: str | None = None) -> str:
        """The assistant turn a model should produce: a rationale (if any) and the answer line."""
        body = rationale if rationale is not None else self.rationale(ex)
        answer = f"{self.answer_prefix} {ex.answer}"
        return f"{body}\n{answer}" if body else answer

    def sft_record(self, ex: Example, rationale: str | None = None) -> dict:
        """A row in TRL's prompt-completion format (loss on the completion only): conversational, or plain
        strings when prompt_style is "plain"."""
        target = self.target(ex, rationale)
        return {
            "prompt": self.chat(ex),
            "completion": [{"role": "assistant", "content": target}] if self.uses_chat else target,
            "answer": ex.answer,
            "difficulty": ex.difficulty,
        }

    def rl_record(self, ex: Example) -> dict:
        """A row for TRL's GRPOTrainer: the prompt plus the columns the reward reads."""
        return {"prompt": self.chat(ex), "answer": ex.answer, "difficulty": ex.difficulty}

    def fewshot(self, shots: list[Example], ex: Example, hint: str | None = None) -> list[dict]:
        """A chat with worked examples as earlier turns, then the question (the paper's few-shot seed). Plain
        prompts: the worked examples as text, one blank line apart."""
        if not self.uses_chat:
            return "".join(f"{self.plain_prompt(s)}{self.target(s)}\n\n" for s in shots) + self.plain_prompt(
                ex, hint
            )
        msgs = self._system_turn()
        for s in shots:
            msgs += [
                {"role": "user", "content": self.prompt(s)},
                {"role": "assistant", "content": self.target(s)},
            ]
        return msgs + [{"role": "user", "content": self.prompt(ex, hint)}]

    # ------------------------------------------------------------------------------------------ checking
    def is_correct(self, completion, ex_or_answer: Example | str) -> bool:
        gold = ex_or_answer.answer if isinstance(ex_or_answer, Example) else ex_or_answer
        got = self.extract_answer(completion_text(completion))
        return got is not None and self.normalize(got) == self.normalize(str(gold))

    def reward(self, completions, answer, **kwargs) -> list[float]:
        """TRL reward signature: 1.0 for a correct final answer, else 0.0. `answer` is the dataset column."""
        if len(answer) != len(completions):
            raise TaskError(
                f"{self.name}.reward got {len(completions)} completions but {len(answer)} answers"
            )
        return [float(self.is_correct(c, a)) for c, a in zip(completions, answer)]

    # ------------------------------------------------------------------------------------------ evaluate
    def evaluate(
        self,
        model,
        tokenizer,
        examples: list[Example],
        max_new_tokens: int = 96,
        batch_size: int = 64,
        messages=None,
        progress: bool = True,
        sampler=None,
    ) -> dict:
        """Greedy accuracy on `examples`, overall and per difficulty.

        Returns {"accuracy": float, "by_difficulty": {d: acc}, "n": int, "rows": [{question, answer, completion,
        correct, difficulty}]}. `messages` optionally maps an Example to its chat (e.g. a few-shot prompt).
        `sampler`: a function with nbkit.sampling.sample's signature (default: that one; the apps pass their
        serving engine's `Engine.sample`, so an evaluation shares the batch with the room's answers).
        """
        from nbkit.sampling import sample

        sample = sampler or sample
        if not examples:
            raise TaskError(f"{self.name}: nothing to evaluate (0 examples)")
        chats = [messages(ex) if messages else self.chat(ex) for ex in examples]
        out = sample(
            model,
            tokenizer,
            chats,
            k=1,
            temperature=0.0,
            chat=self.uses_chat,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=progress,
            desc=f"eval {self.name}",
        )
        rows = [
            {
                "question": ex.question,
                "answer": ex.answer,
                "completion": s.text,
                "difficulty": ex.difficulty,
                "correct": self.is_correct(s.text, ex),
            }
            for ex, s in zip(examples, out.items)
        ]
        for row, ex in zip(rows, examples):  # is every step right, where the task can tell (arithmetic)
            steps = self.faithful(ex, split_rationale(row["completion"], self.answer_prefix))
            if steps is not None:
                row["faithful"] = steps
        return {**accuracy_table(rows), "rows": rows}


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


class LoadedTask(Task):
    """A task read from a dataset (GSM8K, multiple choice): `parse(row) -> Example` is what a subclass adds.

    source: a local .json/.jsonl file or a hub name (read with `load_records`). Without `test_source`, the first 80%
    of `source` is the train split and the rest the test split; with it, `test_split` of `test_source` is the test
    split (default: the class's `default_test_split`).
    """

    default_test_split = "test"

    def __init__(
        self,
        source: str | Path,
        split: str = "train",
        config: str | None = None,
        test_source: str | Path | None = None,
        test_split: str | None = None,
    ):
        self.examples = [self.parse(r) for r in load_records(source, split, config)]
        test_split = test_split or self.default_test_split
        self.test_examples = (
            [self.parse(r) for r in load_records(test_source, test_split, config)] if test_source else None
        )

    @staticmethod
    def parse(row: dict) -> Example:
        raise NotImplementedError

    def train(self, n: int | None = None, salt: str = "") -> list[Example]:
        pool = self.examples if self.test_examples else self.examples[: len(self.examples) * 4 // 5]
        return pool[:n]

    def test(self, n: int | None = None) -> list[Example]:
        pool = self.test_examples or self.examples[len(self.examples) * 4 // 5 :]
        return pool[:n]


def count_by_difficulty(examples: list) -> dict:
    """Example: examples of difficulty [1, 3, 3] -> {1: 1, 3: 2}"""
    out: dict = {}
    for ex in examples:
        out[ex.difficulty] = out.get(ex.difficulty, 0) + 1
    return dict(sorted(out.items()))


def accuracy_table(rows: list[dict]) -> dict:
    """Example: [{"difficulty": 1, "correct": True}, {"difficulty": 2, "correct": False}]
    -> {"accuracy": 0.5, "by_difficulty": {1: 1.0, 2: 0.0}, "n": 2}"""
    by = defaultdict(list)
    for r in rows:
        by[r["difficulty"]].append(float(r["correct"]))
    n = len(rows)
    acc = sum(float(r["correct"]) for r in rows) / n if n else 0.0
    return {"accuracy": acc, "by_difficulty": {d: sum(v) / len(v) for d, v in sorted(by.items())}, "n": n}
