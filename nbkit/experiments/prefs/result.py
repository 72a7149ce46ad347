"""What the preference loop found: `PrefsResult`, the new blind rounds, the votes it trained on, and the claim.

The claim: the new model wins more than half of the new blind rounds. Its score per round is 1 for a win, 0.5 for a
tie and 0 for a loss; the effect is the mean score (the win rate, ties counting half) with a bootstrap 95% interval
over rounds, and the test is the exact sign test on the decided rounds (`nbkit.claims.sign_test_p`). AGREES only
when the interval lies above 0.5 and p < 0.05.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from nbkit.experiments.prefs.judge import is_right, scripted_judge
from nbkit.files import read_jsonl


def win_claim(scores, claim: str = "the new model wins more than half of new blind rounds", seed: int = 0):
    """A Claim on per-round scores of the new model (1 win, 0.5 tie, 0 loss): win rate against 0.5.

    Example: 70 wins, 10 ties, 20 losses -> effect 0.75, interval about [0.67, 0.83], p = sign_test_p(70, 90)
    """
    from nbkit.claims import Claim, bootstrap_interval, needed_n, sign_test_p

    s = np.asarray(scores, dtype=float)
    if len(s) == 0:
        raise ValueError("win_claim: no rounds (0 scores); nothing to claim")
    wins, losses = int((s == 1).sum()), int((s == 0).sum())
    lo, hi = bootstrap_interval(s, seed=seed)
    d = 2 * s - 1  # +1 win, 0 tie, -1 loss: the paired difference new - old
    return Claim(
        claim,
        float(s.mean()),
        lo,
        hi,
        len(s),
        1,
        0.5,
        needed_n(d, float(d.mean())),
        sign_test_p(wins, wins + losses),
    )


def round_row(row: dict, new: str) -> dict:
    """One judged round from the new model's side. Example: new on the right, outcome "right" -> winner "new"."""
    prompt = json.loads(row["prompt"])[-1]
    a, b = json.loads(row["answer_a"])[-1], json.loads(row["answer_b"])[-1]
    new_text, old_text = (a, b) if row["left"] == new else (b, a)
    won = {"left": row["left"], "right": row["right"]}.get(row["outcome"])
    right_new, right_old = is_right(prompt, new_text), is_right(prompt, old_text)
    return {
        "round_id": row["round_id"],
        "question": prompt,
        "new_side": "A" if row["left"] == new else "B",
        "winner": "tie" if won is None else "new" if won == new else "old",
        "decided_by": "tie" if won is None else "correctness" if right_new != right_old else "length",
        "new_answer": new_text,
        "old_answer": old_text,
        "new_correct": right_new,
        "old_correct": right_old,
        "new_chars": len(new_text.strip()),
        "old_chars": len(old_text.strip()),
    }


def read_snapshot(votes) -> dict:
    """A votes run's snapshot.json: round ids, counts, position bias, voters, audit (nbkit.serve.votes)."""
    return json.loads((votes.path / "snapshot.json").read_text())


def pairs_frame(votes):
    """One row per preference pair of a votes run (pandas): question, chosen, rejected, their correctness and
    lengths in characters, the voter."""
    import pandas as pd

    rows = []
    for p in read_jsonl(votes.path / "pairs.jsonl"):
        q, chosen, rejected = (
            p["prompt"][-1]["content"],
            p["chosen"][0]["content"],
            p["rejected"][0]["content"],
        )
        rows.append(
            {
                "question": q,
                "chosen": chosen,
                "rejected": rejected,
                "chosen_correct": is_right(q, chosen),
                "rejected_correct": is_right(q, rejected),
                "chosen_chars": len(chosen.strip()),
                "rejected_chars": len(rejected.strip()),
                "voter": p["voter"],
            }
        )
    return pd.DataFrame(rows)


@dataclass
class PrefsResult:
    """The loop's three runs (votes, dpo, compare) and the new blind rounds' vote rows."""

    registry: object  # nbkit.runs.Registry
    votes_run: str
    dpo_run: str
    compare_run: str
    rows: list[dict]
    seconds: float

    def frame(self):
        """One row per new blind round (pandas): question, which side the new model sat on, winner, what decided
        it (correctness or length), both answers, their correctness and lengths."""
        import pandas as pd

        return pd.DataFrame([round_row(r, self.dpo_run) for r in self.rows])

    def scores(self) -> list[float]:
        return [{"new": 1.0, "tie": 0.5, "old": 0.0}[w] for w in self.frame().winner]

    def claim(self):
        return win_claim(self.scores())

    def claims(self) -> list:
        return [self.claim()]

    # ---------------------------------------------------------------------------------------- the votes

    def snapshot(self) -> dict:
        return read_snapshot(self.registry.get(self.votes_run))

    def pairs(self) -> list[dict]:
        return read_jsonl(self.registry.get(self.votes_run).path / "pairs.jsonl")

    def pairs_frame(self):
        return pairs_frame(self.registry.get(self.votes_run))

    def agreement(self) -> float:
        """Share of the pairs on which the scripted judge would have voted as the voter did (1.0 for its own)."""
        pairs = self.pairs()
        agree = [
            scripted_judge(p["prompt"][-1]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"])
            == "left"
            for p in pairs
        ]
        return sum(agree) / len(agree) if agree else float("nan")

    # -------------------------------------------------------------------------------------- the numbers

    def timings(self) -> dict:
        """Seconds of each step; `loop` = export + train + hot-add, what a workshop break must hold."""
        s = {n: self.registry.get(getattr(self, f"{n}_run")).summary for n in ("votes", "dpo", "compare")}
        out = {
            "votes": s["votes"].get("vote_seconds", 0.0),
            "export": s["votes"].get("export_seconds", 0.0),
            "train": s["dpo"].get("train_seconds", 0.0),
            "hot_add": s["compare"].get("hot_add_seconds", 0.0),
            "rounds": s["compare"].get("rounds_seconds", 0.0),
        }
        out["loop"] = round(out["export"] + out["train"] + out["hot_add"], 1)
        return out

    def leaderboard(self):
        """The compare arena's leaderboard after the new rounds (pandas)."""
        import pandas as pd

        return pd.DataFrame(self.registry.get(self.compare_run).summary.get("leaderboard", []))

    def why(self):
        """Rounds by winner and by what decided them (correctness or length), as a table (pandas)."""
        f = self.frame()
        return f.groupby(["winner", "decided_by"]).size().unstack(fill_value=0)

    def plot_training(self, ax=None, title: str = ""):
        """DPO's reward accuracy and margin against the step: how well the adapter separates chosen from
        rejected on the pairs it trains on."""
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        m = self.registry.get(self.dpo_run).metrics_frame().dropna(subset=["dpo/rewards/margins"])
        ax.plot(m.step, m["dpo/rewards/accuracies"], marker=".", label="reward accuracy")
        ax.plot(m.step, m["dpo/rewards/margins"], marker=".", label="reward margin")
        ax.set(xlabel="DPO step", ylabel="on the training pairs", title=title)
        ax.legend()
        return ax

    def plot_lengths(self, ax=None, title: str = ""):
        """Histogram of answer lengths (characters) in the new rounds: the old model against the new one."""
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        f = self.frame()
        top = max(1, int(max(f.old_chars.max(), f.new_chars.max())))
        bins = np.linspace(0, top, 25)
        ax.hist(f.old_chars, bins=bins, alpha=0.6, label="old model")
        ax.hist(f.new_chars, bins=bins, alpha=0.6, label="new model (DPO on the votes)")
        ax.set(xlabel="answer length (characters)", ylabel="answers", title=title)
        ax.legend()
        return ax

    def say(self) -> str:
        """What `nbkit prefs` prints: the votes, the timings, who won the new rounds and the claim."""
        snap, t, f = self.snapshot(), self.timings(), self.frame()
        c = snap["counts"]
        lines = [
            f"votes: {c['pairs']} pairs from {c['votes']} votes ({self.votes_run}, snapshot {snap['snapshot_id']})",
            snap["position"]["text"],
            f"new model {self.dpo_run}: wins {sum(f.winner == 'new')}, ties {sum(f.winner == 'tie')}, losses "
            f"{sum(f.winner == 'old')} of {len(f)} new blind rounds",
            f"export + train + hot-add: {t['loop']:.0f} s (train {t['train']:.0f} s); loop took {self.seconds:.0f} s",
        ]
        return "\n".join(lines + [str(self.claim())])
