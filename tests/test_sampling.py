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
