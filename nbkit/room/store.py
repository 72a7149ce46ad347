"""Where a room keeps its submissions: one file per laptop and notebook, written atomically, never a shared file.

    room/                      the room's folder (`nbkit room --folder`, default ./room)
      notebooks/01/<laptop>.json   the latest submission of notebook 01 from that laptop
      inbox/                   the offline path: submission files (or plain summary.json files) copied from a USB stick
      exports/                 pooled CSV and PNG figures

<laptop> is a hash of the laptop's id (the id itself, which only the laptop knows, is never stored or shown). A
second submission from the same laptop replaces its first (os.replace), so a laptop never counts twice; a replayed
submission (the same one again, or one older than what is stored) is refused and changes nothing. Every check runs
before the first write, so a refused submission stores nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from pathlib import Path

from nbkit.files import atomic_write
from nbkit.room.schema import MAX_BYTES, VERSION, RoomError, check, loads, parse

# what a stored entry keeps from the summary around its notebook
SUMMARY_KEYS = ("profile", "date", "machine", "versions")


def laptop_key(laptop_id: str) -> str:
    """The name a laptop's files have in the room: 16 hex digits of its id's hash (the id stays secret)."""
    return hashlib.sha256(laptop_id.encode()).hexdigest()[:16]


class Room:
    """A room's submissions on disk. `store(submission)` validates and writes one; `entries()` reads them back as
    one dict per laptop and notebook (what nbkit.room.pool pools)."""

    def __init__(self, folder: str | Path = "room", max_bytes: int = MAX_BYTES):
        self.folder, self.max_bytes = Path(folder), max_bytes
        self.inbox = self.folder / "inbox"
        self.exports = self.folder / "exports"
        self._lock = threading.Lock()  # the replay check and the write happen as one step

    def store(self, data: dict, received: float | None = None) -> dict:
        """Check `data` (a parsed submission), refuse a replay, then write one file per notebook it holds.
        Returns {"laptop": key, "name", "notebooks": [...], "replaced": [...]}; RoomError if refused."""
        check(data)
        key, laptop = laptop_key(data["laptop"]["id"]), data["laptop"]
        summary = data["summary"]
        common = {k: summary[k] for k in SUMMARY_KEYS if k in summary}
        entries = {
            nn: {
                "nbkit_room": VERSION,
                "laptop": {"key": key, "name": laptop["name"]},
                "submission": data["submission"],
                "sent": data["sent"],
                "received": received or time.time(),
                **common,
                "notebook": {**nb, "notebook": nn},
            }
            for nn, nb in summary["notebooks"].items()
        }
        with self._lock:
            stored = {nn: self._read(self._path(nn, key)) for nn in entries}
            for nn, old in stored.items():
                if old and (old["submission"] == data["submission"] or old["sent"] >= data["sent"]):
                    what = "this submission" if old["submission"] == data["submission"] else "a newer one"
                    raise RoomError(
                        f"replayed submission: the room already holds {what} of notebook {nn} from "
                        f"{laptop['name']!r}; nothing stored",
                        status=409,
                    )
            for nn, entry in entries.items():
                path = self._path(nn, key)
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(path, json.dumps(entry))
        return {
            "laptop": key,
            "name": laptop["name"],
            "notebooks": sorted(entries),
            "replaced": sorted(nn for nn, old in stored.items() if old),
        }

    def store_bytes(self, body: bytes) -> dict:
        return self.store(parse(body, self.max_bytes))

    def entries(self, notebook: str | None = None) -> list[dict]:
        """Every stored entry (of `notebook` if given), oldest first."""
        pattern = f"{notebook}/*.json" if notebook else "*/*.json"
        found = [e for p in (self.folder / "notebooks").glob(pattern) if (e := self._read(p))]
        return sorted(found, key=lambda e: e["received"])

    def read_inbox(self, folder: str | Path | None = None) -> tuple[list[str], list[str]]:
        """The offline path: store every file of `folder` (default the inbox) that is a submission or a plain
        summary.json. Files are left where they are (a USB stick may be read-only); one already stored is
        skipped. Returns (stored lines, refused lines), one per file."""
        folder = Path(folder) if folder else self.inbox
        stored, refused = [], []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                out = self.store_file(path)
                stored.append(f"{path.name}: {out['name']} {', '.join(out['notebooks'])}")
            except RoomError as e:
                if e.status != 409:  # already stored: nothing to say
                    refused.append(f"{path.name}: {e}")
            except OSError as e:
                refused.append(f"{path.name}: not a readable submission ({type(e).__name__}: {str(e)[:80]})")
        return stored, refused

    def store_file(self, path: str | Path, name: str | None = None) -> dict:
        """Store one file: a submission (`nbkit room submit --to FOLDER` writes them) or a plain summary.json
        (its laptop called `name`, else the file's name). RoomError (or OSError) if refused; returns what `store`
        returns."""
        path = Path(path)
        if path.stat().st_size > self.max_bytes:
            raise RoomError(f"too large ({path.stat().st_size:,} bytes; at most {self.max_bytes:,})")
        body = path.read_bytes()
        data = loads(body, self.max_bytes)
        if isinstance(data, dict) and "nbkit_room" not in data and "notebooks" in data:
            data = from_summary_file(data, body, path, name)
        return self.store(data)

    def _path(self, notebook: str, key: str) -> Path:
        return self.folder / "notebooks" / notebook / f"{key}.json"

    @staticmethod
    def _read(path: Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None


def from_summary_file(summary: dict, body: bytes, path: Path, name: str | None = None) -> dict:
    """A plain summary.json dropped in the inbox, as a submission: its laptop is the file's content hash (the same
    file twice counts once) and its name `name`, else the file's name. `nbkit room submit FILE --to FOLDER` writes a
    proper submission instead, which carries the laptop's id, so that a later file replaces an earlier one."""
    digest = hashlib.sha256(body).hexdigest()[:32]
    return {
        "nbkit_room": VERSION,
        "laptop": {"id": digest, "name": re.sub(r"[^\w. -]+", "-", name or path.stem)[:40] or "summary"},
        "submission": digest,
        "sent": path.stat().st_mtime,
        "summary": summary,
    }
