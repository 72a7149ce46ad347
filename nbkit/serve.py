"""Serve checkpoints in Gradio apps: `nbkit chat [MODEL]` (one model) and `nbkit compare [MODEL ...]` (the arena).

This module holds what the apps need besides layout: the model catalog (what a client may pick), a memory-capped
model cache, token streaming, input caps, and launching with a safe share/auth policy. `apps/chat.py` and
`apps/compare.py` (in the repository, next to `nbkit/`) hold only layout and event wiring; the arena maths lives
in `nbkit.arena`.

- Catalog: a client picks a *label* from the server's list: registry runs (by run name), the offline short names
  (`tiny`, `smollm2-135m`, and any cached one), and the ids given at launch. Any other string (`../../etc`, a hub
  id nobody launched) is refused before anything is loaded.
- Cache: loaded models are kept, least recently used first out, while their weights fit `cache_gb`.
- Streaming (nbkit.streaming): `generate` in a thread per model, merged as chunks arrive, so compare never waits
  for one model to finish.
- Sharing: `--share` without `--auth` generates a password and prints it; a public link is never open to anyone.
  Offline, Gradio's share server is unreachable: we say so in one line (with the real error) and keep serving on
  the local URL, instead of Gradio's misleading "Missing file ... frpc".
- The apps are loaded from the repository's `apps/` folder (or $NBKIT_APPS) with importlib, as `build(backend)`.
  An install without the repository gets a one-line error saying so.

    nbkit chat smollm2-135m --port 7860
    nbkit compare tiny star-it1 star-it2 --share            # prints a generated password
    from nbkit.serve import launch_inline; launch_inline("compare", ["base", "sft"])   # in a notebook

Simplified relative to FastChat/LlamaBoard: one process, one model per thread, no batching across users, no
multi-GPU workers, no moderation.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import inspect
import json
import os
import re
import secrets
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nbkit.errors import ConfigError, NbkitError, ServeError
from nbkit.limits import Limits, check_batch, check_stops, sampling, trim_history
from nbkit.streaming import stream_generate, stream_many

APPS = ("chat", "compare")


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
        default=0, metadata={"help": "torch threads; 0 = cores / streams that can run at once"}
    )
    limits: Limits = field(default_factory=Limits, metadata={"help": "caps on every input (nbkit.limits)"})

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
    Compare runs up to `concurrency` events of ~2 streams each.
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


# --------------------------------------------------------------------------------------------------- catalog


class Catalog:
    """What clients may pick: label -> model source for `nbkit.models.load`. Re-reads the registry each call, so
    runs finished while the app is up appear without a restart."""

    def __init__(self, launch: Sequence[str] = (), registry=None):
        from nbkit import models

        self.launch = list(dict.fromkeys(launch))
        self.registry = registry
        cached = {r["name"] for r in models.cached() if r["ok"]}
        self.known = [n for n, s in models.KNOWN.items() if s.offline or n in cached]

    def entries(self) -> dict[str, str]:
        out = {name: name for name in self.known}
        run_paths = {}
        for run in self.registry.list() if self.registry is not None else []:
            try:
                source = run.model_source
            except NbkitError:
                continue  # a run with no checkpoint and no model: nothing to serve
            label = run.name if run.name not in out else f"run:{run.name}"
            out[label] = source
            run_paths[_real(run.path)] = run_paths[_real(source)] = label
        for name in self.launch:
            path = Path(name).expanduser()
            if not path.is_dir():
                out.setdefault(name, name)  # a short name, a run name or a hub id
            elif _real(path) not in run_paths:  # a run's folder is that run, listed once by its name
                label = path.resolve().name  # a folder is shown by its name, never by its server path
                out.setdefault(label if label not in out else f"dir:{label}", str(path))
        return out

    def launch_labels(self) -> list[str]:
        """The labels of the models given at launch, in order (a folder becomes its run name or its name)."""
        entries, labels = self.entries(), []
        by_source = {_real(v): k for k, v in entries.items() if Path(v).is_dir()}
        for name in self.launch:
            if name in entries:
                labels.append(name)
            elif Path(name).expanduser().is_dir() and _real(Path(name).expanduser()) in by_source:
                labels.append(by_source[_real(Path(name).expanduser())])
            elif Path(name).expanduser().is_dir():
                labels.append(_run_of(name, self.registry) or Path(name).resolve().name)
        return [x for x in dict.fromkeys(labels) if x in entries]

    def choices(self) -> list[str]:
        return list(self.entries())

    def source(self, label) -> str:
        entries = self.entries()
        if not isinstance(label, str) or label not in entries:
            raise ServeError(
                f"Model {str(label)[:80]!r} is not offered by this server. Pick one of: {', '.join(entries)}."
            )
        return entries[label]


def _real(path) -> str:
    return str(Path(path).expanduser().resolve())


def _run_of(path, registry) -> str | None:
    """The run whose folder (or checkpoint) `path` is, if any."""
    real = _real(path)
    for run in registry.list() if registry is not None else []:
        if real in (_real(run.path), _real(run.path / "checkpoint")):
            return run.name
    return None


def model_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


class ModelCache:
    """Loaded (model, tokenizer) pairs by label, least recently used evicted while the total exceeds `max_bytes`.

    A model being used by a request stays alive for that request even if evicted (the request holds it)."""

    def __init__(self, loader: Callable[[str], tuple], max_bytes: int):
        self.loader, self.max_bytes = loader, max_bytes
        self._items: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, label: str) -> tuple:
        with self._lock:
            if label in self._items:
                self._items.move_to_end(label)
                return self._items[label][:2]
            load_lock = self._loading.setdefault(label, threading.Lock())
        with load_lock:  # two requests for the same new model load it once
            with self._lock:
                if label in self._items:
                    return self._items[label][:2]
            model, tok = self.loader(label)
            size = model_bytes(model)
            with self._lock:
                self._items[label] = (model, tok, size)
                while len(self._items) > 1 and sum(v[2] for v in self._items.values()) > self.max_bytes:
                    self._items.popitem(last=False)
        return model, tok

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._items)

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(v[2] for v in self._items.values())


# --------------------------------------------------------------------------------------------------- backend


def _timing(labels, chunks) -> str:
    return " | ".join(f"**{m}**: {c.stats() if c else 'waiting'}" for m, c in zip(labels, chunks))


def ui_errors(fn):
    """Show ServeError/NbkitError/ValueError messages in the app (gr.Error) instead of a generic 'Error'."""
    import gradio as gr

    @functools.wraps(fn)
    def gen(*a, **kw):
        try:
            yield from fn(*a, **kw)
        except (NbkitError, ValueError) as e:
            raise gr.Error(str(e), print_exception=False) from e

    @functools.wraps(fn)
    def call(*a, **kw):
        try:
            return fn(*a, **kw)
        except (NbkitError, ValueError) as e:
            raise gr.Error(str(e), print_exception=False) from e

    return gen if inspect.isgeneratorfunction(fn) else call


def ui_warn(fn, n_outputs: int):
    """For events whose outputs must stay visible: a refused request shows its message as a gr.Warning toast and
    leaves every output as it was (gr.Error would cover them with red "Error" badges)."""
    import gradio as gr

    def skip():
        return gr.skip() if n_outputs == 1 else tuple(gr.skip() for _ in range(n_outputs))

    @functools.wraps(fn)
    def gen(*a, **kw):
        try:
            yield from fn(*a, **kw)
        except (NbkitError, ValueError) as e:
            gr.Warning(str(e))
            yield skip()

    @functools.wraps(fn)
    def call(*a, **kw):
        try:
            return fn(*a, **kw)
        except (NbkitError, ValueError) as e:
            gr.Warning(str(e))
            return skip()

    return gen if inspect.isgeneratorfunction(fn) else call


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

    def __init__(self, cfg: ServeConfig, registry=None):
        from nbkit import models
        from nbkit.arena import Arena, ArenaConfig, VoteStore
        from nbkit.runs import Registry

        self.cfg = cfg
        self.limits = cfg.limits
        self.registry = registry or Registry(cfg.registry)
        self.catalog = Catalog(cfg.models, self.registry)
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
        arena_cfg = ArenaConfig()
        self.votes = VoteStore(Path(cfg.arena_db or self.registry.root / arena_cfg.db))
        self.arena = Arena(arena_cfg, self.votes, self.arena_pool(), self.limits)
        self.exports = Path(tempfile.mkdtemp(prefix="nbkit-chat-"))

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
        for chunk in stream_generate(model, tok, turns, system, stop=stops, **settings):
            answer = {"role": "assistant", "content": chunk.text}
            yield [answer, label_message(f"{label} · {chunk.stats()}")] if chunk.done else [answer]

    def export_chat(self, history, label="", settings: dict | None = None) -> str:
        """Write the conversation as JSON (messages with their labels, model, settings); returns the file path."""
        data = {
            "app": "nbkit chat",
            "model": label,
            "settings": settings or {},
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "messages": [
                {"role": m.get("role"), "content": message_text(m.get("content"))}
                | ({"label": m["metadata"]["title"]} if (m.get("metadata") or {}).get("title") else {})
                for m in (history or [])
                if isinstance(m, dict)
            ],
        }
        path = self.exports / f"conversation-{secrets.token_hex(4)}.json"
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False))
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
            return lambda ev: stream_generate(model, tok, msgs, system, stop_event=ev, **settings)

        yield from stream_many([job(m, t, e) for (m, t), e in zip(pairs, turns)])

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

    def vote(self, rnd, outcome: str, request=None):
        """(who was who, the round marked voted). Refusals raise ArenaError/LimitError with their message."""
        session, client = who(request)
        reveal = self.arena.vote(rnd, outcome, session, client)
        return reveal, {**rnd, "voted": True}

    def leaderboard(self, method: str = "bt"):
        return self.arena.board(method)

    def board_notes(self, method: str = "bt") -> str:
        """Markdown under the leaderboard: what the numbers can and cannot say yet."""
        from nbkit.leaderboard import position_bias, separation

        battles = self.votes.battles()
        if not battles:
            return "No votes yet."
        lines = separation(self.arena.board(method)) + [position_bias(battles)]
        return "\n".join(f"- {x}" for x in lines)

    def matrices(self):
        from nbkit.leaderboard import matrices

        return matrices(self.votes.battles())

    def batch(self, labels, task_name: str = "arithmetic", n: int = 20, max_new_tokens: int = 32):
        """Accuracy table of each selected model on the same `n` test examples of a task (greedy)."""
        from nbkit.arena import batch_accuracy
        from nbkit.tasks import get_task

        labels = list(dict.fromkeys(m for m in labels or [] if self.catalog.source(m)))
        if not labels:
            raise ServeError("Select at least one model for the batch evaluation.")
        n = int(min(max(int(n), 1), self.limits.max_batch_work))
        check_batch(n, len(labels), self.limits)
        task = get_task(task_name)
        max_new_tokens = min(max(int(max_new_tokens), 1), self.cfg.max_new_tokens)
        return batch_accuracy(self.model, labels, task, task.test(n), max_new_tokens)

    def token_view(self, prompt, labels, answers):
        """Per-token log-probs of each answer under every model in `labels` (see nbkit.arena.token_view)."""
        from nbkit.arena import token_view

        if not prompt:
            raise ServeError("The token view scores the answers of the last side-by-side run: run one first.")
        prompt = check_prompt(prompt, self.cfg.max_input_chars)
        kept = [(m, clean_text(a)) for m, a in zip(labels or [], answers or []) if m and a]
        if not kept:
            raise ServeError("The token view scores the answers of the last side-by-side run: run one first.")
        models = {m: self.model(m) for m, _ in kept}
        return token_view(models, prompt, [m for m, _ in kept], [a for _, a in kept])


# --------------------------------------------------------------------------------------------------- launching


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise ConfigError("--auth must look like USER:PASS (both non-empty), e.g. --auth alice:s3cret")
    return user, password


def share_credentials(share: bool, auth: str | None, say=print) -> tuple[str, str] | None:
    """The login to require. --share without --auth gets a generated password, printed once: a public link is
    never open to anyone who finds it."""
    creds = parse_auth(auth)
    if share and creds is None:
        creds = ("nbkit", secrets.token_urlsafe(12))
        say(f"nbkit: --share without --auth: generated login  user: {creds[0]}  password: {creds[1]}")
    return creds


def share_problem(timeout: float = 5.0) -> str | None:
    """None when Gradio's share server answers; otherwise the real reason, e.g. "ConnectError: [Errno -3] ..."."""
    import httpx
    from gradio import networking

    if networking.GRADIO_SHARE_SERVER_ADDRESS:
        return None  # a self-hosted share server: let Gradio try it
    try:
        r = httpx.get(networking.GRADIO_API_SERVER, timeout=timeout)
        r.raise_for_status()
        r.json()[0]["host"]
        return None
    except Exception as e:  # noqa: BLE001 - any failure means no link; report what it was
        return f"{type(e).__name__}: {e}".strip()


def find_app(name: str) -> Path:
    """apps/<name>.py from $NBKIT_APPS, the repository this nbkit was imported from, or ./apps."""
    if name not in APPS:
        raise ConfigError(f"unknown app {name!r}; use one of {', '.join(APPS)}")
    roots = [os.environ.get("NBKIT_APPS"), Path(__file__).resolve().parents[1] / "apps", Path.cwd() / "apps"]
    for root in roots:
        if root and (Path(root) / f"{name}.py").is_file():
            return Path(root) / f"{name}.py"
    raise ConfigError(
        f"apps/{name}.py not found: the apps live in the nbkit repository, not in the installed package. Run from "
        "a clone (pip install -e .), or set NBKIT_APPS to the clone's apps/ folder."
    )


def build_app(name: str, backend: Backend):
    """Import apps/<name>.py and return its `build(backend)` Blocks."""
    path = find_app(name)
    spec = importlib.util.spec_from_file_location(f"nbkit_apps_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(backend)


def login_page(app_title: str, user: str | None, generated: bool) -> str:
    """HTML shown above Gradio's login form: what this is, and, for a generated login, the user name (the
    password is printed only in the terminal)."""
    import html

    text = f"<h2>{html.escape(app_title)}</h2><p>Log in with the user name and password your instructor gave you.</p>"
    if generated and user:
        text += (
            f"<p>User name: <b>{html.escape(user)}</b> (the password was printed where the app started).</p>"
        )
    return text


def launch(demo, cfg: ServeConfig, inline: bool = False, say=print):
    """Start `demo` without blocking; returns it (demo.local_url, demo.share_url). Applies the caps (queue,
    uploads off, login attempts per minute), the login and the share policy."""
    from nbkit.limits import LoginGuard

    generated = cfg.share and not cfg.auth
    creds = share_credentials(cfg.share, cfg.auth, say)
    share = cfg.share
    if share:
        problem = share_problem()
        if problem:
            share = False
            say(
                f"nbkit: no public link: Gradio's share server is unreachable from here ({problem}). "
                "Serving locally only."
            )
    if cfg.host not in ("127.0.0.1", "localhost", "::1") and creds is None:
        say(f"nbkit: warning: listening on {cfg.host} without --auth: anyone on this network can use it.")
    demo.queue(default_concurrency_limit=cfg.concurrency, max_size=cfg.queue_size)
    demo.launch(
        server_name=cfg.host,
        server_port=cfg.port,
        auth=LoginGuard(*creds, per_minute=cfg.limits.login_per_minute) if creds else None,
        auth_message=login_page(demo.title or "nbkit", creds[0] if creds else None, generated)
        if creds
        else None,
        share=share,
        inline=inline,
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
        max_threads=max(8, cfg.concurrency * 4),
        max_file_size=cfg.limits.max_file_size,  # 0: uploads off, no app has a file input
    )
    if share and not demo.share_url:
        say(
            "nbkit: no public link: the share tunnel failed after the share server answered. Serving locally only."
        )
    say(f"nbkit: serving at {demo.local_url}" + (f" and {demo.share_url}" if demo.share_url else ""))
    return demo


def launch_inline(
    app: str = "chat", models: Sequence[str] | None = None, profile: str | None = None, keep=None, **overrides
):
    """Show an app inside a notebook (the STaR and budget notebooks end with one).

    In the smoke profile or on CI (or keep=False) it starts, checks that it answers, and closes at once, so
    executing the notebook never blocks. Returns the Blocks; `demo.close()` stops it.
    """
    import httpx

    from nbkit.profiles import get_profile

    prof = get_profile(profile)
    cfg = ServeConfig.for_profile(prof.name)
    if models:
        cfg.models = list(models)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    cfg.threads = cfg.threads or auto_threads(app, cfg.concurrency)
    keep = (prof.name != "smoke" and not os.environ.get("CI")) if keep is None else keep
    demo = launch(build_app(app, Backend(cfg)), cfg, inline=keep)
    if not keep:
        code = httpx.get(f"{demo.local_url}config", timeout=10).status_code
        demo.close()
        print(
            f"nbkit: the {app} app answered (HTTP {code}) and was closed: {prof.name} profile / CI keeps no server."
        )
    return demo


CLI_HELP = {
    "chat": "Chat with one model in the browser (regenerate, undo, edit, JSON download).",
    "compare": "The arena: blind A/B votes, side by side, token view, leaderboard and batch accuracy.",
}


def cli(argv: list[str]) -> int:
    """`nbkit chat [MODEL]` / `nbkit compare [MODEL ...]` (argv[0] is the app name). Blocks until Ctrl-C."""
    app = argv[0]
    p = argparse.ArgumentParser(
        prog=f"nbkit {app}",
        description=CLI_HELP[app],
        epilog="examples:\n  nbkit chat smollm2-135m\n  nbkit compare tiny star-it1 --share\n"
        "  nbkit compare base sft --host 0.0.0.0 --auth class:s3cret\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("models", nargs="*", help="short names, run names, hub ids or checkpoint/adapter folders")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on; 0.0.0.0 = your network")
    p.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    p.add_argument(
        "--share", action="store_true", help="public link (a login is generated if --auth is not given)"
    )
    p.add_argument("--auth", default=None, metavar="USER:PASS", help="login required to open the app")
    p.add_argument("--profile", default=None, help="smoke | cpu | gpu (default $NBKIT_PROFILE or cpu)")
    p.add_argument("--registry", default=None, help="run registry folder (default ./runs or $NBKIT_RUNS)")
    p.add_argument("--db", default=None, help="arena vote file (default <registry>/arena.sqlite)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="cap on new tokens per answer")
    p.add_argument("--cache-gb", type=float, default=None, help="memory for loaded models (default 4)")
    args = p.parse_args(argv[1:])

    from nbkit.profiles import get_profile

    cfg = ServeConfig.for_profile(get_profile(args.profile).name)
    cfg.models = args.models or cfg.models
    cfg.host, cfg.port, cfg.share, cfg.auth = args.host, args.port, args.share, args.auth
    cfg.registry, cfg.arena_db = args.registry, args.db
    if args.max_new_tokens:
        cfg.max_new_tokens = args.max_new_tokens
        cfg.default_new_tokens = min(cfg.default_new_tokens, args.max_new_tokens)
    if args.cache_gb:
        cfg.cache_gb = args.cache_gb
    cfg.threads = auto_threads(app, cfg.concurrency)
    parse_auth(cfg.auth)  # a bad --auth fails before anything loads
    backend = Backend(cfg)
    for name in cfg.models:  # a folder that holds no model fails here, in one line
        _check_launch(name)
    print(f"nbkit: loading {backend.default_models[0]} ...", file=sys.stderr)
    backend.model(backend.default_models[0])  # fail early, and the first user does not wait for loading
    demo = launch(build_app(app, backend), cfg)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        demo.close()
    return 0


def _check_launch(name: str) -> None:
    """One-line refusal of a launch name that cannot be a model: a folder without a checkpoint in it."""
    path = Path(name).expanduser()
    if path.is_dir() and not any((path / f).is_file() for f in ("config.json", "adapter_config.json")):
        raise ServeError(
            f"{name} is a folder without a model in it (no config.json or adapter_config.json). Give a short "
            "name (nbkit models list), a run name (nbkit runs list) or a checkpoint folder."
        )
