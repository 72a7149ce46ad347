"""What a classroom leaderboard can and cannot say: tied ranks, votes still needed, position bias, and the
win-rate and battle-count matrices behind the ratings (`nbkit.serve.arena.leaderboard` gives the table itself).

A workshop collects tens of votes, not the millions of Chatbot Arena, so most gaps are noise. These helpers put
that in words next to the table.

    board = leaderboard(battles)                 # nbkit.serve.arena
    separation(board)   # ["about 40 more votes to separate tiny-b and tiny (intervals overlap by 120 points)"]
    position_bias(battles)  # "A (left) won 7 of 10 decisive votes (70%) ..."
    matrices(battles)   # (win-rate DataFrame, battle-count DataFrame)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
