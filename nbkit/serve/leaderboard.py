"""What a classroom leaderboard can and cannot say: tied ranks, votes still needed, position bias, and the
win-rate and battle-count matrices behind the ratings (`nbkit.serve.arena.leaderboard` gives the table itself).

A workshop collects tens of votes, not the millions of Chatbot Arena, so most gaps are noise. These helpers put
that in words next to the table.

    board = leaderboard(battles)                 # nbkit.serve.arena
    separation(board)   # ["about 40 more votes to separate tiny-b and tiny (intervals overlap by 120 points)"]
    position_bias(battles)  # "A (left) won 7 of 10 decisive votes (70%) ..."
    matrices(battles)   # (win-rate DataFrame, battle-count DataFrame)
    Boards(arena).current()  # all of it, recomputed once per change of the votes, off the request path
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from nbkit.serve.arena import Battle, win_matrix


def votes_to_separate(gap: float, half_a: float, half_b: float, games_a: int, games_b: int) -> int | None:
    """Extra votes (for the pair, roughly) until two intervals stop overlapping, assuming each half-width
    shrinks as 1/sqrt(games) and the gap stays. None when they are already separate.

    Example: gap 50, half-widths 100 and 100 after 10 games each -> the widths must shrink by 4x, i.e. 16x the
    games: 10 * 16 - 10 = 150 more games each, about 150 votes.
    """
    gap = abs(gap)
    if gap >= half_a + half_b:
        return None
    if gap <= 0:
        return math.inf  # type: ignore[return-value]
    factor = ((half_a + half_b) / gap) ** 2
    n = max(games_a, games_b, 1)
    return int(math.ceil(n * factor - n))


def separation(board) -> list[str]:
    """One line per pair of neighbours in the table whose intervals overlap: how many more votes would likely
    separate them. `board`: DataFrame from nbkit.serve.arena.leaderboard (sorted best first)."""
    rows = board.to_dict("records")
    lines = []
    for a, b in zip(rows, rows[1:]):
        half_a, half_b = (a["ci_hi"] - a["ci_lo"]) / 2, (b["ci_hi"] - b["ci_lo"]) / 2
        n = votes_to_separate(a["rating"] - b["rating"], half_a, half_b, a["games"], b["games"])
        if n is None:
            lines.append(f"{a['model']} is ahead of {b['model']}: their intervals do not overlap.")
        elif n == math.inf:
            lines.append(
                f"{a['model']} and {b['model']} are level: no number of votes is sure to separate them."
            )
        else:
            lines.append(
                f"about {n} more votes to separate {a['model']} and {b['model']} (intervals overlap)."
            )
    return lines


def position_bias(battles: Sequence[Battle]) -> str:
    """How often the model shown as A won among decisive votes, with a 95% Wilson interval; a fair arena is
    near 50%. Example: 7 left wins, 3 right wins -> "A won 7 of 10 decisive votes (70%, 95% CI 40-89%)"."""
    left = sum(o == "left" for _, _, o in battles)
    right = sum(o == "right" for _, _, o in battles)
    n = left + right
    if n == 0:
        return "Position bias: no decisive votes yet (A or B better)."
    p, z = left / n, 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (
        f"Position bias: A won {left} of {n} decisive votes ({p:.0%}, 95% CI {lo:.0%}-{hi:.0%}); "
        "50% means the side does not matter."
    )


def matrices(battles: Sequence[Battle]):
    """(win rate, battle count) DataFrames indexed by model: win_rate[i][j] = share of i's games against j that
    i won (a tie counts half), blank where they never met; count[i][j] = games between i and j."""
    import pandas as pd

    models, w = win_matrix(battles)
    n = w + w.T
    with_nan = [
        [round(w[i, j] / n[i, j], 2) if n[i, j] else None for j in range(len(models))]
        for i in range(len(models))
    ]
    rate = pd.DataFrame(with_nan, index=models, columns=models)
    count = pd.DataFrame(n.astype(int), index=models, columns=models)
    return rate.reset_index(names="model"), count.reset_index(names="model")


# --------------------------------------------------------------------------------------------------- cache

ELO_NOTE = (
    "Elo view: LMSYS's online Elo (K = {k:g}) moves each rating by at most {k:g} points a vote and depends on the "
    "order of the votes, so at classroom vote counts its gap stays inside the intervals even when every vote "
    "agrees. Read it next to Bradley-Terry, which fits all votes at once; the ranking verdict below is "
    "Bradley-Terry's (LMSYS moved to it for the same reason)."
)


@dataclass
class Board:
    """Everything the leaderboard shows for one state of the votes. `key` = VoteStore.version()."""

    key: tuple[int, int]
    tables: dict  # method -> DataFrame (nbkit.serve.arena.leaderboard)
    notes: dict  # method -> markdown
    matrices: tuple  # (win rate, battle count) DataFrames

    def table(self, method: str = "bt"):
        return self.tables[self._known(method)]

    def note(self, method: str = "bt") -> str:
        return self.notes[self._known(method)]

    def _known(self, method: str) -> str:
        if method not in self.tables:
            from nbkit.serve.arena import ArenaError

            raise ArenaError(f"unknown rating method {method!r}; use 'bt' (Bradley-Terry) or 'elo'")
        return method


def board_notes(
    tables: dict, battles: Sequence[Battle], method: str, k: float = 4.0, extra: Sequence[str] = ()
) -> str:
    """Markdown under the table: which gaps the votes can tell apart yet, position bias, then `extra` lines
    (the vote audit). The separation lines are always Bradley-Terry's; the Elo view says why its own gaps are
    no verdict."""
    if not battles:
        return "No votes yet."
    lines = separation(tables["bt"])
    if method == "elo":
        lines = [ELO_NOTE.format(k=k)] + [f"Bradley-Terry: {x}" for x in lines]
    return "\n".join(f"- {x}" for x in [*lines, position_bias(battles), *extra])


class Boards:
    """The leaderboard, computed once per change of the votes by a background thread, never on a request.

    A Bradley-Terry bootstrap costs about 0.1 s of CPU at 200 votes (3 s before it was batched), and every
    vote and every refresh used to pay it, several times. Here `changed()` (a vote) wakes the thread; the thread
    also notices votes written by another process (it polls the file's version every `poll` seconds).
    `current()` returns the board for the votes stored now, waiting (not computing) up to `wait` seconds for the
    thread to catch up, else the latest one it has. `extra_notes()` gives lines added under every table (the
    vote audit), computed with it.

        boards = Boards(arena)        # nbkit.serve.arena.Arena
        boards.current().tables["bt"], boards.current().notes["elo"]
    """

    METHODS = ("bt", "elo")

    def __init__(self, arena, poll: float = 2.0, wait: float = 10.0, extra_notes=lambda: []):
        self.arena, self.poll, self.wait, self.extra_notes = arena, poll, wait, extra_notes
        self._latest = self.compute(arena.store.version())  # at start: the first visitor finds it ready
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self.computed = 1  # boards computed so far (tests read it)
        threading.Thread(target=self._run, daemon=True, name="nbkit-leaderboard").start()

    def changed(self) -> None:
        self._wake.set()

    def current(self, wait: float | None = None) -> Board:
        key = self.arena.store.version()
        with self._cond:
            if not self._fresh(key):
                self._wake.set()
                self._cond.wait_for(lambda: self._fresh(key), self.wait if wait is None else wait)
            return self._latest

    def _fresh(self, key) -> bool:
        return self._latest.key == key or self._latest.key[1] > key[1]

    def _run(self) -> None:
        while True:
            self._wake.wait(self.poll)
            self._wake.clear()
            try:
                key = self.arena.store.version()
                if self._latest.key == key:
                    continue
                board = self.compute(key)
            except Exception as e:  # noqa: BLE001 - a bad row must not end the thread; keep the last board
                print(f"nbkit: leaderboard not updated: {type(e).__name__}: {e}", file=sys.stderr)
                time.sleep(self.poll)
                continue
            with self._cond:
                self._latest = board
                self.computed += 1
                self._cond.notify_all()

    def compute(self, key: tuple[int, int]) -> Board:
        from nbkit.serve.arena import leaderboard

        c, battles = self.arena.cfg, self.arena.store.battles()
        tables = {m: leaderboard(battles, m, c.n_boot, c.seed, c.k_factor, c.prior) for m in self.METHODS}
        extra = self.extra_notes() if battles else []
        notes = {m: board_notes(tables, battles, m, c.k_factor, extra) for m in self.METHODS}
        return Board(key, tables, notes, matrices(battles))
