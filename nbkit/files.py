"""Small file helpers the registry and its exports share: JSON lines, an atomic write, one-line I/O errors."""

from __future__ import annotations

import errno
import json
import os
import uuid
from pathlib import Path

from nbkit.errors import RunError


def json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    return str(o)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The rows of a JSON-lines file (blank lines skipped), e.g. a run's eval.jsonl."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_jsonl(path: str | os.PathLike, rows) -> None:
    """One JSON object per line (numpy/torch scalars, paths and dataclasses as the registry stores them)."""
    Path(path).write_text("".join(json.dumps(r, default=json_default) + "\n" for r in rows))


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)


def io_error(e: OSError, path: Path, doing: str) -> RunError:
    """One line for an OSError on the registry: the path, the reason, and what to do."""
    where = "choose another registry folder with --runs DIR or $NBKIT_RUNS"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = f"you cannot write there; {where}, or fix its permissions"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), path)
        hint = f"{blocker} is a file, not a folder; {where}"
    elif e.errno == errno.ENOSPC:
        hint = "the disk is full; free some space"
    elif e.errno == errno.ENOENT:
        hint = f"that folder cannot be created there; {where}"
    else:
        hint = where
    return RunError(f"cannot {doing} {path}: {e.strerror or e}; {hint}")
