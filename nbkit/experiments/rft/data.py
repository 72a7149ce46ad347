"""The RFT inputs: the task, GRPO's prompt rows, and the SFT rows of the warm-start.

- `build_task(cfg)`: the task the config names (through `nbkit.tasks.make_task`).
- `rl_records(task, examples, cfg)`: GRPO rows, the prompt as a chat plus the columns the reward reads.
- `warmstart_records(task, examples, cfg)`: SFT rows for the first `warmstart_fraction` of the RFT inputs.
"""

from __future__ import annotations

from nbkit.experiments.rft.config import RftConfig
from nbkit.tasks import make_task


def build_task(cfg: RftConfig):
    """The task the config names (through `nbkit.tasks.make_task`)."""
    if cfg.task == "arithmetic":
        return make_task("arithmetic", digits=tuple(cfg.digits), seed=cfg.seed)
    return make_task("gsm8k", source=cfg.data, config=cfg.data_config)


def rl_records(task, examples, cfg: RftConfig) -> list[dict]:
    """GRPO rows (prompt as chat, plus the columns the reward reads), with the config's system prompt."""
    return [{**task.rl_record(ex), "prompt": task.chat(ex, system=cfg.system)} for ex in examples]


def warmstart_records(task, examples, cfg: RftConfig) -> list[dict]:
    """SFT rows for the first `warmstart_fraction` of the RFT inputs (at least one), same prompts as the RFT."""
    n = max(1, round(cfg.warmstart_fraction * len(examples)))
    rationale = None if cfg.rationale else ""  # "": the answer line only, e.g. "Answer: 132"
    return [
        {**task.sft_record(ex, rationale), "prompt": task.chat(ex, system=cfg.system)} for ex in examples[:n]
    ]
