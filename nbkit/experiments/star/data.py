"""STaR's data and its filter: the seed examples, the train and test problems, and which rationales are kept."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from nbkit.errors import ConfigError
from nbkit.experiments.star.config import StarConfig


def split_rationale(text: str, answer_prefix: str = "Answer:") -> str:
    """The rationale part of a completion: everything before its last answer line.

    Example: "2+3=5 -> 5\\nAnswer: 5" -> "2+3=5 -> 5"
    """
    cut = text.rfind(answer_prefix)
    return (text[:cut] if cut >= 0 else text).rstrip()


def filter_rationales(
    task,
    problems: list,
    texts: list[list[str]],
    hinted: bool = False,
    faithful: bool = False,
    worked: bool = False,
) -> tuple[list, list]:
    """STaR's filter. texts: shape (n_problems, k). Returns (kept, failed).

    kept: [(example, rationale)], the first correct completion of each problem; failed: problems with none.
    A hinted completion that mentions the hint is not kept: it would be trained on without the hint.
    faithful: also require every step to be right (`task.faithful`), not only the answer (not in the paper).
    worked: also require some rationale before the answer line, right or wrong (not in the paper).
    Example: problems [2+3, 4+4], texts [["...Answer: 5"], ["...Answer: 9"]] -> ([(2+3, "...")], [4+4]).
    """
    if len(texts) != len(problems):
        raise ValueError(f"{len(problems)} problems but {len(texts)} groups of completions")
    kept, failed = [], []
    for ex, group in zip(problems, texts):
        good = (
            split_rationale(t, task.answer_prefix)
            for t in group
            if task.is_correct(t, ex) and not (hinted and "hint" in t.lower())
        )
        first = next(
            (r for r in good if (not faithful or task.faithful(ex, r)) and (not worked or r.strip())), None
        )
        if first is not None:
            kept.append((ex, first))
        else:
            failed.append(ex)
    return kept, failed


def iteration_stats(n_problems: int, n_correct: int, n_rationalized: int) -> dict:
    """Example: (200, 90, 30) -> {"tried": 200, "correct": 90, "rationalized": 30, "kept": 120,
    "used_fraction": 0.6, "correct_fraction": 0.45}"""
    kept = n_correct + n_rationalized
    return {
        "tried": n_problems,
        "correct": n_correct,
        "rationalized": n_rationalized,
        "kept": kept,
        "used_fraction": kept / n_problems if n_problems else 0.0,
        "correct_fraction": n_correct / n_problems if n_problems else 0.0,
    }


def count_by_difficulty(examples: list) -> dict:
    """Example: examples of difficulty [1, 3, 3] -> {1: 1, 3: 2}"""
    out: dict = {}
    for ex in examples:
        out[ex.difficulty] = out.get(ex.difficulty, 0) + 1
    return dict(sorted(out.items()))


def faithful_counts(task, kept: list, rationalized: list) -> dict:
    """How many kept rationales are right at every step, not only at the end (tasks that can tell; else {}).

    STaR cannot see this; it is a diagnostic. A small model given the answer as a hint often writes wrong steps
    and then copies the hint, and those rationales are trained on like the others.
    Example: 3 kept (all faithful), 4 rationalized (1 faithful) -> {"faithful_correct": 3, "faithful_rationalized": 1}
    """
    checks = {
        name: [task.faithful(ex, r) for ex, r in pairs]
        for name, pairs in (("faithful_correct", kept), ("faithful_rationalized", rationalized))
    }
    if any(v is None for vs in checks.values() for v in vs):
        return {}
    return {name: sum(vs) for name, vs in checks.items()}


def build_task(cfg: StarConfig, seed_side: bool = False):
    """The config's task (`nbkit.tasks.make_task`); seed_side: with `seed_task_args` (e.g. easier digits)."""
    from nbkit.tasks import make_task

    args = dict(cfg.task_args or {})
    if seed_side and cfg.seed_task_args is not None and cfg.task == "arithmetic":
        args |= cfg.seed_task_args  # e.g. easier digits; the format and system turn stay the task's
    if cfg.task == "arithmetic":
        args.setdefault("seed", cfg.seed)
    return make_task(cfg.task, **args)


def seed_examples(cfg: StarConfig, task) -> tuple[list, list]:
    """(plain, hinted): the worked examples the primer (or the few-shot prompt) shows, and those the primer sees
    with the answer as a hint.

    The hinted ones demonstrate rationalization, as the paper's hint prompt does with worked examples and their
    answers: `primer_hints` of the `seed_examples`, drawn for arithmetic from the whole task (every digit count)
    while the plain ones come from the easy `seed_task_args`. The few-shot seed shows every example plainly.
    """
    n_hint = round(cfg.seed_examples * cfg.primer_hints) if cfg.seeding == "primer" else 0
    n_plain = cfg.seed_examples - n_hint
    rows = cfg.seed_rationales
    if isinstance(rows, str):
        path = Path(rows).expanduser()
        if not path.exists():
            raise ConfigError(f"seed_rationales file {path} does not exist")
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if rows:
        if not hasattr(task, "parse"):
            raise ConfigError(
                f"seed_rationales are for loaded tasks (gsm8k, multiple_choice), not {cfg.task}"
            )
        if any(not row.get("rationale") for row in rows):
            raise ConfigError("every seed_rationales row needs a 'rationale' field")
        pool = [dataclasses.replace(task.parse(r), rationale=str(r["rationale"])) for r in rows]
    elif cfg.task == "arithmetic":
        plain = build_task(cfg, seed_side=True).train(n_plain, salt="star-seed")
        return plain, task.train(n_hint, salt="star-hint")
    else:
        pool = [ex for ex in task.train(cfg.seed_examples, salt="star-seed") if ex.rationale]
    if not pool:
        raise ConfigError(
            f"no seed examples: task {cfg.task!r} has no gold rationales; give seed_rationales (a jsonl file of "
            "rows in the task's format with a 'rationale' field)"
        )
    pool = pool[: cfg.seed_examples]
    cut = max(1, round(len(pool) * (1 - n_hint / cfg.seed_examples)))
    return pool[:cut], pool[cut:]


def primer_records(task, plain: list, hinted: list) -> list[dict]:
    """SFT rows for the primer: the plain examples, then the hinted ones with "(Hint: the answer is N.)" in the
    prompt and the same kind of rationale as the answer (so the primer learns to use a hint: rationalization).

    Example: 2 plain, 1 hinted -> 3 rows; the last prompt ends with "(Hint: the answer is 11.)".
    """
    rows = [task.sft_record(ex) for ex in plain]
    return rows + [dict(task.sft_record(ex), prompt=task.chat(ex, hint=ex.answer)) for ex in hinted]


def iteration_records(task, kept: list, rationalized: list, replay: list) -> list[dict]:
    """SFT rows of one iteration, each with its `source`: the kept rationales ("direct"), the rationalized ones
    (stored without the hint: "rationalized"), then the `replay` rows (the primer's: "primer").

    Example: 2 kept, 1 rationalized, no replay -> sources ["direct", "direct", "rationalized"].
    """
    rows = [dict(task.sft_record(ex, r), source="direct") for ex, r in kept]
    rows += [dict(task.sft_record(ex, r), source="rationalized") for ex, r in rationalized]
    return rows + [dict(r, source="primer") for r in replay]


def train_problems(cfg: StarConfig, task, seeds: list) -> list:
    """The fixed train set every iteration goes over (without the seed questions, for loaded datasets)."""
    taken = {ex.question for ex in seeds} if cfg.task != "arithmetic" else set()  # arithmetic: pools are tiny
    pool = task.train(
        cfg.problems_per_iteration + (0 if cfg.task == "arithmetic" else len(seeds)), salt="star-train"
    )
    problems = [ex for ex in pool if ex.question not in taken][: cfg.problems_per_iteration]
    if not problems:
        raise ConfigError(
            f"no training problems left for task {cfg.task!r} after setting the seed examples aside"
        )
    return problems


def held_out(task, n: int) -> list:
    """n test problems. Arithmetic: n / len(digits) per digit count (all 20 1-digit ones when fewer exist)."""
    from nbkit.tasks import Arithmetic
    from nbkit.tasks.arithmetic import in_test_split

    if not isinstance(task, Arithmetic):
        return task.test(n)
    out = []
    for d in task.digits:
        want = n // len(task.digits)
        if d == 1:
            want = min(want, sum(in_test_split(a, b) for a in range(10) for b in range(10)))
        out += Arithmetic((d,), seed=task.seed).test(want)
    return out
