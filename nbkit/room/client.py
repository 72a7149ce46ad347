"""The laptop's side: send a notebook's results (or a report's summary.json) to the instructor's room.

    from nbkit import room
    room.submit(part)                                   # in a notebook: `part = summary.record(...)`
    nbkit room submit reports/cpu/summary.json --to http://10.0.0.5:7870 --key tulip-42    # from a terminal
    nbkit room submit reports/cpu/summary.json --to /media/usb/room                       # offline: a file

Where it goes: `to`, else $NBKIT_ROOM: a room's address (http://...) or a folder (a USB stick the instructor reads).
With neither, nothing is sent and one line says how. The room's key (`key`, else $NBKIT_ROOM_KEY) is what the
instructor gives the room; the page itself needs the instructor's password.

The laptop's id is a random number made once and kept in ~/.config/nbkit/laptop-id ($NBKIT_LAPTOP_ID overrides
it): the room stores one submission per laptop and notebook, so sending again replaces the first. Its name is
`name`, else $NBKIT_NAME, else NBKIT_SEED when that is a name, else the computer's name.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
import uuid
from pathlib import Path

from nbkit.room.schema import VERSION, RoomError, check

ROOM_ENV, KEY_ENV, NAME_ENV, ID_ENV = "NBKIT_ROOM", "NBKIT_ROOM_KEY", "NBKIT_NAME", "NBKIT_LAPTOP_ID"
SUBMIT_PATH = "/room/submit"


def laptop_id() -> str:
    """This laptop's id: 32 hex digits, made once and kept (or $NBKIT_LAPTOP_ID)."""
    if os.environ.get(ID_ENV):
        return re.sub(r"[^0-9a-f]", "", os.environ[ID_ENV].lower()).rjust(32, "0")[:32]
    path = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "nbkit" / "laptop-id"
    try:
        found = path.read_text().strip()
        if re.fullmatch("[0-9a-f]{32}", found):
            return found
    except OSError:
        pass
    new = secrets.token_hex(16)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new + "\n")
    except OSError:  # a read-only home: this process keeps one id, a later one makes another
        pass
    return new


def laptop_name(name: str | None = None) -> str:
    seed = os.environ.get("NBKIT_SEED", "").strip()
    chosen = (
        name
        or os.environ.get(NAME_ENV)
        or (seed if seed and not seed.isdigit() else "")
        or socket.gethostname()
    )
    return re.sub(r"[\x00-\x1f\x7f<>&]+", "", chosen).strip()[:40] or "laptop"


def as_summary(what) -> dict:
    """A report's summary (a dict with "notebooks", or the path of a summary.json) or one notebook's part (what
    `summary.record` returns), as a summary."""
    if isinstance(what, (str, os.PathLike)):
        path = Path(what)
        try:
            what = json.loads(path.read_text())
        except FileNotFoundError:
            raise RoomError(
                f"{path} does not exist: `nbkit report --profile cpu` writes reports/cpu/summary.json"
            ) from None
        except (OSError, ValueError) as e:
            raise RoomError(f"cannot read {path} as a summary: {e}") from None
    if not isinstance(what, dict):
        raise RoomError(f"expected a summary or a notebook's part (a dict), got {type(what).__name__}")
    if "notebooks" in what:
        return what
    if "notebook" in what:  # one notebook's part
        part = {k: v for k, v in what.items() if k != "machine"}
        return {
            "profile": what.get("profile"),
            "machine": what.get("machine") or {},
            "notebooks": {what["notebook"]: part},
        }
    raise RoomError(
        "not a summary: it has neither 'notebooks' (summary.json) nor 'notebook' (a notebook's part)"
    )


def envelope(what, name: str | None = None) -> dict:
    """The submission of `what` from this laptop, checked as the room will check it (RoomError if it would be
    refused)."""
    summary = as_summary(what)
    data = {
        "nbkit_room": VERSION,
        "laptop": {"id": laptop_id(), "name": laptop_name(name)},
        "submission": uuid.uuid4().hex,
        "sent": time.time(),
        "summary": summary,
    }
    return check(data)


def submit(what, to: str | None = None, key: str | None = None, name: str | None = None, timeout: float = 60):
    """Send `what` (a summary.json path or dict, or a notebook's part) to the room at `to` (else $NBKIT_ROOM): an
    http(s) address, or a folder where a file is written. Without a room, says how to set one and returns None.
    Returns the room's answer (a dict), or the file written. RoomError, in one line, when the room refuses."""
    to = to or os.environ.get(ROOM_ENV)
    if not to:
        print(
            f"not sent: no room set. Set {ROOM_ENV} to your instructor's room address (and {KEY_ENV} to its key), "
            f"or run `nbkit room submit reports/<profile>/summary.json --to ADDRESS` later."
        )
        return None
    data = envelope(what, name)
    body = json.dumps(data).encode()
    if not re.match(r"https?://", to):
        folder = Path(to)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{data['laptop']['id'][:8]}-{int(data['sent'])}.json"
        path.write_bytes(body)
        print(
            f"written {path}: give this file to your instructor (it replaces any earlier one from this laptop)"
        )
        return path
    return post(to, body, key or os.environ.get(KEY_ENV) or "", timeout)


def post(url: str, body: bytes, key: str, timeout: float = 60) -> dict:
    import httpx

    try:
        r = httpx.post(
            url.rstrip("/") + SUBMIT_PATH,
            content=body,
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {key}"} if key else {}),
            timeout=timeout,
        )
    except httpx.HTTPError as e:
        raise RoomError(f"cannot reach the room at {url}: {type(e).__name__}: {e}") from None
    try:
        answer = r.json()
    except ValueError:
        answer = {"error": r.text[:200]}
    if r.status_code != 200:
        raise RoomError(f"the room refused: {answer.get('error', r.status_code)}", status=r.status_code)
    print(answer["message"])
    return answer
