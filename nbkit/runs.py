"""A run registry on disk, with lineage, metrics and checkpoints; metrics mirrored to wandb.

Layout (root: `./runs`, or $NBKIT_RUNS):

    runs/<name>/run.json        name, kind, config, parent, created, hardware, summary
    runs/<name>/metrics.jsonl   one JSON object per logged step
    runs/<name>/checkpoint/     a full checkpoint or a LoRA adapter (optional: a "base" run just names its model)

A run is written under runs/.pending/ and appears under its name in a single rename when it completes, so a killed
process never leaves a half-registered run, and two writers cannot both claim one name.

    reg = Registry()
    with reg.create("sft-1", kind="sft", config={...}, parent="base") as run:
        run.log({"loss": 1.2}, step=1)
        run.save_model(model, tokenizer)
    reg.load("sft-1")  # -> (model, tokenizer)

wandb: "auto" logs online when an API key is configured and offline otherwise (sync later with `wandb sync`);
`tracking="off"` or NBKIT_WANDB=off disables it. The registry keeps the same metrics either way.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from nbkit.errors import NbkitError

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"


class RunError(NbkitError):
    """A registry operation was refused; the message says why and what to do."""


def cpu_name() -> str:
    """The CPU's model name, e.g. "AMD EPYC" (platform.processor() is empty on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    """Where a run ran: enough to tell a laptop CPU run from an H100 one."""
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
    return info


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    return str(o)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)


def wandb_mode(tracking: str = "auto") -> str:
    """'online', 'offline' or 'disabled'. Never prompts: without an API key, 'auto' means offline."""
    tracking = os.environ.get("NBKIT_WANDB", tracking)
    if tracking in {"off", "disabled", "false", "0", "none"}:
        return "disabled"
    if tracking in {"online", "offline"}:
        return tracking
    if os.environ.get("WANDB_MODE") in {"online", "offline", "disabled"}:
        return os.environ["WANDB_MODE"]
    netrc = Path.home() / ".netrc"
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or (
        netrc.exists() and "api.wandb.ai" in netrc.read_text()
    )
    return "online" if logged_in else "offline"


@dataclass
class Run:
    name: str
    kind: str
    path: Path
    config: dict = field(default_factory=dict)
    parent: str | None = None
    created: float = 0.0
    hardware: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    adapter: bool = False

    @property
    def checkpoint(self) -> Path | None:
        ckpt = self.path / "checkpoint"
        return ckpt if ckpt.exists() else None

    @property
    def model_source(self) -> str:
        """What `models.load` should load for this run: its checkpoint, else the model its config names."""
        if self.checkpoint:
            return str(self.checkpoint)
        if "model" in self.config:
            return str(self.config["model"])
        raise RunError(f"run {self.name!r} has no checkpoint and names no model")

    def metrics(self) -> list[dict]:
        f = self.path / METRICS_FILE
        return [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.exists() else []

    def metrics_frame(self):
        import pandas as pd

        return pd.DataFrame(self.metrics())


class RunWriter:
    """A run being written. Use as a context manager: it commits on success and discards on an exception."""

    def __init__(
        self,
        registry: Registry,
        name: str,
        kind: str,
        config: dict,
        parent: str | None,
        tracking: str,
        project: str,
    ):
        self.registry, self.name, self.kind = registry, name, kind
        self.path = registry.root / ".pending" / f"{name}-{uuid.uuid4().hex[:8]}"
        self.path.mkdir(parents=True)
        self.record = {
            "name": name,
            "kind": kind,
            "config": config,
            "parent": parent,
            "created": time.time(),
            "hardware": hardware(),
            "summary": {},
            "adapter": False,
        }
        self._flush()
        self._wandb = None
        mode = wandb_mode(tracking)
        if mode != "disabled":
            import wandb

            os.environ.setdefault("WANDB_SILENT", "true")
            wandb_dir = registry.root / ".wandb"
            wandb_dir.mkdir(parents=True, exist_ok=True)
            self._wandb = wandb.init(
                project=project,
                name=name,
                job_type=kind,
                config=config,
                mode=mode,
                dir=str(wandb_dir),
                reinit="create_new",
                tags=[kind] + ([f"parent:{parent}"] if parent else []),
            )

    def _flush(self) -> None:
        _atomic_write(self.path / RUN_FILE, json.dumps(self.record, indent=1, default=_json_default))

    def log(self, metrics: dict, step: int | None = None) -> None:
        row = {"step": step, **metrics} if step is not None else dict(metrics)
        with open(self.path / METRICS_FILE, "a") as f:
            f.write(json.dumps(row, default=_json_default) + "\n")
        if self._wandb is not None:
            scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            self._wandb.log(scalars, step=step)

    def set_summary(self, **values) -> None:
        self.record["summary"].update(values)
        self._flush()

    def save_model(self, model, tokenizer=None) -> Path:
        """Save a full checkpoint or, for a peft model, just the adapter."""
        ckpt = self.path / "checkpoint"
        model.save_pretrained(ckpt, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(ckpt)
        self.record["adapter"] = (ckpt / "adapter_config.json").exists()
        self._flush()
        return ckpt

    def commit(self) -> Run:
        if self.record.get("summary") is not None and self._wandb is not None:
            self._wandb.summary.update(
                {k: v for k, v in self.record["summary"].items() if isinstance(v, (int, float, str))}
            )
        self._finish_wandb()
        final = self.registry.root / self.name
        try:
            os.rename(self.path, final)
        except OSError as e:
            raise RunError(
                f"run {self.name!r} was registered by someone else meanwhile; this one is kept at {self.path}"
            ) from e
        return self.registry.get(self.name)

    def abort(self) -> None:
        self._finish_wandb(exit_code=1)
        shutil.rmtree(self.path, ignore_errors=True)

    def _finish_wandb(self, exit_code: int = 0) -> None:
        if self._wandb is not None:
            self._wandb.finish(exit_code=exit_code)
            self._wandb = None

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.run = self.commit()
        else:
            self.abort()


class Registry:
    def __init__(self, root: str | os.PathLike | None = None, project: str = "nbkit"):
        self.root = Path(root or os.environ.get("NBKIT_RUNS", "runs")).expanduser()
        self.project = project

    def exists(self, name: str) -> bool:
        return (self.root / name / RUN_FILE).exists()

    def create(
        self,
        name: str,
        kind: str,
        config: dict | None = None,
        parent: str | None = None,
        tracking: str = "auto",
    ) -> RunWriter:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise RunError(
                f"invalid run name {name!r}: use letters, digits, '-', '_' (no slashes, no leading dot)"
            )
        if self.exists(name):
            raise RunError(
                f"a run named {name!r} already exists in {self.root}. Pick another name, or delete it "
                f"first with Registry.delete({name!r})."
            )
        if parent is not None and not self.exists(parent):
            raise RunError(f"parent run {parent!r} is not in {self.root}; register it first")
        return RunWriter(self, name, kind, dict(config or {}), parent, tracking, self.project)

    def get(self, name: str) -> Run:
        f = self.root / name / RUN_FILE
        if not f.exists():
            known = ", ".join(self.names()) or "none"
            raise RunError(f"no run named {name!r} in {self.root} (runs: {known})")
        rec = json.loads(f.read_text())
        return Run(
            name=rec["name"],
            kind=rec["kind"],
            path=self.root / name,
            config=rec.get("config", {}),
            parent=rec.get("parent"),
            created=rec.get("created", 0.0),
            hardware=rec.get("hardware", {}),
            summary=rec.get("summary", {}),
            adapter=rec.get("adapter", False),
        )

    def names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if not p.name.startswith(".") and (p / RUN_FILE).exists()
        )

    def list(self) -> list[Run]:
        return sorted((self.get(n) for n in self.names()), key=lambda r: r.created)

    def lineage(self, name: str) -> list[Run]:
        """The chain from the root ancestor down to `name`, e.g. [base, sft, dpo]."""
        chain, seen = [], set()
        while name is not None and name not in seen:
            seen.add(name)
            run = self.get(name)
            chain.append(run)
            name = run.parent
        return chain[::-1]

    def load(self, name: str, **kwargs):
        """(model, tokenizer) for a run, through `nbkit.models.load` (adapters load on their base)."""
        from nbkit.models import load

        return load(self.get(name).model_source, **kwargs)

    def delete(self, name: str) -> None:
        run = self.get(name)
        trash = self.root / ".pending" / f"deleted-{name}-{uuid.uuid4().hex[:8]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.rename(run.path, trash)  # disappears from the registry atomically, then gets removed
        shutil.rmtree(trash, ignore_errors=True)

    def table(self):
        """A pandas DataFrame with one row per run."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "name": r.name,
                    "kind": r.kind,
                    "parent": r.parent,
                    "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created)),
                    "checkpoint": "lora" if r.adapter else ("full" if r.checkpoint else "-"),
                    **{k: v for k, v in r.summary.items() if isinstance(v, (int, float, str))},
                }
                for r in self.list()
            ]
        )
