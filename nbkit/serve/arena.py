"""The arena's logic: blind rounds made and served by the server, a vote store that takes one vote per round
even under concurrent voters, Elo and Bradley-Terry ratings with honest 95% intervals, and the batch accuracy
table. (The token view is nbkit.serve.tokenview; the leaderboard's notes are nbkit.serve.leaderboard.)

`apps/compare.py` only lays these out. What it simplifies relative to Chatbot Arena (Zheng et al. 2023; LMSYS's
rating notebook):
- one process and one SQLite file instead of a controller, workers and a log pipeline;
- "both bad" counts as a tie in the ratings, as LMSYS counts "tie (bothbad)";
- Bradley-Terry is fitted by the MM algorithm (Hunter 2004) with a small prior (virtual games against an anchor
  at the base rating) instead of a regularised logistic regression; with `prior=0` it is the plain MLE;
- intervals are bootstrap percentiles, never narrower than a Wald interval at a 50% win rate (`interval_floor`);
- anti-stuffing is a server-drawn pair, one vote per served round, and votes per minute per session, per client
  address (the socket's peer) and per attendee (a personal join code, nbkit.serve.attendees); no style control,
  no per-category boards.

    arena = Arena(ArenaConfig(), VoteStore("runs/arena.sqlite"), pool=["sft-1", "dpo-1"])
    rnd = arena.new_round(session="s1")                       # the server draws the pair
    arena.store.serve_turn(rnd["id"], "2+2?", "4", "5")       # both answers complete
    arena.vote(rnd, "left", session="s1", attendee="ana")     # once; returns who was who
    leaderboard(arena.store.battles(), method="bt", n_boot=200)  # DataFrame: rank, model, rating, ci_lo, ...
"""

from __future__ import annotations

import json
import math
import random
import secrets
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
    if not models:
        return {}
    p = bt_strengths(w[None], prior, iters, tol)[0]
    return {mod: base + scale * math.log10(max(float(v), 1e-300)) for mod, v in zip(models, p)}


def bt_strengths(w: np.ndarray, prior: float = 1.0, iters: int = 1000, tol: float = 1e-10) -> np.ndarray:
    """Bradley-Terry strengths fitted by MM (Hunter 2004) for a stack of win matrices at once: w (B, m, m) ->
    p (B, m). A model without games in one matrix does not move the others (its own value is then meaningless).

    Example: w = [[[0, 3], [1, 0]]] with prior=0 -> p with p[0, 0] / p[0, 1] = 3.
    """
    n = w + w.transpose(0, 2, 1)  # games between i and j
    wins = w.sum(axis=2) + prior
    played = n.sum(axis=2) > 0
    p = np.ones(w.shape[:2])
    for _ in range(iters):
        with np.errstate(
            invalid="ignore"
        ):  # 0/0 between two models without a win (prior=0): kept as they are
            denom = (n / (p[:, :, None] + p[:, None, :])).sum(axis=2) + 2 * prior / (p + 1.0)
        new = np.where(denom > 0, wins / np.maximum(denom, 1e-300), p)
        if prior == 0:  # without an anchor the scale is free: pin the geometric mean of those who played to 1
            logs = np.where(played, np.log(np.maximum(new, 1e-300)), 0.0)
            new = new / np.exp(logs.sum(axis=1) / np.maximum(played.sum(axis=1), 1))[:, None]
        done = np.max(np.abs(np.log(np.maximum(new, 1e-300)) - np.log(np.maximum(p, 1e-300)))) < tol
        p = new
        if done:
            break
    return p


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
    samples: dict[str, list[float]] = {}
    for pick in _resamples(len(battles), n_boot, seed):
        for mod, v in ratings_fn([battles[i] for i in pick]).items():
            samples.setdefault(mod, []).append(v)
    return _percentiles(samples, alpha)


def bt_bootstrap_ci(
    battles: Sequence[Battle],
    prior: float = 1.0,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
    base: float = 1000.0,
    scale: float = 400.0,
) -> dict[str, tuple[float, float]]:
    """`bootstrap_ci` of `bradley_terry` with the same resamples, fitted all at once (one stack of win matrices
    instead of `n_boot` separate fits: about 50x faster at classroom vote counts)."""
    if not battles or n_boot < 1:
        return {}
    models, _ = win_matrix(battles)
    picks = np.array(list(_resamples(len(battles), n_boot, seed)))  # (n_boot, len(battles))
    idx = {m: i for i, m in enumerate(models)}
    left = np.array([idx[b[0]] for b in battles])[picks].ravel()
    right = np.array([idx[b[1]] for b in battles])[picks].ravel()
    score = np.array([LEFT_SCORE[b[2]] for b in battles])[picks].ravel()
    boot = np.repeat(np.arange(len(picks)), len(battles))
    w = np.zeros((len(picks), len(models), len(models)))
    np.add.at(w, (boot, left, right), score)
    np.add.at(w, (boot, right, left), 1.0 - score)
    ratings = base + scale * np.log10(np.maximum(bt_strengths(w, prior), 1e-300))
    played = (w + w.transpose(0, 2, 1)).sum(axis=2) > 0
    return _percentiles({m: ratings[played[:, i], i].tolist() for i, m in enumerate(models)}, alpha)


def _resamples(n: int, n_boot: int, seed: int):
    """`n_boot` arrays of `n` indices drawn with replacement (none when there is nothing to resample)."""
    if n == 0 or n_boot < 1:
        return
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield rng.integers(0, n, size=n)


def _percentiles(samples: dict[str, list[float]], alpha: float) -> dict[str, tuple[float, float]]:
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    return {m: (float(np.percentile(v, lo)), float(np.percentile(v, hi))) for m, v in samples.items() if v}


def interval_floor(games: int, prior: float = 1.0, scale: float = 400.0, z: float = 1.96) -> float:
    """Half-width of the narrowest honest 95% interval after `games` games: the Wald interval of a Bradley-Terry
    rating at a 50% win rate, counting the prior's virtual games. A bootstrap of one vote has zero width (every
    resample is that vote); this floor keeps a handful of votes from looking certain.

    Example: interval_floor(1) -> 1.96 * 400 / ln(10) / sqrt(0.25 * 3) = 393.2; interval_floor(100) -> 67.4.
    """
    return z * scale / math.log(10) / math.sqrt(0.25 * (games + 2 * prior))


def tied_ranks(ci_lo: Sequence[float], ci_hi: Sequence[float]) -> list[int]:
    """Rank = 1 + the number of models whose interval lies entirely above this one's (LMSYS's "rank (UB)"), so
    models whose intervals overlap share a rank. Example: ([10, 0, -50], [30, 20, -20]) -> [1, 1, 3]."""
    return [1 + sum(lo_j > hi_i for lo_j in ci_lo) for hi_i in ci_hi]


def leaderboard(
    battles: Sequence[Battle],
    method: str = "bt",
    n_boot: int = 200,
    seed: int = 0,
    k: float = 4.0,
    prior: float = 1.0,
):
    """A pandas DataFrame, best first: rank (tied where intervals overlap), model, rating, ci_lo, ci_hi (95%:
    bootstrap, never narrower than `interval_floor`), games, wins, ties, losses."""
    import pandas as pd

    cols = ["rank", "model", "rating", "ci_lo", "ci_hi", "games", "wins", "ties", "losses"]
    if not battles:
        return pd.DataFrame(columns=cols)

    def fn(bs):
        return rate(bs, method, k, prior)

    ratings = fn(battles)
    if method == "bt":
        ci = bt_bootstrap_ci(battles, prior, n_boot=n_boot, seed=seed)
    else:
        ci = bootstrap_ci(battles, fn, n_boot=n_boot, seed=seed)
    tally = {m: {"games": 0, "wins": 0, "ties": 0, "losses": 0} for m in ratings}
    for left, right, outcome in battles:
        for mod, s in ((left, LEFT_SCORE[outcome]), (right, 1 - LEFT_SCORE[outcome])):
            t = tally[mod]
            t["games"] += 1
            t["wins" if s == 1 else "losses" if s == 0 else "ties"] += 1
    rows = []
    for mod, r in ratings.items():
        lo, hi = ci.get(mod, (r, r))
        floor = interval_floor(tally[mod]["games"], prior)
        lo, hi = min(lo, r - floor), max(hi, r + floor)
        rows.append(
            {"model": mod, "rating": round(r, 1), "ci_lo": round(lo, 1), "ci_hi": round(hi, 1), **tally[mod]}
        )
    df = pd.DataFrame(rows).sort_values("rating", ascending=False, ignore_index=True)
    df.insert(0, "rank", tied_ranks(df["ci_lo"].tolist(), df["ci_hi"].tolist()))
    return df[cols]


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
    """Rounds and votes in one SQLite file, WAL mode: many readers and one writer at a time.

    A round is created by the server (`open_round`), marked served once both answers are complete
    (`serve_turn`), and takes one vote (`vote_round`): the checks and the insert run in one BEGIN IMMEDIATE
    transaction, so six simultaneous votes on a round store one row. Each thread gets its own connection (sqlite3
    connections must not be shared across threads); writers that find the file locked wait up to `timeout` s.
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
            have = {r[1] for r in c.execute("PRAGMA table_info(votes)")}
            for col in (
                "client",
                "round_id",
                "answer_a",
                "answer_b",
                "attendee",
            ):  # files from older versions
                if col not in have:
                    c.execute(f"ALTER TABLE votes ADD COLUMN {col} TEXT")
            c.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS votes_round ON votes(round_id) WHERE round_id IS NOT NULL"
            )
            c.execute(
                "CREATE TABLE IF NOT EXISTS rounds (id TEXT PRIMARY KEY, ts REAL NOT NULL, session TEXT, "
                "client TEXT, left TEXT NOT NULL, right TEXT NOT NULL, turns TEXT NOT NULL DEFAULT '[]', "
                "served INTEGER NOT NULL DEFAULT 0, voted INTEGER NOT NULL DEFAULT 0)"
            )
            if "attendee" not in {r[1] for r in c.execute("PRAGMA table_info(rounds)")}:
                c.execute("ALTER TABLE rounds ADD COLUMN attendee TEXT")

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
        """Record one vote without a round (imports, notebooks); returns its id. The apps use `vote_round`."""
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

    def open_round(
        self, round_id: str, left: str, right: str, session: str = "", client: str = "", attendee: str = ""
    ) -> None:
        with self._txn() as c:
            c.execute(
                "INSERT INTO rounds (id, ts, session, client, left, right, attendee) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (round_id, time.time(), session, client, left, right, attendee),
            )

    def round_voted(self, round_id) -> bool:
        """True when the round has its vote (or is unknown): the next question starts a new round."""
        with self._txn() as c:
            row = c.execute("SELECT voted FROM rounds WHERE id = ?", (str(round_id),)).fetchone()
        return row is None or bool(row[0])

    def begin_turn(self, round_id: str) -> None:
        """A new turn is being answered: no vote until it is served."""
        with self._txn() as c:
            c.execute("UPDATE rounds SET served = 0 WHERE id = ? AND voted = 0", (round_id,))

    def serve_turn(self, round_id: str, prompt: str, answer_a: str, answer_b: str) -> None:
        """Both answers of a turn are complete: record them and open the round to one vote."""
        with self._txn() as c:
            row = c.execute("SELECT turns FROM rounds WHERE id = ?", (round_id,)).fetchone()
            if row is None:
                raise ArenaError("This round is unknown to the server; start a new round.")
            turns = json.loads(row[0]) + [{"prompt": prompt, "a": answer_a, "b": answer_b}]
            c.execute("UPDATE rounds SET turns = ?, served = 1 WHERE id = ?", (json.dumps(turns), round_id))

    def vote_round(
        self,
        round_id,
        outcome: str,
        session: str = "",
        client: str = "",
        per_session: int = 6,
        per_client: int = 60,
        window: float = 60.0,
        attendee: str = "",
        per_attendee: int = 6,
    ) -> tuple[str, str]:
        """Store the one vote of a served round of this session; returns (left, right). Refuses (ArenaError) a
        round the server did not create, one of another session, one not served yet, one already voted, and a
        session, client address or attendee over its votes per `window` seconds. The attendee's cap holds across
        sessions (a new session per round starts with a fresh session count, not a fresh attendee count);
        attendee "" (no identity) is capped by session and address only."""
        if outcome not in OUTCOMES:
            raise ArenaError(f"unknown vote {outcome!r}; use one of {', '.join(OUTCOMES)}")
        if not isinstance(round_id, str) or not round_id:
            raise ArenaError("Ask a question first: there is no round to vote on.")
        now = time.time()
        with self._txn() as c:
            row = c.execute(
                "SELECT left, right, turns, served, voted, session FROM rounds WHERE id = ?", (round_id,)
            ).fetchone()
            if row is None or row[5] != session:
                raise ArenaError("This round was not served to you by this server; ask a question first.")
            left, right, turns, served, voted, _ = row
            if voted:
                raise ArenaError("This round already has your vote; start a new round.")
            if not served:
                raise ArenaError("Wait until both answers have finished, then vote.")
            caps = [
                ("session", session, per_session, "this session"),
                ("client", client, per_client, "this address"),
            ]
            if attendee:
                caps.append(("attendee", attendee, per_attendee, "you"))
            for key, value, cap, who in caps:
                n = c.execute(
                    f"SELECT COUNT(*) FROM votes WHERE {key} = ? AND ts > ?", (value, now - window)
                ).fetchone()[0]
                if n >= cap:
                    per = "a minute" if window == 60 else f"in {window / 60:g} minutes"
                    raise ArenaError(f"Too many votes from {who}: at most {cap} {per}. Wait a little.")
            turns = json.loads(turns)
            c.execute(
                "INSERT INTO votes (ts, left, right, outcome, prompt, session, client, round_id, answer_a, "
                "answer_b, attendee) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    now,
                    left,
                    right,
                    outcome,
                    json.dumps([t["prompt"] for t in turns]),
                    session,
                    client,
                    round_id,
                    json.dumps([t["a"] for t in turns]),
                    json.dumps([t["b"] for t in turns]),
                    attendee,
                ),
            )
            c.execute("UPDATE rounds SET voted = 1 WHERE id = ?", (round_id,))
        return left, right

    def battles(self) -> list[Battle]:
        with self._txn() as c:
            rows = c.execute("SELECT left, right, outcome FROM votes ORDER BY id").fetchall()
        return [tuple(r) for r in rows if r[2] in OUTCOMES and r[0] != r[1]]  # a damaged row is no battle

    def log(self) -> list[dict]:
        """Every vote with its audit fields (prompt and both answers are JSON lists, one item per turn)."""
        with self._txn() as c:
            cur = c.execute("SELECT * FROM votes ORDER BY id")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur]

    def count(self) -> int:
        with self._txn() as c:
            return int(c.execute("SELECT COUNT(*) FROM votes").fetchone()[0])

    def version(self) -> tuple[int, int]:
        """(votes stored, last vote id): changes with every vote, from this process or another one."""
        with self._txn() as c:
            n, last = c.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM votes").fetchone()
        return int(n), int(last)


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
    """Blind A/B rounds for one server. The pair is drawn from `pool`, fixed when the server starts (the
    instructor's choice, never the client's); a round may have several turns; one vote per served round."""

    def __init__(self, cfg: ArenaConfig, store: VoteStore, pool: Sequence[str] = (), limits=None):
        from nbkit.serve.limits import Limits

        self.cfg, self.store = cfg, store
        self.pool = list(dict.fromkeys(pool))
        self.limits = limits or Limits()
        self.rng = random.Random(cfg.seed)
        self._lock = threading.Lock()  # random.Random is not meant to be shared by threads

    def new_round(self, session: str = "", client: str = "", attendee: str = "") -> dict:
        """A fresh round in the store: {"id", "pair": (a, b), "turns": []}; the app keeps it in gr.State."""
        with self._lock:
            pair = pick_pair(self.pool, self.rng)
        rid = secrets.token_urlsafe(16)
        self.store.open_round(rid, pair[0], pair[1], session, client, attendee)
        return {"id": rid, "pair": pair, "turns": []}

    def current_round(self, rnd, session: str = "", client: str = "", attendee: str = "") -> dict:
        """`rnd` while it still takes a vote, else a new round. The store decides, not the page's state: a vote
        whose answer arrives after the next question was asked must not bring the voted round back."""
        if isinstance(rnd, dict) and rnd.get("id") and not self.store.round_voted(rnd["id"]):
            return rnd
        return self.new_round(session, client, attendee)

    def vote(self, rnd, outcome: str, session: str = "", client: str = "", attendee: str = "") -> str:
        """Store the vote; returns who was who, as markdown."""
        rid = rnd.get("id") if isinstance(rnd, dict) else None
        lim = self.limits
        left, right = self.store.vote_round(
            rid,
            outcome,
            session,
            client,
            lim.votes_per_session,
            lim.votes_per_address,
            lim.vote_window,
            attendee=attendee,
            per_attendee=lim.votes_per_attendee,
        )
        said = {"left": "A is better", "right": "B is better", "tie": "tie", "both_bad": "both bad"}[outcome]
        return f"You voted **{said}**. A was **{left}**, B was **{right}**."

    def board(self, method: str | None = None):
        c = self.cfg
        return leaderboard(self.store.battles(), method or c.method, c.n_boot, c.seed, c.k_factor, c.prior)


# --------------------------------------------------------------------------------------------------- batch


# The batch tab's tasks: the ones that build without a download. GSM8K and multiple choice read the samples bundled
# in nbkit/tasks/fixtures (10 problems each, so 2 held out: a smoke check, not a benchmark).
BATCH_TASKS = {
    "arithmetic": {},
    "gsm8k": {"source": "gsm8k_sample.jsonl"},
    "multiple_choice": {"source": "commonsenseqa_sample.jsonl"},
}


def batch_task(name):
    """The task the batch tab evaluates, or ArenaError naming the ones it offers."""
    from nbkit.tasks import make_task

    if name not in BATCH_TASKS:
        raise ArenaError(
            f"The batch tab evaluates {', '.join(BATCH_TASKS)}; {str(name)[:40]!r} is none of them."
        )
    return make_task(name, **BATCH_TASKS[name])


def batch_choices() -> list[tuple[str, str]]:
    """(label, name) for the batch tab's dropdown; a bundled sample says how many problems it holds out."""
    out = []
    for name, args in BATCH_TASKS.items():
        held_out = len(batch_task(name).test()) if args.get("source") else 0
        out.append((f"{name} (bundled sample: {held_out} held-out problems)" if held_out else name, name))
    return out


def batch_accuracy(
    loader: Callable[[str], tuple],
    labels: Sequence[str],
    task,
    examples,
    max_new_tokens: int = 32,
    sampler=None,
):
    """Greedy accuracy of each model on the same examples via `task.evaluate`: a DataFrame, one row per model
    (model, accuracy, n, then one column per difficulty). `loader(label) -> (model, tokenizer)`; `sampler`: see
    Task.evaluate (the serving engine's, in the apps)."""
    import pandas as pd

    rows = []
    for label in labels:
        model, tok = loader(label)
        res = task.evaluate(
            model, tok, examples, max_new_tokens=max_new_tokens, progress=False, sampler=sampler
        )
        rows.append(
            {
                "model": label,
                "accuracy": round(res["accuracy"], 3),
                "n": res["n"],
                **{f"difficulty {d}": round(v, 3) for d, v in res["by_difficulty"].items()},
            }
        )
    return pd.DataFrame(rows)
