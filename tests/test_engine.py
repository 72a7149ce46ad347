"""The serving engine's contract (nbkit.serve.engine), on a tiny model: requests interleave, cancelling frees the
slot, each request keeps its own settings and stop strings, and greedy answers equal a plain greedy `generate`.

The `tiny` model answers every prompt greedily with newlines, so equality with `generate` would prove little; these
tests use its shape and tokenizer with larger random weights (`sharp`), whose greedy answers differ per prompt.
"""

import copy
import threading
import time

import pytest
import torch

from nbkit.sampling import encode_prompts
from nbkit.serve.engine import Engine, Request, Sampling, pick
from nbkit.serve.streaming import Chunk

PROMPTS = [
    "Hello there",
    "What is 2 + 2? Answer briefly, and show your work step by step.",
    "x",
    "Tell me a story about the moon and the sun, in three sentences.",
]
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def sharp(tiny):
    from transformers import LlamaForCausalLM

    cfg = copy.deepcopy(tiny[0].config)
    cfg.initializer_range = 0.2
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval(), tiny[1]


@pytest.fixture
def engine():
    e = Engine(max_rows=8, threads=1)
    yield e
    e.close()


def ids_of(tok, prompt: str) -> list[int]:
    return encode_prompts(tok, [prompt])[0]


def greedy_generate(model, tok, ids: list[int], n: int, **kw) -> list[int]:
    x = torch.tensor([ids])
    with torch.inference_mode():
        out = model.generate(
            x,
            attention_mask=torch.ones_like(x),
            do_sample=False,
            max_new_tokens=n,
            pad_token_id=tok.pad_token_id,
            **kw,
        )
    return out[0, len(ids) :].tolist()


def collect(request: Request, box: list, first: threading.Event | None = None) -> threading.Thread:
    """Read `request` in a thread into `box`; `first` is set at its first chunk."""

    def run():
        for chunk in request:
            box.append(chunk)
            if first is not None:
                first.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_greedy_equals_plain_generate_for_each_prompt(sharp, engine):
    model, tok = sharp
    ids = [ids_of(tok, p) for p in PROMPTS]
    expected = [greedy_generate(model, tok, p, 12) for p in ids]
    assert len({tuple(e) for e in expected}) == len(PROMPTS)  # the answers differ: equality means something
    together = [engine.submit(model, tok, p, Sampling(temperature=0, max_new_tokens=12)) for p in ids]
    assert [(r.result(), r.tokens)[1] for r in together] == expected
    staggered = []  # joining a batch that is already decoding, at different cache widths
    for p in ids:
        staggered.append(engine.submit(model, tok, p, Sampling(temperature=0, max_new_tokens=12)))
        time.sleep(0.02)
    assert [(r.result(), r.tokens)[1] for r in staggered] == expected
    assert together[0].result().text == tok.decode(expected[0], skip_special_tokens=True).strip()


def test_a_second_request_streams_before_the_first_finishes(sharp, engine):
    model, tok = sharp
    long = engine.submit(model, tok, ids_of(tok, PROMPTS[1]), Sampling(temperature=0, max_new_tokens=64))
    first_of_long, chunks_long = threading.Event(), []
    t_long = collect(long, chunks_long, first_of_long)
    assert first_of_long.wait(TIMEOUT)
    short = engine.submit(model, tok, ids_of(tok, PROMPTS[0]), Sampling(temperature=0, max_new_tokens=4))
    chunks_short: list[Chunk] = []
    collect(short, chunks_short).join(TIMEOUT)
    t_long.join(TIMEOUT)
    assert chunks_short[-1].done and chunks_long[-1].done
    assert chunks_short[0].at < chunks_long[-1].at  # the second one's first token came while the first ran
    assert chunks_short[-1].at < chunks_long[-1].at
    assert chunks_long[-1].n_tokens == 64 and chunks_short[-1].n_tokens == 4


def test_closing_a_stream_frees_its_slot(sharp):
    model, tok = sharp
    engine = Engine(max_rows=1, threads=1)  # one row: the second request can only run once the first left
    try:
        first = engine.submit(
            model, tok, ids_of(tok, PROMPTS[0]), Sampling(temperature=0, max_new_tokens=200)
        )
        stream = iter(first)
        next(stream)
        second = engine.submit(model, tok, ids_of(tok, PROMPTS[2]), Sampling(temperature=0, max_new_tokens=3))
        stream.close()  # a closed tab
        box: list[Chunk] = []
        collect(second, box).join(TIMEOUT)
        assert box and box[-1].done and box[-1].n_tokens == 3
        assert len(first.tokens) < 200
        ev = threading.Event()  # Stop through a stop_event (how stream_many stops both sides of a round)
        third = engine.submit(
            model, tok, ids_of(tok, PROMPTS[3]), Sampling(max_new_tokens=200), stop_event=ev
        )
        stream = iter(third)
        next(stream)
        ev.set()
        last = list(stream)[-1]
        assert last.done and last.n_tokens < 200
    finally:
        engine.close()
    assert not engine._thread.is_alive()


def test_each_request_keeps_its_own_settings(sharp, tiny, engine):
    model, tok = sharp
    ids = ids_of(tok, PROMPTS[3])
    greedy = greedy_generate(model, tok, ids, 10)
    requests = {
        "greedy": Sampling(temperature=0, max_new_tokens=10),
        "short": Sampling(temperature=0, max_new_tokens=3),
        "top_k_1": Sampling(
            temperature=1.5, top_k=1, max_new_tokens=10
        ),  # sampling that can only pick the top
        "seed 7": Sampling(temperature=1.0, top_p=1.0, max_new_tokens=10, seed=7),
        "seed 8": Sampling(temperature=1.0, top_p=1.0, max_new_tokens=10, seed=8),
    }
    out = {name: engine.submit(model, tok, ids, s) for name, s in requests.items()}
    for r in out.values():
        r.result()
    assert out["greedy"].tokens == greedy and out["top_k_1"].tokens == greedy
    assert out["short"].tokens == greedy[:3]
    assert out["seed 7"].tokens != out["seed 8"].tokens
    alone = engine.submit(model, tok, ids, requests["seed 7"])  # the same seed, in another batch
    alone.result()
    assert alone.tokens == out["seed 7"].tokens
    # the tiny model repeats one token forever; a repetition penalty changes that, as in `generate`
    plain = engine.submit(*tiny, ids, Sampling(temperature=0, max_new_tokens=6))
    penalty = engine.submit(*tiny, ids, Sampling(temperature=0, repetition_penalty=3.0, max_new_tokens=6))
    penalised = greedy_generate(*tiny, ids, 6, repetition_penalty=3.0)
    penalty.result(), plain.result()
    assert penalty.tokens == penalised
    assert plain.tokens == greedy_generate(*tiny, ids, 6) != penalised


def test_min_new_tokens_holds_back_eos(tiny, engine):
    model, tok = tiny
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    logits = torch.zeros(2, model.config.vocab_size)
    logits[:, eos] = 10.0
    held = Request([1], Sampling(temperature=0, min_new_tokens=2))
    free = Request([1], Sampling(temperature=0))
    assert pick(logits, [held, free], [eos]) != [eos, eos]
    assert pick(logits, [held, free], [eos])[1] == eos


def test_a_stop_string_ends_only_its_own_request(sharp, engine):
    model, tok = sharp
    ids = ids_of(tok, PROMPTS[1])
    full = tok.decode(greedy_generate(model, tok, ids, 16), skip_special_tokens=True)
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip() and full.find(stop) > 0
    cut = engine.submit(model, tok, ids, Sampling(temperature=0, max_new_tokens=16, stop=(stop,)))
    rest = engine.submit(model, tok, ids, Sampling(temperature=0, max_new_tokens=16))
    assert cut.result().text == full[: full.find(stop)].strip()
    assert cut.finished and len(cut.tokens) < 16
    assert rest.result().text == full.strip() and len(rest.tokens) == 16 and not rest.finished


def test_deltas_never_end_in_half_a_character():
    r = Request([1], Sampling())
    for text in ["a", "a\ufffd", "a€", "a€ b", "a€ b\ufffd"]:
        r.emit(text, False)
    r.emit("a€ b\ufffd", True)
    chunks = list(r)
    assert [c.delta for c in chunks] == ["a", "€", " b", ""]
    assert [c.text for c in chunks] == ["a", "a€", "a€ b", "a€ b"] and chunks[-1].done
    assert not any(c.text.endswith("\ufffd") for c in chunks)


def test_several_models_each_get_a_batch_and_errors_stay_with_their_model(sharp, tiny, engine):
    model, tok = sharp
    ids = ids_of(tok, PROMPTS[0])
    a = engine.submit(model, tok, ids, Sampling(temperature=0, max_new_tokens=6))
    b = engine.submit(tiny[0], tiny[1], ids, Sampling(temperature=0, max_new_tokens=6))
    assert a.result().done and b.result().done
    assert a.tokens == greedy_generate(model, tok, ids, 6)
    assert b.tokens == greedy_generate(tiny[0], tiny[1], ids, 6)

    class Broken(torch.nn.Module):
        config, generation_config = model.config, model.generation_config

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, **kw):
            raise RuntimeError("boom")

    bad = engine.submit(Broken(), tok, ids, Sampling(max_new_tokens=4))
    good = engine.submit(model, tok, ids, Sampling(temperature=0, max_new_tokens=4))
    with pytest.raises(Exception, match="generation failed: RuntimeError: boom"):
        bad.result()
    assert good.result().done and good.tokens == a.tokens[:4]


def test_sample_matches_nbkit_sampling_greedy(sharp, engine):
    from nbkit.sampling import sample

    model, tok = sharp
    ours = engine.sample(model, tok, PROMPTS, max_new_tokens=8, temperature=0)
    plain = sample(model, tok, PROMPTS, max_new_tokens=8, temperature=0, progress=False)
    assert ours.texts() == plain.texts()
    assert [c.n_tokens for c in ours.items] == [c.n_tokens for c in plain.items]


def test_call_runs_on_the_engine_thread(engine):
    assert engine.call(lambda: threading.current_thread().name) == "nbkit-engine"
    with pytest.raises(ValueError, match="nope"):
        engine.call(lambda: (_ for _ in ()).throw(ValueError("nope")))
