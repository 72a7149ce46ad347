"""The arena's logic: blind pairing, a vote store safe under concurrent voters, Elo and Bradley-Terry ratings with
bootstrap confidence intervals, the token view's disagreement scores and the batch accuracy table.

`apps/compare.py` only lays these out. What it simplifies relative to Chatbot Arena (Zheng et al. 2023; LMSYS's
rating notebook):
- one process and one SQLite file instead of a controller, workers and a log pipeline;
- "both bad" counts as a tie in the ratings, as LMSYS counts "tie (bothbad)";
- Bradley-Terry is fitted by the MM algorithm (Hunter 2004) with a small prior (virtual games against an anchor
  at the base rating) instead of a regularised logistic regression; with `prior=0` it is the plain MLE;
- no style control, no per-category boards, no de-duplication of voters.

    store = VoteStore("runs/arena.sqlite")
    store.add("sft-1", "dpo-1", "left", prompt="2+2?")
    leaderboard(store.battles(), method="bt", n_boot=200)   # DataFrame: model, rating, ci_lo, ci_hi, games, ...
"""

from __future__ import annotations

import math
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nbkit.errors import NbkitError

OUTCOMES = ("left", "right", "tie", "both_bad")
# Score of the *left* model for each outcome; both-bad is a tie for the ratings.
LEFT_SCORE = {"left": 1.0, "right": 0.0, "tie": 0.5, "both_bad": 0.5}
MIRROR = {"left": "right", "right": "left", "tie": "tie", "both_bad": "both_bad"}

Battle = tuple[str, str, str]  # (left model, right model, outcome)


class ArenaError(NbkitError):
    """A vote or a pairing that cannot be done; the message says what to change."""


@dataclass
class ArenaConfig:
    db: str = field(
        default="arena.sqlite", metadata={"help": "SQLite file for votes (relative: under the registry)"}
    )
    method: str = field(default="bt", metadata={"help": "leaderboard ratings: 'bt' (Bradley-Terry) or 'elo'"})
    n_boot: int = field(default=200, metadata={"help": "bootstrap resamples for the confidence intervals"})
    k_factor: float = field(default=4.0, metadata={"help": "Elo step size (LMSYS uses 4)"})
    prior: float = field(default=1.0, metadata={"help": "BT virtual games vs an anchor at the base rating"})
    seed: int = field(default=0, metadata={"help": "seed for pairing and bootstrap"})

    @classmethod
    def for_profile(cls, name: str) -> ArenaConfig:
        return cls(n_boot=20) if name == "smoke" else cls()


# --------------------------------------------------------------------------------------------------- ratings


def elo_ratings(
    battles: Sequence[Battle], k: float = 4.0, base: float = 1000.0, scale: float = 400.0
) -> dict[str, float]:
    """Online Elo over `battles` in order. Zero-sum: the ratings always average `base`.

    Example: [("a", "b", "left")] with k=32 -> {"a": 1016.0, "b": 984.0}.
    """
    r: dict[str, float] = {}
    for left, right, outcome in battles:
        ra, rb = r.setdefault(left, base), r.setdefault(right, base)
        expected = 1.0 / (1.0 + 10 ** ((rb - ra) / scale))
        delta = k * (LEFT_SCORE[outcome] - expected)
        r[left], r[right] = ra + delta, rb - delta
    return r


def win_matrix(battles: Sequence[Battle]) -> tuple[list[str], np.ndarray]:
    """Models (sorted) and W of shape (m, m): W[i, j] = wins of i over j, a tie counting half to each."""
    models = sorted({m for b in battles for m in b[:2]})
    idx = {m: i for i, m in enumerate(models)}
    w = np.zeros((len(models), len(models)))
    for left, right, outcome in battles:
        s = LEFT_SCORE[outcome]
        w[idx[left], idx[right]] += s
        w[idx[right], idx[left]] += 1.0 - s
    return models, w


def bradley_terry(
    battles: Sequence[Battle],
    prior: float = 1.0,
    base: float = 1000.0,
    scale: float = 400.0,
    iters: int = 1000,
    tol: float = 1e-10,
) -> dict[str, float]:
    """Bradley-Terry strengths p (P(i beats j) = p_i / (p_i + p_j)) by MM iterations, as Elo-scale ratings
    `base + scale * log10(p_i)`.

    `prior` adds that many virtual wins and losses of each model against an anchor of strength 1 (rating `base`),
    which keeps an undefeated model finite. With prior=0 and two models, rating gap = scale * log10(wins/losses):
    3 wins to 1 -> 400 * log10(3) = 190.85.
    """
    models, w = win_matrix(battles)
    m = len(models)
    if m == 0:
        return {}
    n = w + w.T  # games between i and j
    wins = w.sum(axis=1) + prior
    p = np.ones(m)
    for _ in range(iters):
        denom = (n / (p[:, None] + p[None, :])).sum(axis=1) + 2 * prior / (p + 1.0)
        new = np.where(denom > 0, wins / np.maximum(denom, 1e-300), p)
        if prior == 0:  # without an anchor the scale is free: pin the geometric mean to 1
            new = new / np.exp(np.mean(np.log(np.maximum(new, 1e-300))))
        done = np.max(np.abs(np.log(np.maximum(new, 1e-300)) - np.log(np.maximum(p, 1e-300)))) < tol
        p = new
        if done:
            break
    return {mod: base + scale * math.log10(max(float(v), 1e-300)) for mod, v in zip(models, p)}


def rate(
    battles: Sequence[Battle], method: str = "bt", k: float = 4.0, prior: float = 1.0
) -> dict[str, float]:
    if method == "bt":
        return bradley_terry(battles, prior=prior)
    if method == "elo":
        return elo_ratings(battles, k=k)
    raise ArenaError(f"unknown rating method {method!r}; use 'bt' (Bradley-Terry) or 'elo'")


def bootstrap_ci(
    battles: Sequence[Battle],
    ratings_fn: Callable[[Sequence[Battle]], dict[str, float]],
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals (alpha/2, 1 - alpha/2) of each model's rating over `n_boot` resamples of the battles
    (with replacement; Elo also sees them in a fresh random order). A model missing from a resample is skipped."""
    if not battles or n_boot < 1:
        return {}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(n_boot):
        pick = rng.integers(0, len(battles), size=len(battles))
        for mod, v in ratings_fn([battles[i] for i in pick]).items():
            samples.setdefault(mod, []).append(v)
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    return {mod: (float(np.percentile(v, lo)), float(np.percentile(v, hi))) for mod, v in samples.items()}


def leaderboard(
    battles: Sequence[Battle],
    method: str = "bt",
    n_boot: int = 200,
    seed: int = 0,
    k: float = 4.0,
    prior: float = 1.0,
):
    """A pandas DataFrame, best first: model, rating, ci_lo, ci_hi (95% bootstrap), games, wins, ties, losses."""
    import pandas as pd

    cols = ["model", "rating", "ci_lo", "ci_hi", "games", "wins", "ties", "losses"]
    if not battles:
        return pd.DataFrame(columns=cols)

    def fn(bs):
        return rate(bs, method, k, prior)

    ratings = fn(battles)
    ci = bootstrap_ci(battles, fn, n_boot=n_boot, seed=seed)
    tally = {m: {"games": 0, "wins": 0, "ties": 0, "losses": 0} for m in ratings}
    for left, right, outcome in battles:
        for mod, s in ((left, LEFT_SCORE[outcome]), (right, 1 - LEFT_SCORE[outcome])):
            t = tally[mod]
            t["games"] += 1
            t["wins" if s == 1 else "losses" if s == 0 else "ties"] += 1
    rows = [
        {
            "model": mod,
            "rating": round(r, 1),
            "ci_lo": round(ci.get(mod, (r, r))[0], 1),
            "ci_hi": round(ci.get(mod, (r, r))[1], 1),
            **tally[mod],
        }
        for mod, r in ratings.items()
    ]
    return pd.DataFrame(rows, columns=cols).sort_values("rating", ascending=False, ignore_index=True)


# --------------------------------------------------------------------------------------------------- pairing


def pick_pair(models: Sequence[str], rng: random.Random) -> tuple[str, str]:
    """Two distinct models in random order, uniformly over pairs. Example: (["a", "b", "c"], rng) -> ("c", "a")."""
    pool = sorted(set(models))
    if len(pool) < 2:
        raise ArenaError(f"blind A/B needs at least 2 different models; the pool has {pool or 'none'}")
    a, b = rng.sample(pool, 2)
    return a, b


# --------------------------------------------------------------------------------------------------- votes


class VoteStore:
    """Votes in one SQLite file, WAL mode: many readers and one writer at a time, each vote its own transaction.

    Each thread gets its own connection (sqlite3 connections must not be shared across threads); writers that
    find the file locked wait up to `timeout` seconds instead of failing, so concurrent voters lose nothing.
    """

    def __init__(self, path: str | Path, timeout: float = 30.0):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self._local = threading.local()
        with self._txn() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS votes (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, "
                "left TEXT NOT NULL, right TEXT NOT NULL, outcome TEXT NOT NULL, prompt TEXT, session TEXT)"
            )

    def _txn(self) -> _Txn:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")  # persistent in the file; readers never block the writer
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed vote survives an app crash
            self._local.conn = conn
        return _Txn(conn)

    def add(self, left: str, right: str, outcome: str, prompt: str = "", session: str = "") -> int:
        """Record one vote; returns its id."""
        if outcome not in OUTCOMES:
            raise ArenaError(f"unknown vote {outcome!r}; use one of {', '.join(OUTCOMES)}")
        if left == right:
            raise ArenaError(f"a vote needs two different models, got {left!r} twice")
        with self._txn() as c:
            cur = c.execute(
                "INSERT INTO votes (ts, left, right, outcome, prompt, session) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), left, right, outcome, prompt[:2000], session),
            )
            return int(cur.lastrowid)

    def battles(self) -> list[Battle]:
        with self._txn() as c:
            return [tuple(r) for r in c.execute("SELECT left, right, outcome FROM votes ORDER BY id")]

    def count(self) -> int:
        with self._txn() as c:
            return int(c.execute("SELECT COUNT(*) FROM votes").fetchone()[0])


class _Txn:
    """`with` block = one IMMEDIATE transaction (the write lock is taken up front, so no upgrade deadlock)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


# --------------------------------------------------------------------------------------------------- rounds


class Arena:
    """Blind A/B rounds for one server: pick a pair, take one vote per finished round, rate everyone."""

    def __init__(self, cfg: ArenaConfig, store: VoteStore):
        self.cfg, self.store = cfg, store
        self.rng = random.Random(cfg.seed)
        self._lock = threading.Lock()  # random.Random is not meant to be shared by threads

    def new_round(self, pool: Sequence[str], prompt: str = "") -> dict:
        """A round record to keep server-side: {"pair": (a, b), "prompt", "done": False, "voted": False}."""
        with self._lock:
            pair = pick_pair(pool, self.rng)
        return {"pair": pair, "prompt": prompt[:2000], "done": False, "voted": False}

    def vote(self, rnd, outcome: str, session: str = "") -> tuple[str, dict]:
        """Store the vote on a finished round once; returns (who was who, as markdown) and the round, voted."""
        if not isinstance(rnd, dict) or not rnd.get("pair"):
            raise ArenaError("Ask a question first: there is no round to vote on.")
        if rnd.get("voted"):
            raise ArenaError("This round already has your vote; ask a new question.")
        if not rnd.get("done"):
            raise ArenaError("Wait until both answers have finished, then vote.")
        if outcome not in OUTCOMES:
            raise ArenaError(f"unknown vote {outcome!r}; use one of {', '.join(OUTCOMES)}")
        left, right = rnd["pair"]
        self.store.add(left, right, outcome, prompt=rnd.get("prompt", ""), session=session)
        said = {"left": "A is better", "right": "B is better", "tie": "tie", "both_bad": "both bad"}[outcome]
        return f"You voted **{said}**. A was **{left}**, B was **{right}**.", {**rnd, "voted": True}

    def board(self, method: str | None = None):
        c = self.cfg
        return leaderboard(self.store.battles(), method or c.method, c.n_boot, c.seed, c.k_factor, c.prior)


# --------------------------------------------------------------------------------------------------- token view


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


def batch_accuracy(
    loader: Callable[[str], tuple], labels: Sequence[str], task, examples, max_new_tokens: int = 32
):
    """Greedy accuracy of each model on the same examples via `task.evaluate`: a DataFrame, one row per model
    (model, accuracy, n, then one column per difficulty). `loader(label) -> (model, tokenizer)`."""
    import pandas as pd

    rows = []
    for label in labels:
        model, tok = loader(label)
        res = task.evaluate(model, tok, examples, max_new_tokens=max_new_tokens, progress=False)
        rows.append(
            {
                "model": label,
                "accuracy": round(res["accuracy"], 3),
                "n": res["n"],
                **{f"difficulty {d}": round(v, 3) for d, v in res["by_difficulty"].items()},
            }
        )
    return pd.DataFrame(rows)
