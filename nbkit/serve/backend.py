"""Everything the apps call besides layout: one `Backend` per server process, with the catalog, the model cache,
the input caps (nbkit.serve.limits), token streaming (nbkit.serve.streaming) and the arena (nbkit.serve.arena).

The apps (`apps/chat.py`, `apps/compare.py`) wire Gradio events to these methods; tests call them directly.

    backend = Backend(ServeConfig.for_profile("smoke"))
    for reply in backend.chat("Hello", [], "tiny"):      # [answer so far] ... [answer, its label]
        ...
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from nbkit.errors import ConfigError, NbkitError, ServeError
from nbkit.serve.catalog import Catalog, ModelCache
from nbkit.serve.limits import (
    LimitError,
    Limits,
    RateLimiter,
    check_batch,
    check_stops,
    sampling,
    trim_history,
)
from nbkit.serve.streaming import paced, stream_generate, stream_many


@dataclass
class ServeConfig:
    models: list[str] = field(
        default_factory=list, metadata={"help": "models given at launch (first = default)"}
    )
    host: str = field(default="127.0.0.1", metadata={"help": "interface to listen on (0.0.0.0 = the LAN)"})
    port: int | None = field(default=None, metadata={"help": "port; None = first free from 7860"})
    share: bool = field(default=False, metadata={"help": "ask Gradio for a public link (needs a password)"})
    auth: str | None = field(default=None, metadata={"help": "USER:PASS required to open the app"})
    registry: str | None = field(default=None, metadata={"help": "run registry folder (default $NBKIT_RUNS)"})
    arena_db: str | None = field(
        default=None, metadata={"help": "vote file (default <registry>/arena.sqlite)"}
    )
    cache_gb: float = field(default=4.0, metadata={"help": "memory for loaded weights; LRU eviction beyond"})
    max_input_chars: int = field(default=4000, metadata={"help": "longest prompt accepted, in characters"})
    max_new_tokens: int = field(default=256, metadata={"help": "cap on new tokens per answer"})
    default_new_tokens: int = field(default=128, metadata={"help": "the slider's starting value"})
    concurrency: int = field(default=2, metadata={"help": "generations running at once (2 CPU cores here)"})
    queue_size: int = field(default=64, metadata={"help": "requests waiting beyond that; more are refused"})
    threads: int = field(
        default=0,
        metadata={
            "help": "torch threads per answer with --engine off; 0 = cores / streams that can run at once"
        },
    )
    engine: str = field(
        default="on",
        metadata={
            "help": "on: one engine batches every answer across users (nbkit.serve.engine); off: one `generate` "
            "per answer, `concurrency` at a time (the old path, kept for comparison)"
        },
    )
    engine_rows: int = field(
        default=64, metadata={"help": "engine: answers one model decodes together; more wait for a free row"}
    )
    limits: Limits = field(
        default_factory=Limits, metadata={"help": "caps on every input (nbkit.serve.limits)"}
    )
    trusted_proxy: str | None = field(
        default=None,
        metadata={
            "help": "address(es) of a reverse proxy whose X-Forwarded-For is believed; none: the socket's peer is "
            "the client address, and the header is ignored"
        },
    )
    join_codes: str | None = field(
        default=None,
        metadata={
            "help": "personal arena join codes: a number of attendees or a file of names (codes kept in "
            "<registry>/arena-codes.tsv); none: a typed name, unchecked"
        },
    )
    instructor: str | None = field(
        default_factory=lambda: os.environ.get("NBKIT_INSTRUCTOR") or None,
        metadata={
            "help": "password of the instructor's actions (adding a model to the running arena); default "
            "$NBKIT_INSTRUCTOR; none: those actions are off"
        },
    )

    def events_at_once(self) -> int:
        """Gradio events that may run at once: `concurrency` on the old path; with the engine, as many as it
        decodes together (an event only waits on its stream; the engine does the work)."""
        return self.concurrency if self.engine == "off" else max(self.concurrency, self.engine_rows)

    @classmethod
    def for_profile(cls, name: str) -> ServeConfig:
        if name == "smoke":
            return cls(models=["tiny"], max_new_tokens=32, default_new_tokens=16)
        if name == "gpu":
            return cls(models=["qwen2.5-0.5b"], cache_gb=16.0, max_new_tokens=512, default_new_tokens=256)
        return cls(models=["smollm2-135m"])


# --------------------------------------------------------------------------------------------------- input caps


def auto_threads(app: str, concurrency: int, cores: int | None = None) -> int:
    """Torch threads so that all streams that may run at once share the cores without oversubscribing them.

    Measured on a busy 2-core machine, one SmolLM2-135M stream: 2 threads gave 0.5-1 tok/s and 5-11 s to the
    first token, 1 thread 3.4-4.7 tok/s and 0.5-0.7 s (OpenMP threads stall when they cannot all get a core).
    Compare runs up to `concurrency` events of ~2 streams each. (The engine does not use this: it runs one
    forward at a time on as many threads as cores are free, nbkit.threads.adapt.)
    Example: ("compare", 2, cores=8) -> 2; ("chat", 2, cores=2) -> 1.
    """
    cores = cores or (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    streams = concurrency * (2 if app == "compare" else 1)
    return max(1, cores // max(1, streams))


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text) -> str:
    """Drop control characters (keeping tab and newline) and lone surrogates, which break tokenizers.

    Example: "hi\\x00\\x1b[31m!" -> "hi[31m!"
    """
    text = "" if text is None else str(text)
    return _CONTROL.sub("", text.encode("utf-8", "replace").decode("utf-8"))


def check_prompt(text, max_chars: int) -> str:
    """The cleaned prompt, or ServeError with a clear message when it is empty or too long."""
    text = clean_text(text)
    if not text.strip():
        raise ServeError("The prompt is empty: type a message first.")
    if len(text) > max_chars:
        raise ServeError(
            f"The prompt is {len(text):,} characters; this server accepts at most {max_chars:,}. Shorten it."
        )
    return text


def message_text(content) -> str:
    """Text of a chat message's content, whether a string or Gradio's list of parts ([{"type": "text", ...}])."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


# --------------------------------------------------------------------------------------------------- backend


def _timing(labels, chunks) -> str:
    return " | ".join(f"**{m}**: {c.stats() if c else 'waiting'}" for m, c in zip(labels, chunks))


def who(request) -> tuple[str, str]:
    """(session, client address) of a Gradio request; ("", "") outside one (tests calling the backend)."""
    if request is None:
        return "", ""
    client = getattr(request, "client", None)
    return getattr(request, "session_hash", "") or "", getattr(client, "host", "") or ""


def history_turns(history) -> list[dict]:
    """Plain {"role", "content": str} turns from a Chatbot value, for the model: labels and notes (messages with
    a metadata title) are dropped, and so is a user turn that never got an answer (an error, a Stop)."""
    turns: list[dict] = []
    for m in history or []:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            continue
        if (m.get("metadata") or {}).get("title"):
            continue
        text = clean_text(message_text(m.get("content")))
        if turns and turns[-1]["role"] == m["role"]:
            if m["role"] == "user":
                turns[-1] = {"role": "user", "content": text}  # the earlier one was not answered
            else:
                turns[-1]["content"] += text
        elif text or m["role"] == "assistant":
            turns.append({"role": m["role"], "content": text})
    while turns and turns[0]["role"] != "user":
        turns = turns[1:]
    return turns


def label_message(title: str) -> dict:
    """A small collapsed box under an answer (Gradio renders a metadata title so); never sent to the model."""
    return {"role": "assistant", "content": "", "metadata": {"title": title, "status": "done"}}


class Backend:
    """Everything the apps call: catalog, cache, caps, streaming, votes. One per server process."""

    EXPORTS_KEPT = 200  # JSON downloads kept on disk, newest first

    def __init__(self, cfg: ServeConfig, registry=None):
        from nbkit import models
        from nbkit.runs import Registry
        from nbkit.serve.arena import Arena, ArenaConfig, VoteStore
        from nbkit.serve.attendees import Attendees
        from nbkit.serve.engine import Engine
        from nbkit.serve.leaderboard import Boards

        self.cfg = cfg
        self.limits = cfg.limits
        self.registry = registry or Registry(cfg.registry)
        self.catalog = Catalog(cfg.models, self.registry)
        if cfg.engine not in ("on", "off"):
            raise ConfigError(f"engine must be 'on' or 'off', got {cfg.engine!r}")
        threads = cfg.threads or auto_threads("chat", cfg.concurrency)

        def load(label):
            try:
                return models.load(self.catalog.source(label), threads=threads)
            except NbkitError:
                raise
            except Exception as e:  # noqa: BLE001 - a folder that is no checkpoint: one line, not a traceback
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                raise ServeError(
                    f"{label} cannot be loaded as a model ({type(e).__name__}: {first[:200]})"
                ) from e

        self.cache = ModelCache(load, int(cfg.cache_gb * 2**30))
        # Every answer goes through `self.stream` (same arguments and Chunks either way): the engine batches
        # all users' answers on the cores free right now (on a busy laptop, threads that cannot all get a core
        # stall each other); "off" keeps one `generate` thread per answer, `threads` each.
        self.engine = Engine(cfg.engine_rows) if cfg.engine == "on" else None
        self.stream = self.engine.stream if self.engine else stream_generate
        arena_cfg = ArenaConfig()
        self.votes = VoteStore(Path(cfg.arena_db or self.registry.root / arena_cfg.db))
        self.arena = Arena(arena_cfg, self.votes, self.arena_pool(), self.limits)
        self.exports = Path(tempfile.mkdtemp(prefix="nbkit-chat-"))
        self.attendees = Attendees.load(self.registry.root / "arena-codes.tsv", cfg.join_codes)
        self.boards = Boards(self.arena, extra_notes=self._audit_lines)
        self.instructor_failures = RateLimiter(self.limits.login_per_minute, "wrong instructor passwords")

    def choices(self) -> list[str]:
        return self.catalog.choices()

    @property
    def default_models(self) -> list[str]:
        return self.catalog.launch_labels() or self.catalog.choices()[:1]

    def arena_pool(self) -> list[str]:
        """The blind-round pool, fixed at start: the models given at launch, or, with fewer than two, every
        model offered at that moment. Runs registered later never enter it."""
        launched = self.default_models
        return launched if len(set(launched)) >= 2 else self.catalog.choices()

    def model(self, label) -> tuple:
        self.catalog.source(label)  # refuses anything not listed, before loading
        return self.cache.get(label)

    def settings(
        self, temperature=0.7, top_p=0.95, max_new_tokens=128, top_k=0, repetition_penalty=1.0, seed=None
    ):
        """Clamp sampling settings into safe ranges (a client can send anything through the API)."""
        return sampling(
            self.limits,
            self.cfg.max_new_tokens,
            temperature,
            top_p,
            max_new_tokens,
            top_k,
            repetition_penalty,
            seed,
        )

    # ------------------------------------------------------------------------------------------- chat

    def chat(
        self,
        message,
        history,
        label,
        system="",
        temperature=0.7,
        top_p=0.95,
        top_k=0,
        repetition_penalty=1.0,
        max_new_tokens=128,
        stop="",
        seed=None,
        warn=None,
    ):
        """gr.ChatInterface generator: yields [answer so far, its label (model, tokens, tok/s, first token)].

        The history beyond the caps is not sent to the model; `warn(text)` (gr.Warning in the app) says so."""
        message = check_prompt(message, self.cfg.max_input_chars)
        stops = check_stops(stop, self.limits)
        settings = self.settings(temperature, top_p, max_new_tokens, top_k, repetition_penalty, seed)
        model, tok = self.model(label)
        turns, dropped = trim_history(history_turns(history), self.limits)
        if dropped and warn:
            warn(
                f"Only the last {len(turns) // 2} turns ({self.limits.max_history_chars:,} characters at most) "
                "are sent to the model; start a new chat for a fresh context."
            )
        turns += [{"role": "user", "content": message}]
        system = clean_text(system).strip()[: self.cfg.max_input_chars] or None
        for chunk in paced(self.stream(model, tok, turns, system, stop=stops, **settings)):
            answer = {"role": "assistant", "content": chunk.text}
            yield [answer, label_message(f"{label} · {chunk.stats()}")] if chunk.done else [answer]

    def applied_settings(self, system="", stop="", **sampling) -> dict:
        """The chat settings as the server applies them: the system prompt, the clamped sampling values (see
        `settings`) and the stop strings. Example: (temperature=9) -> {"system": "", "temperature": 2.0, ...}."""
        system = clean_text(system).strip()[: self.cfg.max_input_chars]
        return {"system": system, **self.settings(**sampling), "stop": check_stops(stop, self.limits)}

    def export_chat(self, history, label="", settings: dict | None = None) -> str:
        """Write the conversation as JSON (messages with their labels, model, settings); returns the file path.
        `settings`: the page's settings (applied_settings' arguments), written as the server applies them."""
        data = {
            "app": "nbkit chat",
            "model": label,
            "settings": self.applied_settings(**settings) if settings else {},
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "messages": [
                {"role": m.get("role"), "content": message_text(m.get("content"))}
                | ({"label": m["metadata"]["title"]} if (m.get("metadata") or {}).get("title") else {})
                for m in (history or [])
                if isinstance(m, dict)
            ],
        }
        text = json.dumps(data, indent=1, ensure_ascii=False)
        cap = 8 * self.limits.max_history_chars  # what a browser shows; an API client could send any history
        if len(text) > cap:
            raise LimitError(f"The conversation is {len(text):,} characters; downloads stop at {cap:,}.")
        old = sorted(self.exports.glob("conversation-*.json"), key=lambda p: p.stat().st_mtime)
        for stale in old[: max(0, len(old) - self.EXPORTS_KEPT + 1)]:  # the folder stays small
            stale.unlink(missing_ok=True)
        path = self.exports / f"conversation-{secrets.token_hex(4)}.json"
        path.write_text(text)
        return str(path)

    # ------------------------------------------------------------------------------------------- compare

    def stream_answers(
        self, prompt, labels, system="", temperature=0.7, top_p=0.95, max_new_tokens=128, turns=None
    ):
        """Generator of lists of Chunks, one per label, all models generating at once. `turns[i]`: earlier
        messages of model i's conversation (multi-turn battles)."""
        prompt = check_prompt(prompt, self.cfg.max_input_chars)
        system = clean_text(system).strip()[: self.cfg.max_input_chars] or None
        settings = self.settings(temperature, top_p, max_new_tokens)
        settings.pop("seed")
        pairs = [self.model(label) for label in labels]  # load (and refuse) before any thread starts
        turns = turns or [[] for _ in labels]

        def job(model, tok, earlier):
            msgs = trim_history(earlier, self.limits)[0] + [{"role": "user", "content": prompt}]
            return lambda ev: self.stream(model, tok, msgs, system, stop_event=ev, **settings)

        yield from paced(stream_many([job(m, t, e) for (m, t), e in zip(pairs, turns)]))

    def side_by_side(self, prompt, labels, system="", temperature=0.7, top_p=0.95, max_new_tokens=128):
        """Generator of (labels, texts, timing line, done): 2-4 models streaming the same prompt at once. These
        answers are never votes."""
        labels = list(dict.fromkeys(m for m in labels or [] if isinstance(m, str)))
        if not 2 <= len(labels) <= 4:
            raise ServeError(f"Pick 2 to 4 different models to compare (got {len(labels)}).")
        chunks: list = [None] * len(labels)
        for chunks in self.stream_answers(prompt, labels, system, temperature, top_p, max_new_tokens):
            yield labels, [c.text if c else "..." for c in chunks], _timing(labels, chunks), False
        yield labels, [c.text if c else "" for c in chunks], _timing(labels, chunks), True

    # ------------------------------------------------------------------------------------------- arena

    BLIND_MIN_TEMPERATURE = (
        0.5  # greedy answers could be matched to the side-by-side tab's, unmasking the models
    )

    def blind_turn(
        self, prompt, rnd=None, system="", temperature=0.7, top_p=0.95, max_new_tokens=128, request=None
    ):
        """Generator of (chat A, chat B, round, done). Starts a round when `rnd` is None or voted; the pair comes
        from the server's pool. The names stay in `round` (server-side gr.State) until the vote."""
        session, client = who(request)
        prompt = check_prompt(prompt, self.cfg.max_input_chars)
        if not rnd or rnd.get("voted") or not rnd.get("id"):
            rnd = self.arena.new_round(session, client)
        earlier = [[], []]
        for t in rnd["turns"]:
            for i, key in enumerate("ab"):
                earlier[i] += [
                    {"role": "user", "content": t["prompt"]},
                    {"role": "assistant", "content": t[key]},
                ]
        shown = [[dict(m) for m in e] + [{"role": "user", "content": prompt}] for e in earlier]
        self.votes.begin_turn(rnd["id"])
        temperature = max(float(temperature or 0), self.BLIND_MIN_TEMPERATURE)
        texts = ["", ""]
        stream = self.stream_answers(prompt, rnd["pair"], system, temperature, top_p, max_new_tokens, earlier)
        for chunks in stream:
            texts = [c.text if c else "" for c in chunks]
            yield (
                *[s + [{"role": "assistant", "content": t or "..."}] for s, t in zip(shown, texts)],
                rnd,
                False,
            )
        self.votes.serve_turn(rnd["id"], prompt, texts[0], texts[1])
        rnd = {**rnd, "turns": rnd["turns"] + [{"prompt": prompt, "a": texts[0], "b": texts[1]}]}
        yield *[s + [{"role": "assistant", "content": t}] for s, t in zip(shown, texts)], rnd, True

    def attendee(self, code, request=None) -> str:
        """Who is voting: the name of a join code (ArenaError for a wrong one), or a typed name without codes."""
        return self.attendees.resolve(code, who(request)[1])

    def blind_round(self, rnd, code="", request=None) -> dict:
        """The round the next blind question belongs to: `rnd` while it takes a vote, else a new one recorded
        with its attendee (with join codes, none without a valid code)."""
        session, client = who(request)
        return self.arena.current_round(rnd, session, client, self.attendee(code, request))

    def vote(self, rnd, outcome: str, request=None, code="") -> str:
        """Who was who, as markdown. Refusals raise ArenaError/LimitError with their message. The page's round
        state is not touched: the store knows the round is voted (see Arena.current_round)."""
        session, client = who(request)
        reveal = self.arena.vote(rnd, outcome, session, client, self.attendee(code, request))
        self.boards.changed()
        return reveal

    def add_to_pool(self, label, password) -> str:
        """The instructor's hot-add: `label` (any model the catalog offers, e.g. a run registered a minute ago)
        joins the blind pool at once, without a restart; new rounds draw from it, rounds already open keep their
        pair. It is loaded first, so a broken checkpoint fails here rather than in an attendee's round. Refuses
        without the instructor password (ServeError; wrong ones are limited per minute). Returns the pool line."""
        import hmac

        if not self.cfg.instructor:
            raise ServeError(
                "This server has no instructor password, so models cannot be added while it runs: start it with "
                "NBKIT_INSTRUCTOR set."
            )
        if not self.instructor_failures.allowed("instructor"):  # a guesser is slowed down, right or wrong
            raise LimitError("Too many wrong instructor passwords: wait a minute, then try again.")
        if not hmac.compare_digest(str(password or "").encode(), self.cfg.instructor.encode()):
            self.instructor_failures.hit("instructor")
            raise ServeError("Wrong instructor password: nothing was added.")
        label = clean_text(label).strip()
        self.catalog.source(label)  # re-reads the registry: a run finished after the start is offered
        if label not in self.arena.pool:
            self.model(label)
            self.arena.pool = [*self.arena.pool, label]  # one assignment: a round being drawn sees old or new
        return self.pool_text()

    def pool_text(self) -> str:
        pool = self.arena.pool
        return f"Two of these {len(pool)} models answer, hidden: {', '.join(pool)}."

    def leaderboard(self, method: str = "bt"):
        """The table for the votes stored now (computed once per change, off the request path: Boards)."""
        return self.boards.current().table(method)

    def board_notes(self, method: str = "bt") -> str:
        """Markdown under the leaderboard: what the numbers can and cannot say yet, and the vote audit."""
        return self.boards.current().note(method)

    def matrices(self):
        return self.boards.current().matrices

    def _audit_lines(self) -> list[str]:
        from nbkit.serve.audit import audit

        return audit(self.votes.log()).lines(position=False)

    def batch(self, labels, task_name: str = "arithmetic", n: int = 20, max_new_tokens: int = 32):
        """Accuracy table of each selected model on the same `n` test examples of a task (greedy)."""
        from nbkit.serve.arena import batch_accuracy, batch_task

        labels = list(dict.fromkeys(m for m in labels or [] if self.catalog.source(m)))
        if not labels:
            raise ServeError("Select at least one model for the batch evaluation.")
        n = int(min(max(int(n), 1), self.limits.max_batch_work))
        check_batch(n, len(labels), self.limits)
        task = batch_task(task_name)
        max_new_tokens = min(max(int(max_new_tokens), 1), self.cfg.max_new_tokens)
        sampler = self.engine.sample if self.engine else None  # the batch joins the room's answers
        return batch_accuracy(self.model, labels, task, task.test(n), max_new_tokens, sampler)

    def token_view(self, prompt, labels, answers):
        """Per-token log-probs of each answer under every model in `labels` (see nbkit.serve.arena.token_view)."""
        from nbkit.serve.tokenview import token_view

        if not prompt:
            raise ServeError("The token view scores the answers of the last side-by-side run: run one first.")
        prompt = check_prompt(prompt, self.cfg.max_input_chars)
        kept = [(m, clean_text(a)) for m, a in zip(labels or [], answers or []) if m and a]
        if not kept:
            raise ServeError("The token view scores the answers of the last side-by-side run: run one first.")
        models = {m: self.model(m) for m, _ in kept}
        score = lambda: token_view(models, prompt, [m for m, _ in kept], [a for _, a in kept])  # noqa: E731
        return self.engine.call(score) if self.engine else score()  # between decode steps, not beside them
