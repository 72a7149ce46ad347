"""Token streaming for the apps: one chat answer as it is generated, and several models at once.

The apps' answers go through nbkit.serve.engine (batched across users), which yields the same Chunks;
`stream_generate` is the per-answer path that `--engine off` keeps.

- `stream_generate`: `generate` runs in a daemon thread with a streamer that emits text at every token
  (transformers' TextIteratorStreamer waits for a space, which delays the first word); closing the iterator or
  setting `stop_event` stops generation at the next token.
- `stream_many`: several streams in their own threads, merged as chunks arrive.
- `fit_history`: drop the oldest turns until a chat fits the context window.
- `paced`: pass on at most one update per interval (the page cannot show more, and each one costs the server
  a JSON diff per listener).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from nbkit.errors import NbkitError, ServeError


def fit_history(
    tok, messages: list[dict], max_new_tokens: int, limit: int, system: str | None = None
) -> list[dict]:
    """Drop the oldest turns until the chat (plus `max_new_tokens`) fits in `limit` tokens; the last user turn
    is always kept, and a ServeError says so when even it does not fit."""
    from nbkit.sampling import encode_prompts

    msgs = list(messages)
    while True:
        n = len(encode_prompts(tok, [msgs], chat=True, system=system)[0])
        if n + max_new_tokens <= limit:
            return msgs
        if len(msgs) <= 1:
            raise ServeError(
                f"The prompt is {n} tokens; with {max_new_tokens} new tokens that exceeds the model's context of "
                f"{limit} tokens. Shorten it or lower max new tokens."
            )
        msgs = msgs[2:] if len(msgs) > 2 else msgs[1:]


@dataclass
class Chunk:
    """The answer so far. `at` is time.perf_counter() when it arrived (to show interleaving across models);
    `delta` is what this chunk added to the text (whole UTF-8 characters only)."""

    text: str
    n_tokens: int
    seconds: float
    first_token_s: float | None
    done: bool = False
    at: float = 0.0
    delta: str = ""

    @property
    def tokens_per_second(self) -> float:
        return self.n_tokens / self.seconds if self.seconds > 0 else 0.0

    def stats(self) -> str:
        first = f" · first token {self.first_token_s:.2f} s" if self.first_token_s is not None else ""
        return f"{self.n_tokens} tokens · {self.tokens_per_second:.1f} tok/s{first}"


def _streamer_class():
    from transformers import StoppingCriteria, TextIteratorStreamer

    class TokenStreamer(TextIteratorStreamer):
        """Emits text at every token (the parent waits for a space, which delays the first word), except while
        the text ends in half a UTF-8 character. Counts the generated tokens."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.n_tokens = 0

        def put(self, value):
            if self.skip_prompt and self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False
                return
            ids = value.reshape(-1).tolist()
            self.n_tokens += len(ids)
            self.token_cache.extend(ids)
            text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
            if not text.endswith("\ufffd"):
                self.on_finalized_text(text[self.print_len :])
                self.print_len = len(text)

    class EventStop(StoppingCriteria):
        def __init__(self, *events: threading.Event | None):
            self.events = [e for e in events if e is not None]

        def __call__(self, input_ids, scores, **kw):
            return any(e.is_set() for e in self.events)

    return TokenStreamer, EventStop


def stream_generate(
    model,
    tok,
    messages: list[dict],
    system: str | None = None,
    temperature: float = 0.7,
    top_p: float = 0.95,
    max_new_tokens: int = 128,
    stop: Sequence[str] | None = None,
    stop_event: threading.Event | None = None,
    min_new_tokens: int = 0,
    seed: int | None = None,
    top_k: int = 0,
    repetition_penalty: float = 1.0,
) -> Iterator[Chunk]:
    """Stream one answer to a chat. Yields Chunks with the full text so far; the last one has done=True.

    `generate` runs in a daemon thread; closing this iterator (or setting `stop_event`) stops it at the next token.
    `seed` seeds torch's global RNG (reproducible only when one stream runs at a time, as in tests). `top_k=0`
    means no top-k cut; `repetition_penalty=1.0` means none (CTRL's penalty, as transformers applies it).
    """
    import torch

    from nbkit.sampling import context_length, cut_at_stop, encode_prompts, generation_kwargs

    streamer_cls, event_stop = _streamer_class()
    msgs = fit_history(tok, messages, max_new_tokens, context_length(model), system)
    ids = encode_prompts(tok, [msgs], chat=True, system=system)[0]
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    closed = threading.Event()  # set when this stream ends; `stop_event` may be shared with other streams
    streamer = streamer_cls(tok, skip_prompt=True, skip_special_tokens=True, timeout=300)
    kwargs = generation_kwargs(model, tok, max_new_tokens, temperature, top_p, top_k, list(stop or []))
    kwargs.update(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        min_new_tokens=int(min_new_tokens),
        streamer=streamer,
        stopping_criteria=[event_stop(stop_event, closed)],
    )
    if repetition_penalty and float(repetition_penalty) != 1.0:
        kwargs["repetition_penalty"] = float(repetition_penalty)
    stop = kwargs.get("stop_strings", [])
    failure: list[BaseException] = []

    def run():
        try:
            if seed is not None:
                torch.manual_seed(seed)
            with torch.inference_mode():
                model.generate(**kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer below
            failure.append(e)
            streamer.end()

    start = time.perf_counter()
    thread = threading.Thread(target=run, daemon=True, name="nbkit-generate")
    thread.start()
    text, first = "", None
    try:
        for piece in streamer:
            if not piece:
                continue
            text += piece
            text = cut_at_stop(text, stop)[0]
            if text and first is None:
                first = time.perf_counter() - start
            now = time.perf_counter()
            yield Chunk(text, streamer.n_tokens, now - start, first, False, now)
        if failure:
            raise ServeError(f"generation failed: {type(failure[0]).__name__}: {failure[0]}")
        now = time.perf_counter()
        text = text.rstrip("\ufffd").strip()  # a max-tokens cut can end inside a character
        yield Chunk(text, streamer.n_tokens, now - start, first, True, now)
    finally:
        closed.set()
        thread.join(timeout=30)


def stream_many(jobs: Sequence[Callable[[threading.Event], Iterator[Chunk]]]) -> Iterator[list[Chunk | None]]:
    """Run several streams at once, each in its own thread; yield the latest Chunk of every stream whenever any of
    them advances. Closing the iterator stops all of them. Errors end that stream with its message as text."""
    events: queue.Queue = queue.Queue()
    stop = threading.Event()

    def worker(i: int, job) -> None:
        try:
            for chunk in job(stop):
                events.put((i, chunk))
        except Exception as e:  # noqa: BLE001 - one failing model must not end the others
            msg = str(e) if isinstance(e, NbkitError) else f"{type(e).__name__}: {e}"
            events.put((i, Chunk(f"[error] {msg}", 0, 0.0, None, True, time.perf_counter())))
        finally:
            events.put((i, None))

    threads = [threading.Thread(target=worker, args=(i, j), daemon=True) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    latest: list[Chunk | None] = [None] * len(jobs)
    running = len(jobs)
    try:
        while running:
            i, chunk = events.get()
            if chunk is None:
                running -= 1
                continue
            latest[i] = chunk
            yield list(latest)
    finally:
        stop.set()


def paced(updates: Iterator, interval: float = 0.1, clock=time.perf_counter) -> Iterator:
    """Yield the first update, then the latest one at most every `interval` seconds, and always the last one.

    Example: 16 token updates 30 ms apart with interval 0.1 -> about 5 updates, the last one included.
    """
    last_sent, pending, sent_any = 0.0, None, False
    try:
        for item in updates:
            now = clock()
            if not sent_any or now - last_sent >= interval:
                yield item
                last_sent, pending, sent_any = now, None, True
            else:
                pending = item
        if pending is not None:
            yield pending
    finally:
        close = getattr(updates, "close", None)
        if close is not None:
            close()  # Stop: end the generation threads now, not when the garbage collector gets to them
