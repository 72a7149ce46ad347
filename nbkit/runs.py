"""A run registry on disk, with lineage, metrics and checkpoints; metrics mirrored to wandb.

Layout (one registry per project, see `default_root`):

    runs/<name>/run.json        name, kind, config, parent, created, hardware, summary, writer
    runs/<name>/metrics.jsonl   one JSON object per logged step
    runs/<name>/checkpoint/     a full checkpoint or a LoRA adapter, with a model card (README.md)

A run is written under runs/.pending/ and appears under its name in a single rename when it completes, so a killed
process never leaves a half-registered run, and two writers cannot both claim one name.

    reg = Registry()            # print(reg.describe()) says which registry and why
    with reg.create("sft-1", kind="sft", config={...}, parent="base") as run:
        run.log({"loss": 1.2}, step=1)
        run.save_model(model, tokenizer)
    reg.load("sft-1")  # -> (model, tokenizer)

Damage is reported, never fatal to the rest: a run whose run.json cannot be read is listed as damaged and skipped,
a torn last line of metrics.jsonl is ignored with a warning, and `Registry.check()` (`nbkit runs check [--fix]`)
finds damaged runs and `.pending/` entries left by dead processes and moves them aside (never deletes).

wandb: "auto" logs online when an API key is configured and offline otherwise (sync later with `wandb sync`);
`tracking="off"` or NBKIT_WANDB=off disables it. The registry keeps the same metrics either way.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from nbkit import runcheck
from nbkit.cards import write_model_card
from nbkit.errors import NbkitError, RunError
from nbkit.files import atomic_write, io_error, json_default
from nbkit.hardware import hardware
from nbkit.runcheck import RUN_FILE, Problem, read_record, writer_identity

METRICS_FILE = "metrics.jsonl"


class RegistryWarning(UserWarning):
    """Something in the registry is damaged and was skipped; the message names the file."""


# ------------------------------------------------------------------------------------------- where the registry is


def default_root(start: str | os.PathLike | None = None) -> tuple[Path, str]:
    """(registry folder, why): $NBKIT_RUNS; else `runs/` in the nearest folder upwards holding pyproject.toml (the
    project), else the nearest existing `runs/` upwards; else ./runs. So Jupyter in notebooks/ and a terminal at
    the repository root find the same registry.

    Example: cwd /home/me/nbkit/notebooks, with /home/me/nbkit/pyproject.toml -> /home/me/nbkit/runs
    """
    if os.environ.get("NBKIT_RUNS"):
        return Path(os.environ["NBKIT_RUNS"]).expanduser(), "$NBKIT_RUNS"
    here = Path(start or Path.cwd()).resolve()
    folders = [here, *here.parents]
    for d in folders:
        if (d / "pyproject.toml").is_file():
            return d / "runs", f"the project at {d}"
    for d in folders:
        if (d / "runs").is_dir():
            return d / "runs", f"the nearest existing runs/ (in {d})"
    return here / "runs", "the current folder (no project found upwards)"


def describe(root: str | os.PathLike | None = None) -> str:
    """One line for notebooks and logs, e.g. "run registry: /home/me/nbkit/runs (the project at ...; 12 runs)"."""
    return Registry(root).describe()


# --------------------------------------------------------------------------------------------------- small helpers


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


# ------------------------------------------------------------------------------------------------------------ runs


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
    base_model: dict = field(
        default_factory=dict
    )  # adapters: {"name": nbkit's name, "peft": peft's, "run": ...}

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
        """The logged rows. A line that does not parse (a crash mid-append tears the last one) is skipped with a
        RegistryWarning naming the file."""
        f = self.path / METRICS_FILE
        if not f.exists():
            return []
        lines = [line for line in f.read_text(errors="replace").splitlines() if line.strip()]
        rows, bad = [], []
        for i, line in enumerate(lines, 1):
            try:
                rows.append(json.loads(line))
            except ValueError:
                bad.append(i)
        if bad:
            which = "its last line, torn by a crash mid-write" if bad == [len(lines)] else f"lines {bad}"
            warnings.warn(f"{f}: ignored {which}", RegistryWarning, stacklevel=2)
        return rows

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
        try:
            self.path.mkdir(parents=True)
        except OSError as e:
            raise io_error(e, registry.root, "write the run registry at") from None
        self.record = {
            "name": name,
            "kind": kind,
            "config": config,
            "parent": parent,
            "created": time.time(),
            "hardware": hardware(),
            "summary": {},
            "adapter": False,
            "writer": writer_identity(),
        }
        self._flush()  # the writer is on record before anything else can fail
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
            # the run's own folder (offline-run-*): moved aside with this run if it never registers
            self.record["wandb"] = {
                "mode": mode,
                "id": self._wandb.id,
                "dir": str(Path(self._wandb.dir).parent),
            }
        self._flush()

    def _flush(self) -> None:
        atomic_write(self.path / RUN_FILE, json.dumps(self.record, indent=1, default=json_default))

    def log(self, metrics: dict, step: int | None = None) -> None:
        row = {"step": step, **metrics} if step is not None else dict(metrics)
        with open(self.path / METRICS_FILE, "a") as f:
            f.write(json.dumps(row, default=json_default) + "\n")
        if self._wandb is not None:
            scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            self._wandb.log(scalars, step=step)

    def set_summary(self, **values) -> None:
        self.record["summary"].update(values)
        self._flush()

    def save_model(self, model, tokenizer=None) -> Path:
        """Save a full checkpoint or, for a peft model, just the adapter. An adapter names its base the way plain
        peft resolves it (a hub id or an absolute checkpoint path); nbkit's own name for it goes to run.json."""
        ckpt = self.path / "checkpoint"
        peft_configs = getattr(model, "peft_config", None)
        if isinstance(peft_configs, dict) and peft_configs:
            base = self._adapter_base(next(iter(peft_configs.values())).base_model_name_or_path)
            before = {k: c.base_model_name_or_path for k, c in peft_configs.items()}
            for c in peft_configs.values():  # peft writes this, and looks the base up by it while saving
                c.base_model_name_or_path = base["peft"]
            try:
                model.save_pretrained(ckpt, safe_serialization=True)
            finally:
                for k, c in peft_configs.items():
                    c.base_model_name_or_path = before[k]
            self.record["base_model"] = base
        else:
            model.save_pretrained(ckpt, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(ckpt)
        self.record["adapter"] = (ckpt / "adapter_config.json").exists()
        self._flush()
        return ckpt

    def _adapter_base(self, recorded: str | None) -> dict:
        """nbkit's name for the model an adapter sits on, peft's name for it, and the run that holds it. That model
        is the parent run's (e.g. a warm-started checkpoint) rather than the one the peft model recorded."""
        from nbkit.models import portable_base

        parent = self.record["parent"]
        base = str(self.registry.get(parent).model_source if parent else recorded)
        base = str(Path(base).resolve()) if Path(base).is_dir() else base
        base_run = parent if parent and self.registry.get(parent).checkpoint else None
        return {"name": base, "peft": portable_base(base), "run": base_run}

    def commit(self) -> Run:
        if self._wandb is not None:
            self._wandb.summary.update(
                {k: v for k, v in self.record["summary"].items() if isinstance(v, (int, float, str))}
            )
        if (self.path / "checkpoint").is_dir():
            parent = self.record["parent"]
            try:
                lineage = [r.name for r in self.registry.lineage(parent)] if parent else []
            except RunError:
                lineage = [parent]
            write_model_card(lineage, self.record, self.path / "checkpoint", self.path / METRICS_FILE)
        final = self.registry.root / self.name
        try:
            os.rename(self.path, final)
        except OSError as e:
            if not final.exists():
                self._finish_wandb(exit_code=1)
                raise io_error(e, final, "register the run at") from None
            self._lose_race()
            raise RunError(
                f"run {self.name!r} was registered by someone else meanwhile; this one is kept at {self.path} "
                "(`nbkit runs check --fix` moves it aside)"
            ) from None
        self._finish_wandb()
        return self.registry.get(self.name)

    def _lose_race(self) -> None:
        """The loser of a name race: its wandb run ends as failed, and an offline one moves into the kept folder,
        so that `wandb sync runs/.wandb/wandb/offline-run-*` does not upload a run the registry does not hold."""
        self.record["lost_race"] = True
        self._flush()
        wandb_dir = Path(self.record["wandb"]["dir"]) if "wandb" in self.record else None
        if self._wandb is not None:
            self._wandb.tags = (*self._wandb.tags, "lost-name-race")
        self._finish_wandb(exit_code=1)
        if wandb_dir is not None and wandb_dir.is_dir() and self.record["wandb"]["mode"] == "offline":
            shutil.move(str(wandb_dir), str(self.path / wandb_dir.name))

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


def config_diff(old: dict, new: dict, ignore=()) -> list[str]:
    """The keys both configs hold whose values differ (compared as JSON, as the registry stores them), sorted.

    Example: config_diff({"steps": 30, "lr": 1e-4}, {"steps": 20, "lr": 1e-4, "profile": "cpu"}) -> ["steps"]
    (a key only one side has, e.g. a field added since, is not a difference).
    """
    new = json.loads(json.dumps(new, default=json_default))
    return sorted(k for k in old.keys() & new.keys() if k not in ignore and old[k] != new[k])


def run_name(*parts) -> str:
    """The one naming scheme of experiment runs: "{profile}-{experiment or arm name}-{stage}", empty parts left out.

    Example: run_name("cpu", "star", "iter1") -> "cpu-star-iter1"; run_name("cpu", "budget-1db001", "sft4", "dpo28")
    -> "cpu-budget-1db001-sft4-dpo28". The model an experiment starts from is `base_run(registry, model)`.
    """
    return "-".join(str(p) for p in parts if p not in (None, ""))


def base_run_name(model: str) -> str:
    """The name of the "base" run of `model`. Example: "Qwen/Qwen2.5-0.5B-Instruct" -> "base-Qwen-Qwen2.5-0.5B-Instruct" """
    import re

    return "base-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", str(model)).strip("-.")


def base_run(registry: Registry, model: str) -> str:
    """The base run of `model` (`base_run_name`), registered if missing: the root of every lineage that starts from
    that model, shared by all experiments. Under several processes only the main one registers it; every one gets
    the name."""
    from nbkit import dist

    name = base_run_name(model)
    if dist.is_main() and not registry.exists(name):
        try:
            with registry.create(name, kind="base", config={"model": model}, tracking="off"):
                pass
        except NbkitError:
            if not registry.exists(name):  # another process registering it meanwhile is fine
                raise
    return name


class NullRun:
    """A RunWriter that writes nothing, for processes other than the main one: they train along (the trainer's
    collectives need every rank) but only the main process records (as nanochat's DummyWandb). Its `path` is a
    scratch folder for files a stage writes beside a run."""

    def __init__(self):
        import tempfile
        from pathlib import Path

        self.path = Path(tempfile.mkdtemp(prefix="nbkit-rank-"))

    def log(self, *args, **kwargs) -> None:
        pass

    def set_summary(self, **kwargs) -> None:
        pass

    def save_model(self, *args, **kwargs) -> None:
        pass

    def __enter__(self) -> NullRun:
        return self

    def __exit__(self, *exc) -> None:
        pass


class Registry:
    def __init__(self, root: str | os.PathLike | None = None, project: str = "nbkit"):
        if root:
            self.root, self.why = Path(root).expanduser(), "given"
        else:
            self.root, self.why = default_root()
        self.project = project

    def describe(self) -> str:
        n = len(self.names())
        return f"run registry: {self.root.resolve()} ({self.why}; {n} run{'s' * (n != 1)})"

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
        """Start writing a run. A run at the root of a lineage (no parent) may name its model in config["model"];
        that model is checked first (`nbkit.models.check`, which loads nothing), so that no run is started for a
        folder that is not a model."""
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
        if parent is None and config and isinstance(config.get("model"), str):
            from nbkit.models import check

            check(config["model"])
        return RunWriter(self, name, kind, dict(config or {}), parent, tracking, self.project)

    def reuse(self, name: str, config: dict, ignore=()) -> Run | None:
        """The finished run `name` if it was made with `config` (keys in `ignore` may differ), None if there is
        none; a run of that name made with another config is refused, in one line that says what differs."""
        if not self.exists(name):
            return None
        run = self.get(name)
        old = run.config
        diff = config_diff(old, config, ignore)
        if diff:
            new = json.loads(json.dumps(config, default=json_default))
            what = "; ".join(f"{k}: {old[k]!r} there, {new[k]!r} now" for k in diff)
            raise RunError(
                f"run {name!r} exists with a different config ({what}); give this run another name, or delete "
                f"the old one (Registry.delete({name!r}))"
            )
        return run

    def writer(
        self, name: str, kind: str, config: dict, parent: str | None = None, **kwargs
    ) -> RunWriter | NullRun:
        """`create(...)` on the main process, a NullRun on the others (under several processes only the main one
        writes the registry)."""
        from nbkit import dist

        return self.create(name, kind, config, parent, **kwargs) if dist.is_main() else NullRun()

    def ensure(
        self,
        name: str,
        kind: str,
        config: dict,
        build,
        parent: str | None = None,
        *,
        ignore=(),
        everyone=True,
    ) -> Run:
        """The finished run `name`, reused when it was made with `config` (refused in one line when it was not), or
        built now: `build(writer)` fills a new run, which the main process commits. The one way every experiment
        reuses or builds a stage.

        everyone: every process runs `build` (training: the trainer's collectives need them all; the others get a
        NullRun); else the main process builds alone and the others wait for it (e.g. drawing data).
        Example: reg.ensure("cpu-sft", "sft", {"lr": 1e-4}, lambda w: w.set_summary(loss=0.5), parent="base")
        """
        from nbkit import dist

        # the main process decides: every rank takes the same branch
        if not dist.broadcast(self.exists(name)):
            if dist.is_main() or everyone:
                with self.writer(name, kind, config, parent) as w:
                    build(w)
            dist.barrier()  # the main process has committed the run
        return self.reuse(name, config, ignore)

    def get(self, name: str) -> Run:
        path = self.root / name
        if not (path / RUN_FILE).exists():
            known = ", ".join(self.names()) or "none"
            raise RunError(f"no run named {name!r} in {self.root} (runs: {known})")
        try:
            rec = read_record(path)
        except RunError as e:
            raise RunError(
                f"run {name!r} at {path} is damaged: {e}; `nbkit runs check --fix` moves it aside"
            ) from None
        return Run(
            name=name,
            kind=rec["kind"],
            path=path,
            config=rec.get("config", {}),
            parent=rec.get("parent"),
            created=rec.get("created", 0.0),
            hardware=rec.get("hardware", {}),
            summary=rec.get("summary", {}),
            adapter=rec.get("adapter", False),
            base_model=rec.get("base_model", {}),
        )

    def folders(self) -> list[Path]:
        try:
            return sorted(p for p in self.root.iterdir() if not p.name.startswith(".") and p.is_dir())
        except FileNotFoundError:
            return []
        except OSError as e:
            raise io_error(e, self.root, "read the run registry at") from None

    def names(self) -> list[str]:
        """Every registered name, damaged runs included (their names are taken)."""
        return [p.name for p in self.folders() if (p / RUN_FILE).exists()]

    def damaged(self) -> list[Problem]:
        """Runs whose run.json cannot be read, with the reason; folders without a run.json too."""
        return runcheck.damaged(self)

    def list(self) -> list[Run]:
        """The readable runs, oldest first. Each damaged one is skipped with a RegistryWarning."""
        runs = []
        for name in self.names():
            try:
                runs.append(self.get(name))
            except RunError as e:
                warnings.warn(f"skipped: {e}", RegistryWarning, stacklevel=2)
        return sorted(runs, key=lambda r: r.created)

    def lineage(self, name: str) -> list[Run]:
        """The chain from the root ancestor down to `name`, e.g. [base, sft, dpo]. A missing or damaged ancestor
        ends the chain (e.g. a run imported with --no-parents)."""
        chain, seen = [self.get(name)], {name}
        while chain[-1].parent is not None and chain[-1].parent not in seen:
            seen.add(chain[-1].parent)
            try:
                chain.append(self.get(chain[-1].parent))
            except RunError:
                break
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

    # ------------------------------------------------------------------------------------------------ check / fix

    def pending(self) -> list[Problem]:
        """Every entry of .pending/: "live" (its writer runs), "stale" (its writer is gone, or it lost a name race),
        or "unknown" (written on another host)."""
        return runcheck.pending(self)

    def check(self) -> list[Problem]:
        """Damaged runs and .pending/ entries (live ones included, so that the report shows them)."""
        return self.damaged() + self.pending()

    def fix(self, problems: list[Problem] | None = None) -> list[tuple[Problem, Path]]:
        """Move damaged runs and stale pending work (with its wandb offline folder) to runs/.aside/. Deletes
        nothing; returns (problem, where it went)."""
        return runcheck.fix(self, self.check() if problems is None else problems)

    def table(self):
        """A pandas DataFrame with one row per readable run."""
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
