"""Batched sampling: k completions per prompt, left-padded batches, chat templates, stop at EOS, seeded.

`transformers.generate` does the decoding; this module adds what a loop of `generate` calls lacks:
- batching across prompts (sorted by length so that batches pad little) with k return sequences each;
- the accounting the diagnostics need: tokens per completion, whether it stopped, optional per-token log-probs
  under the model (raw, not temperature-scaled), and real tokens/s;
- a clear error for a prompt that does not fit in the context window;
- a tqdm bar.

    out = sample(model, tok, ["What is 2 + 2?"], k=4, temperature=1.0)
    out.texts()        # [["4", "2 + 2 = 4", ...]]  shape (n_prompts, k)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from nbkit import threads


@dataclass
class Completion:
    prompt_index: int
    text: str
    n_tokens: int  # generated tokens up to and including EOS
    finished: bool  # stopped at EOS (or a stop string) rather than at max_new_tokens
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None  # log p(token | prefix) under the model, one per generated token


@dataclass
class Samples:
    """All completions, prompt-major: items[i * k + j] is the j-th completion of prompt i."""

    items: list[Completion]
    k: int
    seconds: float

    def texts(self) -> list[list[str]]:
        """Shape (n_prompts, k)."""
        return [[c.text for c in self.items[i : i + self.k]] for i in range(0, len(self.items), self.k)]

    def grouped(self) -> list[list[Completion]]:
        return [self.items[i : i + self.k] for i in range(0, len(self.items), self.k)]

    @property
    def n_tokens(self) -> int:
        return sum(c.n_tokens for c in self.items)

    @property
    def tokens_per_second(self) -> float:
        return self.n_tokens / self.seconds if self.seconds > 0 else 0.0


def to_messages(prompt, system: str | None = None) -> list[dict]:
    """A prompt as chat messages: a string becomes one user turn; a message list is kept as it is."""
    if isinstance(prompt, str):
        msgs = [{"role": "user", "content": prompt}]
    else:
        msgs = list(prompt)
    if system is not None and (not msgs or msgs[0]["role"] != "system"):
        msgs = [{"role": "system", "content": system}] + msgs
    return msgs


def encode_prompts(tokenizer, prompts, chat: bool = True, system: str | None = None) -> list[list[int]]:
    """Token ids of each prompt, with the chat template (and generation prompt) applied when `chat`."""
    if not chat:
        return [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    texts = [
        tokenizer.apply_chat_template(to_messages(p, system), tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def context_length(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 0) or 2048)


def check_fits(ids: list[list[int]], max_new_tokens: int, limit: int) -> None:
    for i, p in enumerate(ids):
        if len(p) + max_new_tokens > limit:
            raise ValueError(
                f"prompt {i} is {len(p)} tokens; with max_new_tokens={max_new_tokens} that exceeds the model's "
                f"context of {limit} tokens. Shorten the prompt or lower max_new_tokens."
            )


def _left_pad(batch: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for r, p in enumerate(batch):
        ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[r, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


def _cut(tokens: list[int], eos_ids: set[int]) -> tuple[list[int], bool]:
    """Tokens up to and including the first EOS, and whether one was found."""
    for n, t in enumerate(tokens):
        if t in eos_ids:
            return tokens[: n + 1], True
    return tokens, False


def eos_ids(model, tokenizer) -> set[int]:
    """Every token id that ends an answer: the model's generation config's EOS ids and the tokenizer's."""
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids = ids if isinstance(ids, list) else [ids]
    return {i for i in ids + [tokenizer.eos_token_id] if i is not None}


def generation_kwargs(
    model,
    tokenizer,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    stop: list[str] | None = None,
) -> dict:
    """The `model.generate` keyword arguments that batch sampling and the apps' streaming share: EOS ids, pad id,
    sampling (temperature > 0; top_k=0: no top-k cut) or greedy decoding (temperature 0), and stop strings (empty
    ones dropped). The caller adds its own (num_return_sequences, streamer, ...)."""
    eos = sorted(eos_ids(model, tokenizer))
    kw = dict(
        max_new_tokens=int(max_new_tokens),
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0],
        eos_token_id=eos,
    )
    if temperature > 0:
        kw.update(do_sample=True, temperature=float(temperature), top_p=float(top_p), top_k=int(top_k))
    else:
        kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    stop = [s for s in (stop or []) if s]
    if stop:
        kw.update(stop_strings=stop, tokenizer=tokenizer)
    return kw


def cut_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """`text` up to the first stop string, and whether one was found.

    Example: cut_at_stop("4 Q: 5 + 6", [" Q:"]) -> ("4", True)
    """
    cut = min((text.find(s) for s in (stop or []) if s and s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


@torch.inference_mode()
def sample(
    model,
    tokenizer,
    prompts: list,
    k: int = 1,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    chat: bool = True,
    system: str | None = None,
    stop: list[str] | None = None,
    logprobs: bool = False,
    progress: bool = True,
    desc: str = "sampling",
) -> Samples:
    """Sample `k` completions for each prompt.

    prompts: strings (one user turn each, when `chat`) or chat message lists.
    batch_size: completions per forward pass (prompts per batch = batch_size // k, at least 1). 64 measured
        best on a 2-core CPU with the 135M model (benchmarks/sampling_throughput.py: 9.3x a one-prompt loop).
    temperature=0 decodes greedily. Same arguments and seed give the same completions.
    Returns Samples, prompt-major, with n_prompts * k items.
    """
    from tqdm.auto import tqdm

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not prompts:
        return Samples([], k, 0.0)
    ids = encode_prompts(tokenizer, prompts, chat, system)
    check_fits(ids, max_new_tokens, context_length(model))
    threads.adapt()  # as many threads as cores free right now (a busy laptop stays usable)
    gen_kwargs = generation_kwargs(model, tokenizer, max_new_tokens, temperature, top_p, 0, stop)
    gen_kwargs.update(num_return_sequences=k, return_dict_in_generate=True, output_logits=logprobs)
    eos, pad_id = set(gen_kwargs["eos_token_id"]), gen_kwargs["pad_token_id"]
    device = next(model.parameters()).device
    per_batch = max(1, batch_size // k)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths share a batch: less padding
    results: dict[int, list[Completion]] = {}

    start = time.perf_counter()
    n_done_tokens = 0
    bar = tqdm(total=len(ids) * k, desc=desc, unit="seq", disable=not progress, leave=False)
    for b, lo in enumerate(range(0, len(order), per_batch)):
        rows = order[lo : lo + per_batch]
        input_ids, mask = _left_pad([ids[i] for i in rows], pad_id, device)
        torch.manual_seed(seed * 100_003 + b)
        out = model.generate(input_ids=input_ids, attention_mask=mask, **gen_kwargs)
        new = out.sequences[:, input_ids.shape[1] :].tolist()
        if logprobs:
            steps = torch.stack(out.logits, dim=1).float().log_softmax(-1)  # (rows*k, steps, vocab)
            chosen = torch.gather(steps, 2, out.sequences[:, input_ids.shape[1] :, None]).squeeze(-1).tolist()
        for r, tokens in enumerate(new):
            kept, finished = _cut(tokens, eos)
            text = tokenizer.decode(kept, skip_special_tokens=True)
            text, stopped = cut_at_stop(text, stop)
            finished = finished or stopped
            c = Completion(
                rows[r // k],
                text.strip(),
                len(kept),
                finished,
                kept,
                chosen[r][: len(kept)] if logprobs else None,
            )
            results.setdefault(c.prompt_index, []).append(c)
            n_done_tokens += len(kept)
        bar.update(len(new))
        bar.set_postfix(tok_s=f"{n_done_tokens / (time.perf_counter() - start):.0f}")
    bar.close()
    items = [c for i in range(len(ids)) for c in results[i]]
    return Samples(items, k, time.perf_counter() - start)


@torch.inference_mode()
def token_logprobs(
    model, tokenizer, prompt, completion: str | list[int], chat: bool = True, system: str | None = None
) -> list[tuple[str, float]]:
    """Per-token log-probs of `completion` after `prompt` under `model`: [(token_text, logprob), ...].

    Used to compare how two checkpoints score the same answer, token by token. `completion` may be token ids,
    which avoids a decode/encode round trip.
    """
    prompt_ids = encode_prompts(tokenizer, [prompt], chat, system)[0]
    comp_ids = (
        list(completion)
        if not isinstance(completion, str)
        else tokenizer(completion, add_special_tokens=False)["input_ids"]
    )
    if not comp_ids:
        return []
    check_fits([prompt_ids + comp_ids], 0, context_length(model))
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids + comp_ids], device=device)
    logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float().log_softmax(-1)
    lp = logits.gather(1, torch.tensor(comp_ids, device=device)[:, None]).squeeze(1).tolist()
    return [(tokenizer.decode([t]), v) for t, v in zip(comp_ids, lp)]
