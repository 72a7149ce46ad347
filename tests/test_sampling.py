import pytest

from nbkit.sampling import sample, to_messages, token_logprobs


def test_shapes_counts_and_logprobs(tiny):
    model, tok = tiny
    out = sample(
        model,
        tok,
        ["What is 1 + 1?", "Hi", "Name a fruit."],
        k=3,
        max_new_tokens=6,
        logprobs=True,
        progress=False,
        batch_size=4,
    )
    assert len(out.items) == 9 and [len(g) for g in out.texts()] == [3, 3, 3]
    assert [c.prompt_index for c in out.items] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for c in out.items:
        assert 1 <= c.n_tokens <= 6 and len(c.token_ids) == c.n_tokens
        assert len(c.logprobs) == c.n_tokens and all(lp <= 0 for lp in c.logprobs)
    assert out.n_tokens == sum(c.n_tokens for c in out.items) and out.tokens_per_second > 0


def test_seeded(tiny):
    model, tok = tiny
    kw = dict(k=2, max_new_tokens=5, temperature=1.0, progress=False)
    a = sample(model, tok, ["a", "bb"], seed=1, **kw).texts()
    assert a == sample(model, tok, ["a", "bb"], seed=1, **kw).texts()
    assert a != sample(model, tok, ["a", "bb"], seed=2, **kw).texts()


def test_logprobs_match_a_forward_pass(tiny):
    model, tok = tiny
    out = sample(
        model, tok, ["Hello there"], k=1, max_new_tokens=5, temperature=0, logprobs=True, progress=False
    )
    c = out.items[0]
    scored = token_logprobs(model, tok, "Hello there", c.token_ids)
    assert len(scored) == len(c.logprobs)
    assert [v for _, v in scored] == pytest.approx(c.logprobs, abs=1e-4)


def test_prompt_longer_than_context_is_a_clear_error(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="prompt 1 is .* tokens; with max_new_tokens=8 that exceeds"):
        sample(model, tok, ["ok", "word " * 3000], max_new_tokens=8, progress=False)


def test_empty_and_bad_k(tiny):
    model, tok = tiny
    assert sample(model, tok, [], progress=False).items == []
    with pytest.raises(ValueError, match="k must be >= 1"):
        sample(model, tok, ["x"], k=0)


def test_plain_prompts_and_system(tiny):
    model, tok = tiny
    out = sample(model, tok, ["Once upon a time"], chat=False, max_new_tokens=3, progress=False)
    assert len(out.items) == 1
    assert to_messages("hi", system="S")[0] == {"role": "system", "content": "S"}


def test_generation_kwargs_and_stop_strings_shared_with_streaming(tiny):
    from nbkit.sampling import cut_at_stop, eos_ids, generation_kwargs

    model, tok = tiny
    greedy = generation_kwargs(model, tok, 8, temperature=0, stop=["", "\n"])
    assert greedy["do_sample"] is False and greedy["top_k"] is None and greedy["max_new_tokens"] == 8
    assert greedy["eos_token_id"] == sorted(eos_ids(model, tok)) and greedy["stop_strings"] == ["\n"]
    hot = generation_kwargs(model, tok, 8, temperature=0.7, top_p=0.9, top_k=5)
    assert (hot["do_sample"], hot["temperature"], hot["top_p"], hot["top_k"]) == (True, 0.7, 0.9, 5)
    assert "stop_strings" not in hot and hot["pad_token_id"] == tok.pad_token_id
    assert cut_at_stop("4 Q: 5 + 6 Q:", [" Q:", "+"]) == ("4", True)
    assert cut_at_stop("4", ["", "Q:"]) == ("4", False) and cut_at_stop("4", None) == ("4", False)
