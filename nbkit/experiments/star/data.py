"""STaR's data and its filter: the seed examples, the train and test problems, and which rationales are kept."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

from nbkit.errors import ConfigError
from nbkit.experiments.star.config import StarConfig
from nbkit.tasks.base import split_rationale  # noqa: F401 (STaR's filter reads it from here)


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
    A hinted completion that mentions the hint (`task.mentions_hint`, in the words the prompt used) is not kept: it
    would be trained on without the hint.
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
            if task.is_correct(t, ex) and not (hinted and task.mentions_hint(t))
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
    while the plain ones come from the easy `seed_task_args`, except `seed_long_examples` of each longer digit
    count. The few-shot seed shows every example plainly.
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
        easy = build_task(cfg, seed_side=True)
        longer = [d for d in task.digits if d not in easy.digits] if cfg.seed_long_examples else []
        n_long = cfg.seed_long_examples * len(longer)
        if n_long >= n_plain:
            raise ConfigError(
                f"seed_long_examples={cfg.seed_long_examples} x {len(longer)} longer digit counts leaves none of "
                f"the {n_plain} plain seed examples for the easy sums; raise seed_examples"
            )
        plain = spread_draw(easy, n_plain - n_long, "star-seed")
        for d in longer:  # a handful at each longer length, with the task's format
            one = copy.copy(easy)
            one.digits = (d,)
            plain += one.train(cfg.seed_long_examples, salt="star-seed-long")
        return plain, spread_draw(task, n_hint, "star-hint")
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


def split_size(d: int, test: bool = False) -> int:
    """How many d-digit sums sit on one side of the train/test split: exact for d <= 2 (counted), estimated for
    d >= 3 as 1/5 (test) or 4/5 (train) of all pairs, hundreds of thousands, never the limit of a draw here.

    Example: split_size(1) -> 77, split_size(1, test=True) -> 23, split_size(2) -> 6458.
    """
    from nbkit.tasks.arithmetic import in_test_split

    lo = 0 if d == 1 else 10 ** (d - 1)
    pairs = (10**d - lo) ** 2
    if d <= 2:
        return sum(in_test_split(a, b) == test for a in range(lo, 10**d) for b in range(lo, 10**d))
    return pairs // 5 if test else pairs * 4 // 5


def digit_quotas(n: int, sizes: dict[int, int]) -> dict[int, int]:
    """How many of n problems each digit count gives: an even share (the remainder to the first digit counts, as
    `Arithmetic` spreads them), except that a digit count with fewer problems than its share gives all it has and
    the others share out the rest the same way. ConfigError when all of them together hold fewer than n.

    Example: digit_quotas(10_000, {1: 77, 2: 6458, 3: 648_000, 4: 64_800_000, 5: 6_480_000_000})
    -> {1: 77, 2: 2481, 3: 2481, 4: 2481, 5: 2480}; digit_quotas(192, {1: 77, 2: 6458, ...}) -> 48 each.
    """
    if n > sum(sizes.values()):
        raise ConfigError(
            f"{n} problems asked of {'-'.join(map(str, sizes))}-digit sums, which hold only "
            f"{sum(sizes.values())} on this side of the split; ask for fewer"
        )
    quotas, left, open_ = {}, n, list(sizes)
    while open_:
        even = {d: left // len(open_) + (j < left % len(open_)) for j, d in enumerate(open_)}
        short = [d for d in open_ if sizes[d] < even[d]]
        if not short:
            quotas |= even
            break
        for d in short:
            quotas[d], left = sizes[d], left - sizes[d]
            open_.remove(d)
    return {d: quotas[d] for d in sizes}


def spread_draw(task, n: int, salt: str) -> list:
    """n training problems spread over the task's digit counts by `digit_quotas` (other tasks: `task.train`).

    When every digit count has its even share, this is exactly `task.train(n, salt)`, so the smoke and cpu
    profiles draw what they always drew; otherwise each digit count is drawn on its own, with the task's format.
    """
    from nbkit.tasks import Arithmetic

    if not isinstance(task, Arithmetic):
        return task.train(n, salt=salt)
    quotas = digit_quotas(n, {d: split_size(d) for d in task.digits})
    if quotas == digit_quotas(n, {d: n for d in task.digits}):
        return task.train(n, salt=salt)
    out = []
    for d, want in quotas.items():
        one = copy.copy(task)  # the same scratchpad, prompt and seed, one digit count
        one.digits = (d,)
        out += one.train(want, salt=salt)
    return out


def train_problems(cfg: StarConfig, task, seeds: list) -> list:
    """The fixed train set every iteration goes over (without the seed questions, for loaded datasets).

    Arithmetic: `problems_per_iteration` spread over the digit counts by `spread_draw`, e.g. the gpu profile's
    10,000 over digits 1-5 -> all 77 one-digit sums and 2,480-2,481 of each other digit count.
    """
    if cfg.task == "arithmetic":  # arithmetic: pools are tiny, the seed questions may come back
        try:
            return spread_draw(task, cfg.problems_per_iteration, "star-train")
        except ConfigError as e:
            raise ConfigError(f"problems_per_iteration: {e}") from None
    taken = {ex.question for ex in seeds}
    pool = task.train(cfg.problems_per_iteration + len(seeds), salt="star-train")
    problems = [ex for ex in pool if ex.question not in taken][: cfg.problems_per_iteration]
    if not problems:
        raise ConfigError(
            f"no training problems left for task {cfg.task!r} after setting the seed examples aside"
        )
    return problems


def held_out(task, n: int) -> list:
    """n test problems. Arithmetic: n // len(digits) per digit count, except 1-digit sums, which give at most the
    23 that exist (so the gpu profile's 300 over digits 1-5 is 23 + 4 x 60 = 263 problems)."""
    from nbkit.tasks import Arithmetic

    if not isinstance(task, Arithmetic):
        return task.test(n)
    out = []
    for d in task.digits:
        want = n // len(task.digits)
        if d == 1:
            want = min(want, split_size(1, test=True))
        out += Arithmetic((d,), seed=task.seed).test(want)
    return out


def draw(cfg: StarConfig, task) -> tuple[list, list, list, list]:
    """Everything the loop trains and evaluates on, no model needed: (plain seeds, hinted seeds, train problems,
    held-out problems)."""
    plain, hinted = seed_examples(cfg, task)
    return plain, hinted, train_problems(cfg, task, plain + hinted), held_out(task, cfg.test_problems)
