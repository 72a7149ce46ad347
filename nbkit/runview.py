"""The registry as a terminal shows it (`nbkit runs list`, `nbkit runs show NAME`): one short line per run, and one
readable page per run. Everything here reads runs and returns text or plain records; nothing writes.

    smoke-star-iter2   star-iteration  smoke-star-primer  3 min ago  accuracy 25.0%

Each kind of run has one number worth a glance (`key_metric`): accuracy for evaluated runs (STaR iterations, the
budget sweep's base/sft/dpo runs), the probe's mean reward at the end for RFT, and nothing for a bare base run.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from nbkit.files import json_default
from nbkit.hardware import hardware_label

# summary key -> how `key_metric` names it; the first key a run's summary holds is its metric
KEY_METRICS = {
    "accuracy": "accuracy",
    "probe_reward_end": "probe reward",
    "records": "records",
    "n_pairs": "pairs",
}
COLUMNS = ("name", "kind", "parent", "age", "metric")
MAX_NAME = 32  # longer names and parents are shortened in the middle, so a line stays within ~100 columns


def age(seconds: float) -> str:
    """How long ago, as a person says it. Example: 42 -> "42 s ago", 200 -> "3 min ago", 200_000 -> "2 d ago"."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def key_metric(run) -> tuple[str, float] | None:
    """(label, value) of the one number that matters for this run, or None (a base run, a run without one).

    Example: a STaR iteration whose summary holds {"accuracy": 0.25, ...} -> ("accuracy", 0.25).
    """
    for key, label in KEY_METRICS.items():
        value = run.summary.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return label, value
    return None


def metric_text(run) -> str:
    """Example: "accuracy 25.0%", "probe reward 0.41", "pairs 16", or "" when the run has no key metric."""
    metric = key_metric(run)
    if metric is None:
        return ""
    label, value = metric
    if label == "accuracy":
        return f"accuracy {value:.1%}"
    return f"{label} {value:.2f}" if isinstance(value, float) else f"{label} {value}"


def shorten(text: str, width: int) -> str:
    """Example: shorten("smoke-budget-2fcfcb-sft2-dpo2", 16) -> "smoke-bu…2-dpo2"."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def list_lines(runs: list, now: float | None = None) -> list[str]:
    """A header and one aligned line per run: name, kind, parent, age and key metric (see the module docstring)."""
    now = time.time() if now is None else now
    rows = [
        (
            shorten(r.name, MAX_NAME),
            r.kind,
            shorten(r.parent or "-", MAX_NAME),
            age(now - r.created),
            metric_text(r),
        )
        for r in runs
    ]
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS) - 1)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in [COLUMNS, *rows]
    ]


def record(run) -> dict:
    """A run as `nbkit runs list --json` prints it: plain JSON values, the summary's scalars only."""
    metric = key_metric(run)
    return {
        "name": run.name,
        "kind": run.kind,
        "parent": run.parent,
        "created": datetime.fromtimestamp(run.created).isoformat(timespec="seconds"),
        "checkpoint": checkpoint_kind(run),
        "metric": None if metric is None else {"name": metric[0], "value": metric[1]},
        "summary": {k: v for k, v in run.summary.items() if isinstance(v, (int, float, str, bool))},
    }


def checkpoint_kind(run) -> str | None:
    return "lora adapter" if run.adapter else ("full" if run.checkpoint else None)


# ------------------------------------------------------------------------------------------------ one run's page


def compact(value, width: int = 60) -> str:
    """A value on one short line. Examples: 0.0833333 -> "0.08333"; 0.0 -> "0.0"; a long dict -> its keys,
    {"direct": [...], "hinted": [...]} -> "{direct, hinted} (2 keys)"; a long list -> "[0.1, 0.2, …] (40 items)".
    """
    if isinstance(value, float):
        text = f"{value:.4g}"
        return text if any(c in text for c in ".enia") else text + ".0"
    text = json.dumps(value, default=json_default) if isinstance(value, (list, dict)) else str(value)
    if len(text) <= width:
        return text
    if isinstance(value, dict):
        return shorten_end("{" + ", ".join(map(str, value)) + "}", width - 12) + f" ({len(value)} keys)"
    if isinstance(value, list):
        return shorten_end(text, width - 14) + f" ({len(value)} items)"
    return shorten_end(text, width)


def shorten_end(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def size_text(n: int) -> str:
    """Example: 512 -> "512 B", 2_400_000 -> "2.3 MB"."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def files(folder: Path) -> list[tuple[str, int, int]]:
    """(name, bytes, files) for each entry of a run folder; a subfolder (e.g. checkpoint/) counts its whole tree."""
    out = []
    for p in sorted(folder.iterdir()):
        inside = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
        out.append((p.name + "/" * p.is_dir(), sum(f.stat().st_size for f in inside), len(inside)))
    return out


def config_lines(config: dict, defaults: dict | None, about: str) -> list[str]:
    """The config, one `key: value` per line; with `defaults` (the config of the experiment's profile, as a dict),
    only the keys that differ from the profile.

    Example: ["config: as `nbkit rft --profile smoke`, except:", "  steps: 4  (profile: 2)"]
    """
    if defaults is None:
        return ["config:"] + [f"  {k}: {compact(v)}" for k, v in config.items()]
    profile = json.loads(json.dumps(defaults, default=json_default))
    differ = [
        f"  {k}: {compact(v)}" + (f"  (profile: {compact(profile[k])})" if k in profile else "")
        for k, v in config.items()
        if k not in profile or profile[k] != v
    ]
    return [f"config: {about}, " + ("except:" if differ else "nothing changed"), *differ]


def page_record(run, lineage: list) -> dict:
    """What `nbkit runs show NAME --json` prints: the page's content as one JSON-ready dict."""
    return {
        "name": run.name,
        "kind": run.kind,
        "parent": run.parent,
        "lineage": [r.name for r in lineage],
        "path": str(run.path),
        "checkpoint": checkpoint_kind(run),
        "config": run.config,
        "summary": run.summary,
        "hardware": run.hardware,
        "metrics_logged": len(run.metrics()),
    }


def show_lines(run, lineage: list, defaults: dict | None = None, about: str = "") -> list[str]:
    """The page of `nbkit runs show NAME`: lineage, kind, when, where, config, summary, metrics and files.

    defaults, about: see `config_lines` (the command line finds them from the run's experiment)."""
    chain = " -> ".join(r.name for r in lineage)
    when = datetime.fromtimestamp(run.created).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"{run.name}",
        f"  lineage:    {chain}",
        f"  kind:       {run.kind}" + (f" ({metric_text(run)})" if key_metric(run) else ""),
        f"  created:    {when} ({age(time.time() - run.created)})",
        f"  hardware:   {hardware_label(run.hardware)}",
        f"  checkpoint: {checkpoint_kind(run) or 'none'}",
        f"  path:       {run.path}",
        f"  metrics:    {len(run.metrics())} steps logged",
        "",
        *config_lines(run.config, defaults, about),
        "",
        "summary:" if run.summary else "summary: empty",
        *[f"  {k}: {compact(v)}" for k, v in run.summary.items()],
        "",
        "files:",
        *[
            f"  {name:24s} {size_text(n):>9s}" + (f"  ({k} files)" if k > 1 else "")
            for name, n, k in files(run.path)
        ],
    ]
    return lines
