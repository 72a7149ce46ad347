"""Are these votes worth training on? An audit of the arena's vote log: votes per voter, voters whose votes always
favour one model, position bias, ties, and intransitive triples (A beats B, B beats C, C beats A).

A workshop's votes become DPO pairs (nbkit.serve.votes); one attendee who votes for the same model in every round,
or one who always clicks "A", would teach the model their habit. The audit names them; the export can leave their
votes out (`export_pairs(..., drop_flagged=True)`) and says how many it left out. What it simplifies: a flag is a
pattern, not proof (an attendee who really prefers the best model in a two-model pool is flagged too), and a voter is
the attendee name when the server recorded one, else the browser session.

    a = audit(store.log())     # rows of nbkit.serve.arena.VoteStore.log()
    a.flagged                  # ["mallory"]: every decided vote of theirs went to one model
    a.frame()                  # one row per voter: votes, decided, ties, both_bad, left_share, favourite, ...
    a.lines()                  # sentences for the leaderboard page and the export's report
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

from nbkit.serve.arena import Battle, win_matrix

MIN_VOTES = 3  # decided votes before a voter's pattern is flagged: two in a row happen by chance


def voter_of(row: dict) -> str:
    """Who cast a vote row: the attendee name when recorded, else the browser session, else the address.

    Example: {"attendee": "ada", "session": "x1"} -> "ada"; {"session": "x1b2", "client": "10.0.0.5"} -> "session:x1b2"
    """
    if row.get("attendee"):
        return str(row["attendee"])
    if row.get("session"):
        return f"session:{row['session']}"
    return f"address:{row['client']}" if row.get("client") else "unknown"


def winner(left: str, right: str, outcome: str) -> str | None:
    """The model a decided vote went to; None for a tie or both bad. Example: ("a", "b", "right") -> "b"."""
    return {"left": left, "right": right}.get(outcome)


def favourite(battles: Sequence[Battle]) -> tuple[str | None, int]:
    """(the model that won most of these decided votes, how many it won); rounds with one model on both sides
    favour no model. Example: [("a", "b", "left"), ("c", "a", "right"), ("a", "b", "tie")] -> ("a", 2)."""
    wins = Counter(winner(*b) for b in battles if b[0] != b[1] and winner(*b))
    return wins.most_common(1)[0] if wins else (None, 0)


def intransitive_triples(battles: Sequence[Battle]) -> list[tuple[str, str, str]]:
    """Triples of models whose head-to-head records go round in a circle: (a, b, c) with a ahead of b, b ahead of c
    and c ahead of a (ahead: more wins than losses between the two, a tie counting half to each).

    Example: [("a", "b", "left"), ("b", "c", "left"), ("c", "a", "left")] -> [("a", "b", "c")]
    """
    models, w = win_matrix([b for b in battles if b[0] != b[1]])
    ahead = w > w.T
    out = []
    for i, j, k in combinations(range(len(models)), 3):
        for a, b, c in ((i, j, k), (i, k, j)):
            if ahead[a, b] and ahead[b, c] and ahead[c, a]:
                out.append((models[a], models[b], models[c]))
    return out


@dataclass
class Audit:
    """The audit of a vote log: `voters` (one dict per voter), `flagged` (voter names), the position counts, ties,
    both-bad votes and the intransitive triples of the whole log."""

    voters: list[dict]
    flagged: list[str]
    left: int
    right: int
    ties: int
    both_bad: int
    position: str = ""  # the position-bias sentence (nbkit.serve.leaderboard.position_bias)
    cycles: list[tuple[str, str, str]] = field(default_factory=list)
    min_votes: int = MIN_VOTES

    @property
    def votes(self) -> int:
        return self.left + self.right + self.ties + self.both_bad

    def frame(self):
        """One row per voter, most votes first (pandas)."""
        import pandas as pd

        return pd.DataFrame(self.voters)

    def lines(self, position: bool = True) -> list[str]:
        """Sentences that say what the audit found (markdown); `position=False` leaves out the position bias."""
        if not self.votes:
            return ["Audit: no votes yet."]
        out = [
            f"Audit: {self.votes} votes from {len(self.voters)} voters; {self.ties} ties and {self.both_bad} "
            "both bad."
        ] + ([self.position] if position else [])
        for v in self.voters:
            if v["voter"] in self.flagged:
                out.append(
                    f"**{v['voter']}**: all {v['decided']} decided votes went to {v['favourite']} (flagged)."
                )
        if not self.flagged:
            out.append(f"No voter gave all of {self.min_votes} or more decided votes to one model.")
        if self.cycles:
            shown = "; ".join(f"{a} > {b} > {c} > {a}" for a, b, c in self.cycles[:3])
            out.append(f"Intransitive triples: {len(self.cycles)} ({shown}).")
        return out


def voter_rows(rows: Sequence[dict], min_votes: int = MIN_VOTES) -> list[dict]:
    """Per voter: votes, decided (A or B better), ties, both_bad, left_share (of decided votes), favourite (the
    model that won most of their decided votes), favourite_share, cycles (intransitive triples within their own
    votes) and flagged (at least `min_votes` decided votes, all to one model). Most votes first."""
    by: dict[str, list[Battle]] = {}
    for r in rows:
        by.setdefault(voter_of(r), []).append((r["left"], r["right"], r["outcome"]))
    out = []
    for voter, battles in by.items():
        outcomes = Counter(o for _, _, o in battles)
        decided = outcomes["left"] + outcomes["right"]
        fav, won = favourite(battles)
        mixed = sum(1 for b in battles if b[0] != b[1] and winner(*b))  # decided votes between two models
        out.append(
            {
                "voter": voter,
                "votes": len(battles),
                "decided": decided,
                "ties": outcomes["tie"],
                "both_bad": outcomes["both_bad"],
                "left_share": round(outcomes["left"] / decided, 2) if decided else None,
                "favourite": fav,
                "favourite_share": round(won / mixed, 2) if mixed else None,
                "cycles": len(intransitive_triples(battles)),
                "flagged": mixed >= min_votes and won == mixed,
            }
        )
    return sorted(out, key=lambda v: (-v["votes"], v["voter"]))


def audit(rows: Sequence[dict], min_votes: int = MIN_VOTES) -> Audit:
    """Audit vote rows (dicts with left, right, outcome and the voter's attendee/session/client, as
    `VoteStore.log()` gives them)."""
    from nbkit.serve.leaderboard import position_bias

    voters = voter_rows(rows, min_votes)
    outcomes = Counter(r["outcome"] for r in rows)
    battles = [(r["left"], r["right"], r["outcome"]) for r in rows]
    return Audit(
        voters=voters,
        flagged=[v["voter"] for v in voters if v["flagged"]],
        left=outcomes["left"],
        right=outcomes["right"],
        ties=outcomes["tie"],
        both_bad=outcomes["both_bad"],
        position=position_bias(battles),
        cycles=intransitive_triples(battles),
        min_votes=min_votes,
    )
