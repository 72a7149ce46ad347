"""Input caps for the apps: every request a client can send has a bound, and crossing it gives one clear message.

A workshop shares one link with 30 people. Measured on a 2-core machine before these caps: one 100,000-character
stop string grew the server to 18 GB (transformers builds a table per stop string), a 19k-character history gave a
24 s first token, the batch tab took 200 examples x every model (about 20 minutes of CPU), and 30 wrong passwords
went through in 0.45 s. Each check below raises `LimitError` (a ServeError: the apps show its message) or clamps a
slider value into its range.

    limits = Limits()
    check_stops("###, END", limits)             # -> ["###", "END"]
    sampling(limits, temperature=9, top_k=-3)   # -> clamped dict for `generate`
    RateLimiter(per_minute=6).hit("session-1")  # raises LimitError on the 7th hit within 60 s
    RoomGuard(app, max_body=2**20)              # ASGI: oversized bodies and login floods refused early
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from nbkit.errors import ServeError


class LimitError(ServeError):
    """A request over one of the server's caps; the message names the cap and what to do."""


@dataclass
class Limits:
    max_stop_chars: int = field(default=40, metadata={"help": "longest single stop string, in characters"})
    max_stops: int = field(default=4, metadata={"help": "how many stop strings one request may give"})
    max_stop_total: int = field(default=80, metadata={"help": "all stop strings together, in characters"})
    max_history_chars: int = field(
        default=12000, metadata={"help": "conversation characters sent to the model; older turns are dropped"}
    )
    max_history_turns: int = field(default=20, metadata={"help": "user+assistant pairs sent to the model"})
    max_batch_work: int = field(
        default=100, metadata={"help": "batch tab: examples x models per request (~1 s each on 2 cores)"}
    )
    max_file_size: int = field(
        default=0, metadata={"help": "upload bytes; 0 = uploads off (no app needs them)"}
    )
    max_body_bytes: int = field(
        default=2**20,
        metadata={"help": "largest request body, refused before it is read (a long chat is ~100 kB)"},
    )
    login_per_minute: int = field(
        default=10, metadata={"help": "failed logins per client address per minute"}
    )
    votes_per_session: int = field(default=6, metadata={"help": "arena votes per browser session per minute"})
    votes_per_address: int = field(
        default=60, metadata={"help": "arena votes per client address per minute (a classroom may share one)"}
    )
    votes_per_attendee: int = field(
        default=6,
        metadata={"help": "arena votes per attendee (join code or name) per minute, across sessions"},
    )
    vote_window: float = field(
        default=60.0,
        metadata={"help": "seconds the vote caps count over: 60 = per minute; a workshop's length = a total"},
    )
    max_seed: int = field(default=2**31 - 1, metadata={"help": "largest seed accepted"})


# Slider ranges enforced on the server: (low, high). A client can send anything through the API.
RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.05, 1.0),
    "top_k": (0, 200),
    "repetition_penalty": (1.0, 2.0),
}


def _clamp(x, lo, hi, default, kind=float):
    try:
        v = kind(x)
    except (TypeError, ValueError, OverflowError):
        v = default
    if v != v:  # NaN
        v = default
    return min(max(v, lo), hi)


def parse_seed(seed, limits: Limits) -> int | None:
    """A seed from a box or the API: None/""/negative -> None (random); a whole number -> itself, at most
    `limits.max_seed`; anything else -> LimitError. Example: " 42 " -> 42; "" -> None; "abc" -> LimitError."""
    if seed is None or (isinstance(seed, str) and not seed.strip()):
        return None
    try:
        value = float(seed)
        if value != int(value):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise LimitError(
            f"Seed: {str(seed)[:20]!r} is not a whole number. Leave it empty for a random answer."
        ) from None
    return None if value < 0 else int(min(value, limits.max_seed))


def sampling(
    limits: Limits,
    max_new_cap: int,
    temperature=0.7,
    top_p=0.95,
    max_new_tokens=128,
    top_k=0,
    repetition_penalty=1.0,
    seed=None,
) -> dict:
    """Clamp sampling settings into RANGES; `seed` as `parse_seed` (None/""/negative means random).

    Example: sampling(Limits(), 256, temperature=9, top_k=-3, max_new_tokens=10**9)
    -> {"temperature": 2.0, "top_p": 0.95, "max_new_tokens": 256, "top_k": 0, "repetition_penalty": 1.0,
        "seed": None}
    """
    out = {
        "temperature": _clamp(temperature, *RANGES["temperature"], 0.7),
        "top_p": _clamp(top_p if top_p not in (None, "") else 1.0, *RANGES["top_p"], 1.0),
        "max_new_tokens": int(_clamp(max_new_tokens, 1, max_new_cap, 1, int)),
        "top_k": int(_clamp(top_k or 0, *RANGES["top_k"], 0, int)),
        "repetition_penalty": _clamp(repetition_penalty or 1.0, *RANGES["repetition_penalty"], 1.0),
        "seed": parse_seed(seed, limits),
    }
    return out


def check_stops(text, limits: Limits) -> list[str]:
    """Comma-separated stop strings, each and all together within the caps, or LimitError.

    Example: check_stops("###, END", Limits()) -> ["###", "END"]
    """
    text = "" if text is None else str(text)
    if len(text) > limits.max_stops * (limits.max_stop_chars + 2):  # refuse before splitting a huge string
        raise LimitError(
            f"Stop strings: {len(text):,} characters given; this server accepts at most {limits.max_stops} "
            f"strings of {limits.max_stop_chars} characters each."
        )
    stops = [s.strip() for s in text.split(",") if s.strip()]
    if len(stops) > limits.max_stops:
        raise LimitError(f"Stop strings: {len(stops)} given; at most {limits.max_stops}.")
    long = [s for s in stops if len(s) > limits.max_stop_chars]
    if long:
        raise LimitError(
            f"Stop strings: one is {len(long[0]):,} characters; each may have at most {limits.max_stop_chars}."
        )
    if sum(map(len, stops)) > limits.max_stop_total:
        raise LimitError(f"Stop strings: at most {limits.max_stop_total} characters together.")
    return stops


def trim_history(turns: list[dict], limits: Limits) -> tuple[list[dict], int]:
    """Keep the latest turns within the caps (turn pairs and characters); returns (kept, dropped messages).

    `turns` alternate user/assistant as plain {"role", "content": str}; the kept part starts at a user turn.
    Example: 30 pairs with max_history_turns=20 -> (the last 40 messages, 20).
    """
    kept = list(turns)
    while kept and (
        len(kept) > 2 * limits.max_history_turns
        or sum(len(m["content"]) for m in kept) > limits.max_history_chars
    ):
        kept = kept[1:]
        while kept and kept[0]["role"] != "user":
            kept = kept[1:]
    return kept, len(turns) - len(kept)


def check_batch(n_examples: int, n_models: int, limits: Limits) -> None:
    """LimitError when examples x models exceeds the batch cap (each is one greedy answer, ~1 s on 2 cores)."""
    if n_examples * n_models > limits.max_batch_work:
        raise LimitError(
            f"Batch: {n_examples} examples x {n_models} models = {n_examples * n_models} answers; this server "
            f"runs at most {limits.max_batch_work} per request. Use fewer examples or fewer models."
        )


class RateLimiter:
    """At most `per_minute` hits per key in any 60 s window (a sliding window of timestamps per key).

    `hit(key)` records a hit or raises LimitError; `clock` can be replaced in tests.
    """

    def __init__(self, per_minute: int, what: str = "requests", clock=time.monotonic, window: float = 60.0):
        self.per_minute, self.what, self.clock, self.window = per_minute, what, clock, window
        self._hits: dict[str, deque] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque:
        q = self._hits.setdefault(key, deque())
        while q and now - q[0] >= self.window:
            q.popleft()
        return q

    def allowed(self, key: str) -> bool:
        with self._lock:
            return len(self._recent(key, self.clock())) < self.per_minute

    def hit(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            q = self._recent(key, now)
            if len(q) >= self.per_minute:
                wait = int(self.window - (now - q[0])) + 1
                raise LimitError(
                    f"Too many {self.what}: at most {self.per_minute} a minute. Try again in {wait} s."
                )
            q.append(now)
            if len(self._hits) > 10_000:  # forget idle keys so the table stays small
                for k in [k for k, v in self._hits.items() if not v]:
                    del self._hits[k]


class LoginGuard:
    """Gradio `auth=` callable: checks (user, password) in constant time. Throttling is RoomGuard's, per client
    address: a count per user name would let one person lock a class's shared user name out."""

    def __init__(self, user: str, password: str):
        self.user, self.password = user, password

    def __call__(self, user: str, password: str) -> bool:
        import hmac

        ok = hmac.compare_digest(str(user).encode(), self.user.encode()) & hmac.compare_digest(
            str(password).encode(), self.password.encode()
        )
        return bool(ok)


class RoomGuard:
    """ASGI middleware in front of the app (Gradio's FastAPI app takes it through `app_kwargs`).

    - Request bodies over `max_body` bytes are refused with 413 before the app reads them: at once when the
      Content-Length says so, as they arrive when the body is chunked (then at most `max_body` bytes are held).
      Unguarded, Gradio parsed a 200 MB POST before its login check and kept ~500 MB.
    - Failed logins (POST .../login answered 400) are counted per client address; past `login_per_minute` in a
      minute that address gets 429, other addresses are not affected.

    The address is the socket's peer (`scope["client"]`); behind a trusted proxy uvicorn has already replaced it
    with the forwarded one (see nbkit.serve.launch, --trusted-proxy).
    """

    def __init__(self, app, max_body: int = 2**20, login_per_minute: int = 10, clock=time.monotonic):
        self.app, self.max_body = app, max_body
        self.failed_logins = RateLimiter(login_per_minute, "login attempts", clock)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body:
            return await self._refuse(send, 413, self._too_large(length.decode("latin1")[:20]))
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            body = await self._read_capped(receive)
            if body is None:
                return await self._refuse(send, 413, self._too_large(f"over {self.max_body:,}"))
            receive = _replay(body, receive)
        address = (scope.get("client") or ("",))[0] or ""
        if scope["method"] != "POST" or not scope["path"].rstrip("/").endswith("/login"):
            return await self.app(scope, receive, send)
        if not self.failed_logins.allowed(address):
            return await self._refuse(
                send, 429, "Too many failed logins from your address: wait a minute, then try again."
            )

        async def counting_send(message):
            if message["type"] == "http.response.start" and message["status"] == 400:
                try:
                    self.failed_logins.hit(address)
                except LimitError:
                    pass
            await send(message)

        return await self.app(scope, receive, counting_send)

    def _too_large(self, size: str) -> str:
        return f"Request body of {size} bytes refused: this server accepts at most {self.max_body:,} bytes."

    async def _read_capped(self, receive) -> bytes | None:
        """The whole chunked body, or None as soon as it passes `max_body` (the rest is never read)."""
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(parts)
            size += len(message.get("body", b""))
            if size > self.max_body:
                return None
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(parts)

    @staticmethod
    async def _refuse(send, status: int, detail: str) -> None:
        import json

        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": headers + [(b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive):
    """An ASGI `receive` that gives `body` once, then defers to `receive` (for the disconnect message)."""
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
