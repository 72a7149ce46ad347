"""Who votes in the arena: personal join codes handed out by the instructor, behind the room password.

The room password keeps strangers out, but the whole class shares it, so it says nothing about who votes. With
join codes each attendee types their own code once (the page remembers it); every round and vote is stored with
the attendee's name (the `attendee` column of nbkit.serve.arena.VoteStore), the vote cap counts per attendee
across sessions and addresses, and the vote audit and the DPO export can count, flag and leave out voters.
Without codes a typed name is stored instead: good for counting, no defence against someone who types a new name
for every vote (the per-session and per-address caps still hold).

    codes = Attendees.load("runs/arena-codes.tsv", "30")         # attendee-01 .. attendee-30, one code each
    codes = Attendees.load("runs/arena-codes.tsv", "names.txt")  # one code per name in the file
    codes.resolve("k7mq-3x9v")     # -> "attendee-07"; ArenaError for an unknown code
    Attendees().resolve("Ana")     # no codes: the typed name, "Ana"
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from nbkit.serve.arena import ArenaError
from nbkit.serve.limits import RateLimiter

ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud or copied from paper
MAX_NAME = 40


def new_code(rng=secrets) -> str:
    """Eight characters in two groups, ~40 bits. Example: "k7mq-3x9v"."""
    chars = "".join(rng.choice(ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


def normalize(code) -> str:
    """What a typed code is compared as. Example: " K7MQ 3x9v " -> "k7mq3x9v"."""
    return re.sub(r"[\s\-]", "", str(code or "")).lower()


class Attendees:
    """Join code -> attendee name. Empty (no codes): a typed name is taken as it is, and may be empty."""

    def __init__(self, codes: dict[str, str] | None = None, wrong_per_minute: int = 10):
        self.names = {normalize(c): n for c, n in (codes or {}).items()}
        self.wrong = RateLimiter(wrong_per_minute, "wrong join codes")

    @property
    def required(self) -> bool:
        return bool(self.names)

    @classmethod
    def load(cls, path: str | Path, spec: str | int | None) -> Attendees:
        """Codes for `spec` (a number of attendees, or a file with one name per line), kept in `path` (tab
        separated name, code; readable by its owner only). A restart reuses the codes already in `path`, so
        the slips handed out stay valid; names not there yet get new codes."""
        if not spec:
            return cls()
        spec = str(spec)
        if spec.isdigit():
            n = int(spec)
            names = [f"attendee-{i:0{max(2, len(str(n)))}d}" for i in range(1, n + 1)]
        else:
            source = Path(spec).expanduser()
            if not source.is_file():
                raise ArenaError(f"--join-codes {spec}: give a number of attendees or a file of names")
            names = [x.strip()[:MAX_NAME] for x in source.read_text().splitlines() if x.strip()]
        if not names:
            raise ArenaError(f"--join-codes {spec}: no attendees")
        path = Path(path).expanduser()
        known = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                name, _, code = line.partition("\t")
                if code:
                    known[name] = code
        codes = {name: known.get(name) or new_code() for name in dict.fromkeys(names)}
        if codes.keys() - known.keys():
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = {**known, **codes}
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.writelines(f"{name}\t{code}\n" for name, code in rows.items())
        return cls({code: name for name, code in codes.items()})

    def resolve(self, text, address: str = "") -> str:
        """The attendee for what was typed in the join box. With codes: the code's name, or ArenaError (and
        past 10 wrong codes a minute from one address, LimitError). Without: the typed name ("" = anonymous)."""
        typed = re.sub(r"[\x00-\x1f\x7f]", "", str(text or "")).strip()
        if not self.required:
            return typed[:MAX_NAME]
        if not typed:
            raise ArenaError("Type your join code (the one your instructor gave you) in the box above first.")
        if not self.wrong.allowed(address):
            self.wrong.hit(address)  # raises LimitError with the wait
        name = self.names.get(normalize(typed))
        if name is None:
            self.wrong.hit(address)
            raise ArenaError(
                "This join code is unknown here: check it against your slip, or ask the instructor."
            )
        return name
