"""What a crash, a kill or a full disk leaves in a run registry, and moving it aside (`nbkit runs check [--fix]`).

- A damaged run: its run.json does not parse (truncated), or a folder in the registry has none.
- Pending work: .pending/<name>-<id>/ is a run being written. Its run.json records the writer (host, pid, and the
  process's start time, since a pid is reused after its process dies). The entry is "live" while that process runs,
  "stale" once it is gone, or when it lost a name race; "unknown" when it was written on another host.
- `fix` moves damaged runs and stale entries to runs/.aside/, a stale entry with its wandb offline run folder, so
  that `wandb sync` never uploads a run the registry does not hold. Nothing is deleted.

Use it through the registry: `Registry().check()`, `Registry().fix()`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from nbkit.errors import RunError
from nbkit.files import io_error

RUN_FILE = "run.json"

ASIDE = ".aside"  # where `fix` moves damaged runs and stale pending work


@dataclass
class Problem:
    """Something `Registry.check` found: kind is "damaged" (a run), "stale" (pending work of a dead process),
    "live" (pending work of a running process) or "unknown" (pending work from another host)."""

    kind: str
    path: Path
    reason: str
    wandb_dir: Path | None = None  # a stale run's wandb offline folder, moved aside with it

    def line(self) -> str:
        return f"{self.kind:8s} {self.path}: {self.reason}"


def _proc_start(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (Linux), or None if it is gone or unknowable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of proc(5); the name in (...) may hold spaces


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def writer_identity() -> dict:
    """Who is writing a run: the pid alone could be reused after the process dies; pid + start time cannot."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start": _proc_start(os.getpid()),
        "boot": _boot_id(),
    }


def writer_alive(writer: dict) -> bool | None:
    """True if the process that wrote `writer_identity()` still runs, False if it is gone, None if unknowable
    (another host)."""
    if writer.get("host") != socket.gethostname():
        return None
    if writer.get("boot") and _boot_id() and writer["boot"] != _boot_id():
        return False  # rebooted since
    if writer.get("start") is None:  # no /proc: the pid alone
        try:
            os.kill(int(writer["pid"]), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, KeyError, ValueError):
            return None
        return True
    return _proc_start(int(writer["pid"])) == writer["start"]


def damaged(reg) -> list[Problem]:
    """Runs whose run.json cannot be read, with the reason; folders without a run.json too."""
    out = []
    for p in reg.folders():
        if not (p / RUN_FILE).exists():
            out.append(Problem("damaged", p, "no run.json (not a run, or its run.json was lost)"))
            continue
        try:
            read_record(p)
        except RunError as e:
            out.append(Problem("damaged", p, str(e)))
    return out


def pending(reg) -> list[Problem]:
    """Every entry of .pending/: "live" (its writer runs), "stale" (its writer is gone, or it lost a name race),
    or "unknown" (written on another host)."""
    out = []
    pending = reg.root / ".pending"
    for p in sorted(pending.iterdir()) if pending.is_dir() else []:
        try:
            rec = json.loads((p / RUN_FILE).read_text())
            writer, wandb_dir = rec.get("writer"), rec.get("wandb", {}).get("dir")
        except (OSError, ValueError, AttributeError):
            rec, writer, wandb_dir = {}, None, None
        wandb_dir = Path(wandb_dir) if wandb_dir and Path(wandb_dir).is_dir() else None
        age = time.time() - p.stat().st_mtime
        if p.name.startswith("deleted-"):
            out.append(Problem("stale", p, "a deleted run whose removal was interrupted"))
        elif rec.get("lost_race"):
            out.append(Problem("stale", p, "lost a name race to the registered run", wandb_dir))
        elif writer is None:
            kind = "stale" if age > 60 else "live"
            out.append(Problem(kind, p, "no writer recorded (an older nbkit, or just starting)", wandb_dir))
        else:
            alive = writer_alive(writer)
            who = f"pid {writer.get('pid')} on {writer.get('host')}"
            if alive is None:
                out.append(Problem("unknown", p, f"written by {who} (another host): left alone"))
            elif alive:
                out.append(Problem("live", p, f"being written by {who}"))
            else:
                out.append(Problem("stale", p, f"its writer ({who}) is gone: killed or crashed", wandb_dir))
    return out


def fix(reg, problems: list[Problem]) -> list[tuple[Problem, Path]]:
    """Move the damaged runs and stale pending work among `problems` (with their wandb offline folders) to
    runs/.aside/. Deletes nothing; returns (problem, where it went)."""
    moved = []
    for pr in problems:
        if pr.kind not in {"damaged", "stale"} or not pr.path.exists():
            continue
        dest = reg.root / ASIDE / f"{time.strftime('%Y%m%d-%H%M%S')}-{pr.path.name}"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(pr.path, dest)
            if pr.wandb_dir is not None and pr.wandb_dir.is_dir():
                shutil.move(str(pr.wandb_dir), str(dest / pr.wandb_dir.name))
        except OSError as e:
            raise io_error(e, pr.path, "move aside") from None
        moved.append((pr, dest))
    return moved


def read_record(path: Path) -> dict:
    """run.json as a dict; RunError with the reason when it cannot be read."""
    f = path / RUN_FILE
    try:
        rec = json.loads(f.read_text())
    except OSError as e:
        raise RunError(f"run.json cannot be read ({e.strerror})") from None
    except ValueError as e:
        raise RunError(f"run.json is not valid JSON ({e}); truncated by a crash or a full disk?") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("kind"), str):
        raise RunError("run.json has no 'kind'")
    return rec
