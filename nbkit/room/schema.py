"""What a room accepts: one JSON Schema for a submission, its size cap, and the checks a schema cannot say.

A submission is an envelope around a report's summary (nbkit/workshop/summary.py):

    {"nbkit_room": 1,
     "laptop": {"id": "<32 hex, kept on the laptop>", "name": "Ada"},
     "submission": "<32 hex, new for every send>", "sent": 1764640000.0,
     "summary": {"profile": "cpu", "machine": {...}, "versions": {...},
                 "notebooks": {"01": {"minutes": 11.9, "replicate_key": "3fa2c1", "seed": 7, "claims": [...],
                                      "values": {...}, "curves": {...}}}}}

Everything a client sends is bounded: the body's bytes, every string's length, every list's and mapping's size, and
every number (finite, within a range; intervals with lo <= hi). A refusal is one RoomError line that names the field,
e.g. "summary.notebooks.01.claims.0.effect: 1e+300 is greater than the maximum of 1000000.0".
"""

from __future__ import annotations

import json

import jsonschema  # nbformat's dependency, so nbkit's

from nbkit.errors import NbkitError

MAX_BYTES = 256 * 1024  # the reference cpu summary of four notebooks is 11 kB
VERSION = 1
VERDICTS = ["AGREES", "DEPARTS", "INCONCLUSIVE", "NOT CHECKED"]
BIG = 1e6  # any measured number: accuracies, rewards, minutes, counts, effects


class RoomError(NbkitError):
    """A submission the room refuses (malformed, too big, out of range, replayed, unauthenticated, too frequent);
    the message says which part and why. `status` is the HTTP status the room answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _num(lo=-BIG, hi=BIG, null=True) -> dict:
    kind = ["number", "null"] if null else "number"
    return {"type": kind, "minimum": lo, "maximum": hi}


def _text(n: int) -> dict:
    return {"type": "string", "maxLength": n, "pattern": r"^[^\x00-\x1f\x7f]*$"}


HEX = {"type": "string", "pattern": "^[0-9a-f]{6,64}$"}
SCALAR = {"anyOf": [_num(), _text(80), {"type": "boolean"}]}
SERIES = {"type": "array", "maxItems": 2000, "items": SCALAR}
CLAIM = {
    "type": "object",
    "required": ["claim", "verdict"],
    "additionalProperties": False,
    "properties": {
        "claim": _text(1000),  # a text claim says why it failed, e.g. "DEPARTS: no iteration finished (...)"
        "verdict": {"enum": [*VERDICTS, None]},
        "effect": _num(),
        "ci_lo": _num(),
        "ci_hi": _num(),
        "p": _num(0, 1),
        "n": {"type": ["integer", "null"], "minimum": 0, "maximum": 10**7},
        "n_needed": {"type": ["integer", "null"], "minimum": 0, "maximum": 10**12},
        "direction": {"enum": [1, -1, None]},
        "null": _num(),
    },
}
NOTEBOOK = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "notebook": {"type": "string", "pattern": "^[0-9]{2}$"},
        "minutes": _num(0, 10_000),
        "profile": {"type": ["string", "null"], "pattern": "^[a-z0-9_-]{1,20}$"},
        "config_hash": {"anyOf": [HEX, {"type": "null"}]},
        "replicate_key": {"anyOf": [HEX, {"type": "null"}]},
        "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**32},
        "claims": {"type": "array", "maxItems": 40, "items": CLAIM},
        "values": {
            "type": "object",
            "maxProperties": 400,
            "propertyNames": {"maxLength": 80},
            "additionalProperties": {"anyOf": [SCALAR, {"type": "array", "maxItems": 200, "items": SCALAR}]},
        },
        "curves": {
            "type": "object",
            "maxProperties": 16,
            "propertyNames": {"maxLength": 80},
            "additionalProperties": {
                "type": "object",
                "maxProperties": 2000,
                "propertyNames": {"maxLength": 80},
                "additionalProperties": {"anyOf": [SCALAR, SERIES]},
            },
        },
    },
}
LOAD = {"type": "array", "maxItems": 3, "items": _num(0, 10_000, null=False)}
MACHINE = {
    "type": "object",
    "maxProperties": 30,
    "properties": {
        "cpu": _text(120),
        "cores": {"type": ["integer", "null"], "minimum": 1, "maximum": 4096},
        "threads": {"type": ["integer", "null"], "minimum": 1, "maximum": 4096},
        "load_start": LOAD,
        "load_end": LOAD,
    },
    "additionalProperties": SCALAR,
}
SCHEMA = {
    "type": "object",
    "required": ["nbkit_room", "laptop", "submission", "sent", "summary"],
    "additionalProperties": False,
    "properties": {
        "nbkit_room": {"const": VERSION},
        "laptop": {
            "type": "object",
            "required": ["id", "name"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 40,
                    "pattern": r"^[^\x00-\x1f\x7f<>&]*$",
                },
            },
        },
        "submission": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "sent": {"type": "number", "minimum": 1.5e9, "maximum": 4e9},
        "summary": {
            "type": "object",
            "required": ["notebooks"],
            "properties": {
                "profile": {"type": ["string", "null"], "pattern": "^[a-z0-9_-]{1,20}$"},
                "date": {"anyOf": [_text(40), {"type": "null"}]},
                "machine": MACHINE,
                "versions": {"type": "object", "maxProperties": 20, "additionalProperties": SCALAR},
                "total": {"type": "object", "properties": {"minutes": _num(0, 100_000)}},
                "failed": {"type": "array", "maxItems": 20, "items": _text(4)},
                # a summary merged from several runs: which run measured each notebook
                "parts": {
                    "type": "object",
                    "maxProperties": 10,
                    "propertyNames": {"pattern": "^[0-9]{2}$"},
                    "additionalProperties": _text(200),
                },
                "notebooks": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 10,
                    "propertyNames": {"pattern": "^[0-9]{2}$"},
                    "additionalProperties": NOTEBOOK,
                },
            },
            "additionalProperties": False,
        },
    },
}
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def parse(body: bytes, max_bytes: int = MAX_BYTES) -> dict:
    """A submission's JSON, checked (`check`); RoomError when it is too big, not JSON, or breaks a rule."""
    return check(loads(body, max_bytes))


def loads(body: bytes, max_bytes: int = MAX_BYTES):
    """JSON within `max_bytes`, without NaN or Infinity; RoomError otherwise."""
    if len(body) > max_bytes:
        raise RoomError(
            f"submission too large: {len(body):,} bytes; this room accepts at most {max_bytes:,}", status=413
        )
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:  # bad JSON, bad UTF-8, or nesting deeper than Python's stack
        raise RoomError(f"submission is not valid JSON: {str(e)[:120]}") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def check(data) -> dict:
    """`data` if it is a valid submission, else RoomError naming the first problem (schema, then intervals)."""
    error = jsonschema.exceptions.best_match(VALIDATOR.iter_errors(data))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "submission"
        raise RoomError(f"{where}: {_short(error.message)}")
    for nn, nb in data["summary"]["notebooks"].items():
        for i, c in enumerate(nb.get("claims", [])):
            lo, hi, effect = c.get("ci_lo"), c.get("ci_hi"), c.get("effect")
            if (lo is None) != (hi is None):
                raise RoomError(f"summary.notebooks.{nn}.claims.{i}: an interval needs both ci_lo and ci_hi")
            if lo is not None and not lo <= hi:
                raise RoomError(f"summary.notebooks.{nn}.claims.{i}: ci_lo {lo} is above ci_hi {hi}")
            if lo is not None and effect is None:
                raise RoomError(f"summary.notebooks.{nn}.claims.{i}: an interval without its effect")
    return data


def _short(message: str, n: int = 160) -> str:
    """jsonschema quotes the offending value: a 100 kB string must not come back as a 100 kB message."""
    return message if len(message) <= n else message[: n // 2] + " ... " + message[-n // 2 :]
