"""The arena's token view: how much several models disagree about each token of the same answer.

Each answer of a side-by-side run is scored token by token under every model (`nbkit.sampling.token_logprobs`);
the spread (max - min log-prob across models) per token is what the page colours. Tokens where models disagree
most are where fine-tuning changed the model.

    views, table = token_view({"base": (m0, tok), "sft": (m1, tok)}, "2+2?", ["sft"], ["4"])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nbkit.serve.arena import ArenaError


def disagreement(logprobs: Sequence[Sequence[float]]) -> list[float]:
    """Per-token spread (max - min) of the log-probs that several models give the same tokens.

    logprobs: shape (n_models, n_tokens). Returns n_tokens values >= 0. Example: [[-1, -2], [-3, -2]] -> [2, 0].
    """
    arr = np.asarray(logprobs, dtype=float)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ArenaError(f"expected log-probs of shape (n_models, n_tokens), got {arr.shape}")
    return (arr.max(axis=0) - arr.min(axis=0)).tolist()


def highlight(tokens: Sequence[str], spread: Sequence[float]) -> list[tuple[str, float]]:
    """(token, score in [0, 1]) pairs for gr.HighlightedText: the largest disagreement gets 1."""
    top = max(spread, default=0.0)
    return [(t, round(s / top, 3) if top > 0 else 0.0) for t, s in zip(tokens, spread)]


def token_view(models: dict, prompt, labels: Sequence[str], answers: Sequence[str]):
    """Score each answer (answers[i] came from labels[i]) token by token under every model in `models`
    (label -> (model, tokenizer)) with `nbkit.sampling.token_logprobs`.

    Returns (views, table): one gr.HighlightedText value per answer, each token scored by how much the models
    disagree on it (1 = the largest spread in that answer), and a DataFrame of the 15 tokens with the largest
    spread, with each model's log-prob.
    """
    import pandas as pd

    from nbkit.sampling import token_logprobs

    views, rows = [], []
    for owner, answer in zip(labels, answers):
        scored = {m: token_logprobs(model, tok, prompt, answer) for m, (model, tok) in models.items()}
        tokens = [t for t, _ in scored[owner]]
        if any([t for t, _ in s] != tokens for s in scored.values()):
            raise ArenaError("these models use different tokenizers; the token view needs a shared one")
        spread = disagreement([[v for _, v in s] for s in scored.values()]) if tokens else []
        views.append(highlight(tokens, spread))
        rows += [
            {"answer of": owner, "pos": j, "token": t, "spread": round(spread[j], 3)}
            | {f"logp {m}": round(s[j][1], 3) for m, s in scored.items()}
            for j, t in enumerate(tokens)
        ]
    table = pd.DataFrame(rows)
    return views, table.sort_values("spread", ascending=False).head(15) if rows else table
