"""One generation engine behind both apps: continuous batching over the model's forward pass with a KV cache.

Every decoding step advances all active requests of a model together (one forward of shape (batch, 1)); new
requests join between steps (their prompts are prefilled together, left-padded, and their KV cache is appended to
the running batch's); finished, stopped and cancelled requests leave at the next step and the cache shrinks with
them. The 135M model reads the same weights to decode one token for one user as for thirty, so on a CPU a batch of
thirty costs little more per step than a batch of one.

- Each request keeps its own settings (temperature, top-p, top-k, repetition penalty, max/min new tokens, stop
  strings) and its own seeded torch.Generator: its answer does not depend on who else is in the batch.
- Streaming: every token gives a Chunk (nbkit.serve.streaming) with the text so far and the new part (`delta`),
  never ending in half a UTF-8 character. Closing the iterator (a closed tab, Stop) or a `stop_event` frees the
  slot at the next step.
- One thread runs every model's batch in turn, each step on all the engine's threads: the arena's two models get a
  fair share of the cores and nothing oversubscribes them. `call(fn)` runs other model work (the token view) on
  that thread between steps, for the same reason.
- Interactive requests join before bulk ones (the batch tab, `sample`), so a room's chat never waits behind a
  batch evaluation.

Why not transformers' own continuous batching (`generate_batch`, paged attention)? On CPU it was 2-4x slower
than one batched `generate` on the same prompts; benchmarks/engine_throughput.py measures all three side by side.
Simplified relative to vLLM/TGI: the cache is one left-padded tensor per layer (no pages, no prefix sharing),
prompts are prefilled whole (no chunked prefill), one device, models whose cache layers are all full attention.

    engine = Engine()
    for chunk in engine.stream(model, tok, [{"role": "user", "content": "Hi"}], max_new_tokens=32):
        print(chunk.delta, end="")             # the last chunk has done=True and the whole answer in .text
"""

from __future__ import annotations

import atexit
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from nbkit.errors import NbkitError, ServeError
from nbkit.serve.streaming import Chunk, fit_history


@dataclass
class Sampling:
    """One request's decoding settings (already clamped by nbkit.serve.limits in the apps)."""

    temperature: float = 0.7  # 0 = greedy
    top_p: float = 0.95
    top_k: int = 0  # 0 = no top-k cut
    repetition_penalty: float = 1.0  # 1 = none (CTRL's penalty, as transformers applies it)
    max_new_tokens: int = 128
    min_new_tokens: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None  # None = a random seed


class Request:
    """One answer in flight. Iterating it yields Chunks (the last has done=True); closing the iterator, `cancel()`
    or setting `stop_event` ends it at the next step with the text so far."""

    def __init__(self, ids: list[int], sampling: Sampling, stop_event: threading.Event | None = None):
        self.ids, self.sampling, self.stop_event = list(ids), sampling, stop_event
        seed = sampling.seed if sampling.seed is not None else secrets.randbits(63)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.tokens: list[int] = []  # generated so far, EOS included
        self.text = ""  # what was sent so far
        self.finished = False  # ended at EOS or a stop string (not at max_new_tokens or a cancel)
        self.start = time.perf_counter()
        self.first: float | None = None
        self.last: Chunk | None = None  # set by result()
        self._cancel = threading.Event()
        self._events: queue.Queue = queue.Queue()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set() or (self.stop_event is not None and self.stop_event.is_set())

    def cancel(self) -> None:
        self._cancel.set()

    def __iter__(self) -> Iterator[Chunk]:
        try:
            while True:
                item = self._events.get()
                if isinstance(item, BaseException):
                    if isinstance(item, NbkitError):
                        raise item
                    raise ServeError(f"generation failed: {type(item).__name__}: {item}") from item
                yield item
                if item.done:
                    return
        finally:
            self.cancel()  # a consumer that stops reading frees the slot

    def result(self) -> Chunk:
        """Wait for the last Chunk (the whole answer); again, it returns the same one."""
        if self.last is None:
            for chunk in self:
                self.last = chunk
        return self.last

    def emit(self, text: str, done: bool) -> None:
        now = time.perf_counter()
        if done:
            text = text.rstrip("\ufffd").strip()  # a max-tokens cut can end inside a character
        elif not text or text.endswith("\ufffd") or text == self.text:
            return  # nothing new, or half a UTF-8 character: wait for the next token
        if self.first is None and text:
            self.first = now - self.start
        delta = text[len(self.text) :] if text.startswith(self.text) else text
        self.text = text
        self._events.put(Chunk(text, len(self.tokens), now - self.start, self.first, done, now, delta))

    def fail(self, error: BaseException) -> None:
        self._events.put(error)


def pick(logits: torch.Tensor, requests: Sequence[Request], eos: Sequence[int]) -> list[int]:
    """Next token of each row, each with its own settings and generator.

    logits: (batch, vocab), raw. Greedy rows (temperature 0) take the argmax; the others are warped with
    transformers' own logits processors (temperature, then top-k, then top-p, as `generate` orders them),
    grouped by identical settings, and drawn with their request's generator.
    """
    from transformers import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    logits = logits.float()
    for i, r in enumerate(requests):
        s = r.sampling
        if len(r.tokens) < s.min_new_tokens:
            logits[i, list(eos)] = -float("inf")
        if s.repetition_penalty != 1.0:
            seen = torch.tensor([r.ids + r.tokens], device=logits.device)
            logits[i : i + 1] = RepetitionPenaltyLogitsProcessor(s.repetition_penalty)(
                seen, logits[i : i + 1]
            )
    out = logits.argmax(-1).tolist()
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(requests):
        s = r.sampling
        if s.temperature > 0:
            groups.setdefault((s.temperature, s.top_k, s.top_p), []).append(i)
    for (temperature, top_k, top_p), rows in groups.items():
        warp = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
        warp += [TopKLogitsWarper(top_k)] if top_k > 0 else []
        warp += [TopPLogitsWarper(top_p)] if top_p < 1.0 else []
        probs = warp(None, logits[rows]).softmax(-1)
        for j, i in enumerate(rows):
            out[i] = int(torch.multinomial(probs[j], 1, generator=requests[i].generator))
    return out


def _pad_left(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """`x` with zeros prepended along `dim` up to `width`."""
    extra = width - x.shape[dim]
    if extra <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x.new_zeros(shape), x], dim=dim)


class ModelBatch:
    """The running batch of one model: its requests (rows), their KV cache (one left-padded tensor per layer,
    shape (rows, kv_heads, width, head_dim)) and the attention mask (rows, width) that tells padding apart."""

    def __init__(self, model, tok):
        from nbkit.sampling import eos_ids

        self.model, self.tok = model, tok
        self.eos = eos_ids(model, tok)
        self.device = next(model.parameters()).device
        self.rows: list[Request] = []
        self.waiting: deque[Request] = deque()  # interactive requests
        self.bulk: deque[Request] = deque()  # batch evaluation: joins when no interactive request waits
        self.cache = None
        self.mask: torch.Tensor | None = None

    @property
    def busy(self) -> bool:
        return bool(self.rows or self.waiting or self.bulk)

    def step(self, max_rows: int, max_prefill: int) -> None:
        """Drop cancelled rows, let waiting requests join (up to `max_rows` rows and `max_prefill` prompt tokens,
        at least one), then decode one token for every row."""
        self.leave([r for r in self.rows if r.cancelled])
        joining, tokens = [], 0
        for line in (self.waiting, self.bulk):
            while line and len(self.rows) + len(joining) < max_rows:
                r = line[0]
                if joining and tokens + len(r.ids) > max_prefill:
                    break
                line.popleft()
                if r.cancelled:
                    r.emit("", True)
                    continue
                joining.append(r)
                tokens += len(r.ids)
        if joining:
            try:
                self.join(joining)
            except Exception as e:
                for r in joining:
                    r.fail(e)
                raise
        if self.rows:
            self.decode()

    @torch.inference_mode()
    def join(self, new: list[Request]) -> None:
        """Prefill the new requests together and append their cache to the batch's; each gets its first token."""
        from transformers.cache_utils import DynamicLayer

        batch = self.tok.pad({"input_ids": [r.ids for r in new]}, padding_side="left", return_tensors="pt")
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1
        )
        cache = out.cache
        if any(type(layer) is not DynamicLayer for layer in cache.layers):
            raise ServeError(
                "the serving engine supports full-attention caches only; start the app with --engine off"
            )
        if self.cache is None:
            self.cache, self.mask = cache, mask
        else:
            width = max(self.mask.shape[1], mask.shape[1])
            for old, add in zip(self.cache.layers, cache.layers):
                old.keys = torch.cat([_pad_left(old.keys, width, 2), _pad_left(add.keys, width, 2)])
                old.values = torch.cat([_pad_left(old.values, width, 2), _pad_left(add.values, width, 2)])
            self.mask = torch.cat([_pad_left(self.mask, width, 1), _pad_left(mask, width, 1)])
        self.rows += new
        self.advance(new, out.logits[:, -1])

    @torch.inference_mode()
    def decode(self) -> None:
        """One token for every row: a forward of each row's last token against the cache."""
        last = torch.tensor([[r.tokens[-1]] for r in self.rows], device=self.device)
        positions = self.mask.sum(-1, keepdim=True)  # real tokens so far = the new token's position
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        out = self.model(
            input_ids=last,
            attention_mask=self.mask,
            position_ids=positions,
            cache=self.cache,
            use_cache=True,
        )
        self.advance(list(self.rows), out.logits[:, -1])

    def advance(self, requests: list[Request], logits: torch.Tensor) -> None:
        """Append each request's next token, stream its text, and let the finished ones leave."""
        from nbkit.sampling import cut_at_stop

        ended = []
        for r, token in zip(requests, pick(logits, requests, sorted(self.eos))):
            r.tokens.append(token)
            text, stopped = cut_at_stop(self.tok.decode(r.tokens, skip_special_tokens=True), r.sampling.stop)
            r.finished = token in self.eos or stopped
            done = r.finished or len(r.tokens) >= r.sampling.max_new_tokens or r.cancelled
            r.emit(text, done)
            if done:
                ended.append(r)
        self.leave(ended, emit=False)

    def leave(self, gone: list[Request], emit: bool = True) -> None:
        """Remove rows from the batch and its cache; trim the padding columns no remaining row needs."""
        if not gone:
            return
        for r in gone:
            if emit:
                r.emit(r.text, True)
        keep = [i for i, r in enumerate(self.rows) if r not in gone]
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.cache = self.mask = None
            return
        index = torch.tensor(keep, device=self.device)
        self.mask = self.mask[index]
        start = int(self.mask.any(0).nonzero()[0])  # first column some remaining row uses
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]

    def fail(self, error: BaseException) -> None:
        """A forward failed: every request of this model gets the error, and the batch starts empty."""
        for r in self.rows + list(self.waiting) + list(self.bulk):
            r.fail(error)
        self.rows, self.cache, self.mask = [], None, None
        self.waiting.clear()
        self.bulk.clear()


class Engine:
    """Continuous batching for every model a server has loaded: one ModelBatch per model, stepped in turn by one
    thread. `max_rows` caps each model's batch (more requests wait for a free row); `max_prefill` caps the prompt
    tokens that join in one step (a long prompt delays the running rows by one prefill, not by many); `threads`
    are torch's threads on the engine thread (0 = as many as cores are free, re-checked every 10 s)."""

    def __init__(self, max_rows: int = 64, max_prefill: int = 2048, threads: int = 0):
        self.max_rows, self.max_prefill, self.threads = max_rows, max_prefill, threads
        self._batches: dict[int, ModelBatch] = {}
        self._calls: deque = deque()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------------------------------- requests

    def submit(
        self, model, tok, ids: list[int], sampling: Sampling, stop_event=None, bulk: bool = False
    ) -> Request:
        """Queue one request (prompt token ids) for `model`; iterate the Request for its Chunks."""
        request = Request(ids, sampling, stop_event)
        with self._cv:
            if self._closed:
                raise ServeError("the serving engine is closed")
            batch = self._batches.get(id(model))
            if batch is None:
                batch = self._batches[id(model)] = ModelBatch(model, tok)
            (batch.bulk if bulk else batch.waiting).append(request)
            self._start()
            self._cv.notify()
        return request

    def stream(
        self,
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
        """Stream one chat answer: the same arguments, Chunks and refusals as nbkit.serve.streaming.stream_generate
        (a chat that does not fit the context, even without its oldest turns, is refused with its ServeError)."""
        from nbkit.sampling import context_length, encode_prompts

        msgs = fit_history(tok, messages, max_new_tokens, context_length(model), system)
        ids = encode_prompts(tok, [msgs], chat=True, system=system)[0]
        sampling = Sampling(
            float(temperature),
            float(top_p),
            int(top_k or 0),
            float(repetition_penalty or 1.0),
            int(max_new_tokens),
            int(min_new_tokens),
            tuple(s for s in stop or () if s),
            seed,
        )
        yield from self.submit(model, tok, ids, sampling, stop_event)

    def sample(
        self,
        model,
        tok,
        prompts: list,
        k: int = 1,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        chat: bool = True,
        system: str | None = None,
        stop: list[str] | None = None,
        batch_size: int = 64,
        progress: bool = False,
        desc: str = "",
    ):
        """nbkit.sampling.sample through the engine (bulk requests): `k` completions per prompt, as Samples with
        the same accounting (tokens up to and including EOS, finished at EOS or a stop string). No log-probs;
        `batch_size`, `progress` and `desc` are accepted for sample's signature (the engine sizes its own batch)."""
        from nbkit.sampling import Completion, Samples, check_fits, context_length, encode_prompts

        start = time.perf_counter()
        ids = encode_prompts(tok, prompts, chat, system)
        check_fits(ids, max_new_tokens, context_length(model))
        settings = dict(
            temperature=float(temperature), top_p=float(top_p), max_new_tokens=int(max_new_tokens)
        )
        settings["stop"] = tuple(s for s in stop or () if s)
        requests = [
            (i, self.submit(model, tok, p, Sampling(**settings, seed=seed * 100_003 + i * k + j), bulk=True))
            for i, p in enumerate(ids)
            for j in range(k)
        ]
        items = [
            Completion(i, r.result().text, len(r.tokens), r.finished, list(r.tokens)) for i, r in requests
        ]
        return Samples(items, k, time.perf_counter() - start)

    def call(self, fn: Callable[[], object]):
        """Run `fn()` on the engine thread between two steps and return its result (or raise its error): other
        work on the models (scoring) then never competes with decoding for the cores."""
        done, box = threading.Event(), {}

        def run():
            try:
                box["value"] = fn()
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                box["error"] = e
            done.set()

        with self._cv:
            if self._closed:
                raise ServeError("the serving engine is closed")
            self._calls.append(run)
            self._start()
            self._cv.notify()
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def close(self, timeout: float = 10.0) -> None:
        """Stop the engine: requests in flight end at the next step with their text so far, then the thread
        stops (run at exit too: a thread killed inside a torch operation aborts the interpreter's shutdown)."""
        with self._cv:
            self._closed = True
            for batch in self._batches.values():
                for r in batch.rows + list(batch.waiting) + list(batch.bulk):
                    r.cancel()
            self._cv.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # ------------------------------------------------------------------------------------------- the loop

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            if self._thread is None:
                atexit.register(self.close)
            self._thread = threading.Thread(target=self._run, daemon=True, name="nbkit-engine")
            self._thread.start()

    def _run(self) -> None:
        from nbkit import threads

        checked = -float("inf")
        while True:
            with self._cv:
                while not self._calls and not any(b.busy for b in self._batches.values()):
                    self._batches.clear()  # idle: evicted models can be freed
                    if self._closed:
                        return
                    self._cv.wait()
                calls, batches = list(self._calls), list(self._batches.values())
                self._calls.clear()
            if time.perf_counter() - checked > 10.0:  # torch's thread count is per thread: set it here
                if self.threads:
                    torch.set_num_threads(self.threads)
                else:
                    threads.adapt()
                checked = time.perf_counter()
            for fn in calls:
                fn()
            for batch in batches:  # one step each: several models share the cores in turn
                try:
                    batch.step(self.max_rows, self.max_prefill)
                except Exception as e:  # noqa: BLE001 - one model's failure ends its requests, not the engine
                    batch.fail(e)
