"""The room as a lab: every laptop runs the same notebook with its own seed (NBKIT_SEED), sends its results to the
instructor, and the room pools them into a replication study: is the paper's effect robust, or did one seed get
lucky? (docs/workshop.md, "The room as a replication study").

    client.py   the laptop's side: `submit(part or summary.json)` over HTTP, or as a file for a USB stick
    schema.py   what a room accepts: one JSON Schema, a size cap, numbers in range; RoomError otherwise
    store.py    one file per laptop and notebook, written atomically; a resend replaces, a replay is refused
    pool.py     random-effects pooling of each claim across laptops, curves and their median, minutes per stage
    plots.py    the room's figures (claims as dots with intervals, curves overlaid, minutes by CPU) and exports

The instructor's page and its HTTP endpoint are in nbkit/serve/room.py (`nbkit room`).

    from nbkit import room
    room.submit(part)       # sends to $NBKIT_ROOM with $NBKIT_ROOM_KEY; without a room, says how and sends nothing
"""

from nbkit.room.client import submit
from nbkit.room.schema import RoomError
from nbkit.room.store import Room

__all__ = ["Room", "RoomError", "submit"]
