"""The sweep's data: the task, two disjoint pools of training problems, and the preference pairs.

- `build_task(cfg)`: the task the config names (through `nbkit.tasks.make_task`).
- `make_pools(task, cfg)`: the SFT pool, the preference prompts and the held-out test problems.
- `draw_rejected` + `preference_pairs`: "chosen" is the task's correct target, "rejected" is the model's own
  incorrect sample, drawn on-policy with `nbkit.sampling.sample`; or `load_pairs(file)` from a dataset.
"""

from __future__ import annotations

import random
from pathlib import Path

from nbkit.experiments.budget.config import BudgetConfig, BudgetError
from nbkit.files import read_jsonl

DIRECT = ""  # rationale that makes Task.target give just the answer line


def build_task(cfg: BudgetConfig):
    """Arithmetic with the config's digits, or GSM8K from a local file (or one in nbkit/tasks/fixtures) or the hub."""
    from nbkit.tasks import FIXTURES, make_task

    if cfg.task == "arithmetic":
        return make_task("arithmetic", digits=tuple(cfg.digits), seed=cfg.seed)
    # else gsm8k: BudgetConfig allows no other task
    local = Path(cfg.source).expanduser().is_file() or (FIXTURES / cfg.source).is_file()
    hub = {} if local else dict(config="main", test_source=cfg.source)  # the hub's own test split
    return make_task("gsm8k", source=cfg.source, **hub)


def make_pools(task, cfg: BudgetConfig) -> tuple[list, list, list]:
    """(sft_pool, preference_prompts, test): `pool` training problems each, disjoint, shuffled with the seed.

    A cell takes the first n_sft of the SFT pool and the first n_pairs pairs, so a larger budget extends a smaller
    one's data instead of redrawing it.
    """
    train = list(task.train(2 * cfg.pool, salt=f"budget-{cfg.seed}"))
    if len(train) < 2 * cfg.pool:
        raise BudgetError(
            f"{task.name} has only {len(train)} training problems; the SFT and preference pools need "
            f"2 x pool = {2 * cfg.pool}: lower pool to {len(train) // 2}"
        )
    random.Random(cfg.seed).shuffle(train)  # arithmetic lists problems by digit count
    return train[: cfg.pool], train[cfg.pool :], task.test(cfg.eval_n)


def sft_records(task, examples: list, rationale: bool) -> list[dict]:
    """Prompt-completion rows for SFT: the task's worked rationale, or just the answer line."""
    return [task.sft_record(ex, None if rationale else DIRECT) for ex in examples]


# ------------------------------------------------------------------------------------------- preference pairs


def draw_rejected(
    model,
    tokenizer,
    task,
    examples: list,
    k: int = 2,
    temperature: float = 1.0,
    max_new_tokens: int = 12,
    seed: int = 0,
    batch_size: int = 64,
    sampler=None,
) -> list[list[str]]:
    """The model's own incorrect answers: k on-policy samples per example, the wrong ones kept.

    Returns shape (n_examples, <= k). `sampler` defaults to nbkit.sampling.sample (tests pass a fake).
    """
    if sampler is None:
        from nbkit.sampling import sample as sampler
    out = sampler(
        model,
        tokenizer,
        [task.chat(ex) for ex in examples],
        k=k,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        batch_size=batch_size,
        desc="rejected samples",
    )
    return [
        [t for t in texts if t.strip() and not task.is_correct(t, ex)]
        for ex, texts in zip(examples, out.texts())
    ]


def preference_pairs(task, examples: list, rejected: list[list[str]], rationale: bool = False) -> list[dict]:
    """TRL conversational preference rows: chosen = the task's correct target, rejected = an incorrect sample.

    Round-robin: every example's first wrong answer, then every second one, ... so a budget's first n pairs
    spread over as many prompts as possible. Example: rejected [["5", "7"], [], ["1"]] gives pairs
    (ex0, "5"), (ex2, "1"), (ex0, "7").
    """
    if len(examples) != len(rejected):
        raise BudgetError(f"{len(examples)} examples but {len(rejected)} lists of rejected answers")
    rows = []
    for j in range(max((len(r) for r in rejected), default=0)):
        for ex, wrong in zip(examples, rejected):
            if j < len(wrong):
                rows.append(
                    {
                        "prompt": task.chat(ex),
                        "chosen": [{"role": "assistant", "content": _target(task, ex, rationale)}],
                        "rejected": [{"role": "assistant", "content": wrong[j]}],
                        "answer": ex.answer,
                    }
                )
    if not rows:
        raise BudgetError(
            f"no incorrect samples to pair against: the model answered all {len(examples)} prompts correctly; "
            "use harder problems, more samples (rejected_k), a higher temperature, or a pairs file"
        )
    return rows


def _turn(x, role: str) -> list[dict]:
    return [{"role": role, "content": x}] if isinstance(x, str) else x


def load_pairs(source: str | Path) -> list[dict]:
    """Preference pairs from a jsonl file with prompt, chosen, rejected (strings or chat messages)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise BudgetError(f"pairs file {path} does not exist")
    rows = read_jsonl(path)
    for i, r in enumerate(rows):
        if missing := {"prompt", "chosen", "rejected"} - set(r):
            raise BudgetError(
                f"{path} row {i} lacks {sorted(missing)}; each row needs prompt, chosen, rejected"
            )
    if not rows:
        raise BudgetError(f"{path} holds no preference pairs")
    return [
        {
            "prompt": _turn(r["prompt"], "user"),
            **{k: _turn(r[k], "assistant") for k in ("chosen", "rejected")},
        }
        for r in rows
    ]


def _target(task, ex, rationale: bool) -> str:
    return task.target(ex) if rationale else task.target(ex, DIRECT)
