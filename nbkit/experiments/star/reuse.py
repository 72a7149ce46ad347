"""What a STaR loop reads back instead of recomputing: samples drawn before from the same model, and another loop's
evaluation of the same seed model. Both are keyed on everything that decides the result, so reading back never
changes one; a cache that cannot be read or written costs time, never a result. Runs that an older nbkit registered
in another layout are refused, in one line, rather than read back."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path

from nbkit import dist
from nbkit.errors import RunError
from nbkit.files import read_jsonl

# what an iteration-0 evaluation depends on, besides its seed model
SEED_EVAL_KEYS = ("task", "task_args", "test_problems", "max_new_tokens", "seeding", "seed_examples", "seed")


def samples(loop, source: str, model, tok, prompts: list, seed: int, desc: str, cfg=None) -> list[list[str]]:
    """The loop's `sample` stage, remembered in the registry (.cache/star-samples/): the arms of an ablation that
    start from the same registered model (`source`), with the same prompts, seed and sampling settings, get the same
    completions without sampling again (the 01 notebook's two arms save about 3 minutes on 2 cores). Only a single
    process uses it: under several, each rank's shard differs, and only rank 0 writes to the registry. `cfg`: the
    loop's config with other sampling settings (the retries)."""
    cfg, chat = cfg or loop.cfg, loop.task.uses_chat
    if dist.world() > 1:
        return loop.stages["sample"](cfg, model, tok, prompts, seed, desc, chat, progress=loop.progress)
    record = Path(loop.reg.root) / source / "run.json"
    identity = (
        record.read_text() if record.exists() else source
    )  # a run re-created under the same name differs
    settings = [
        cfg.samples_per_problem,
        cfg.temperature,
        cfg.max_new_tokens,
        cfg.sample_batch_size,
        seed,
        chat,
    ]
    key = hashlib.sha256(json.dumps([identity, prompts, settings], default=str).encode()).hexdigest()[:32]
    path = Path(loop.reg.root) / ".cache" / "star-samples" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError):
        texts = json.loads(path.read_text())
        if isinstance(texts, list) and len(texts) == len(prompts):
            return texts
    texts = loop.stages["sample"](cfg, model, tok, prompts, seed, desc, chat, progress=loop.progress)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(texts))
        os.replace(tmp, path)
    return texts


def seed_eval(loop) -> dict | None:
    """Another loop's held-out evaluation of the same seed model on the same problems, if there is one (the
    ablation arms reuse the main loop's primer: no need to evaluate it twice)."""
    from nbkit.tasks.base import accuracy_table

    mine = dataclasses.asdict(loop.cfg)
    for run in loop.reg.list():
        theirs = run.config
        if (
            run.parent == loop.seed_run
            and theirs.get("iteration") == 0
            and all(theirs.get(k) == mine[k] for k in SEED_EVAL_KEYS)
        ):
            rows = read_jsonl(run.path / "eval.jsonl")
            return {**accuracy_table(rows), "rows": rows}
    return None


def refuse_old_layout(reg, names: list[str]) -> None:
    """One line for a run an older nbkit registered, which nested the StarConfig under "star" in its config."""
    for name in names:
        if reg.exists(name) and "star" in reg.get(name).config:
            raise RunError(
                f"run {name!r} in {reg.root} was made by an older nbkit (its config nests the STaR settings under "
                f"'star'); delete it (Registry.delete({name!r})) or give this loop another name (--name)"
            )
