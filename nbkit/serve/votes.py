"""From the arena's votes to a preference dataset: every decided blind round becomes one DPO pair in TRL's
conversational format (prompt, chosen, rejected), with a snapshot that says which rounds it holds.

    exp = export_pairs(VoteStore("runs/arena.sqlite"))   # or a path, or VoteStore.log() rows
    exp.dataset()        # datasets.Dataset: prompt, chosen, rejected (+ round_id, voter, winner, loser)
    exp.counts           # {"votes": 230, "pairs": 171, "ties": 30, "both_bad": 21, "damaged": 1, ...}
    exp.save("out/")     # out/pairs.jsonl + out/snapshot.json (round ids, counts, position bias, voters, audit)
    nbkit arena export --format dpo -o out/              # the same from the command line

A round's vote says which whole conversation was better. The pair keeps the voted-for side's conversation as the
prompt (every earlier user turn and that side's earlier answers, then the last user turn), its last answer as
"chosen" and the other side's last answer as "rejected". Simplifications: in a multi-turn round the rejected answer
was written after its own side's earlier answers, not the chosen side's; the system prompt of the round is not
stored, so it is not in the pair. Ties and both-bad rounds say nothing about which answer to prefer: they are left
out and counted, and so are votes without a served round (`VoteStore.add`) and damaged rows (text that is not the
JSON the store writes). `drop_flagged=True` leaves out every vote of the voters the audit flags (nbkit.serve.audit).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nbkit.serve.arena import OUTCOMES, ArenaError
from nbkit.serve.audit import MIN_VOTES, Audit, audit, voter_of

MIN_PAIRS = 16  # fewer decided rounds than this teach a model nothing but noise: the export refuses
FORMATS = ("dpo",)


class VotesError(ArenaError):
    """Votes that cannot become a preference dataset (too few decided rounds, an unknown format)."""


def load_rows(source) -> list[dict]:
    """Vote rows from a VoteStore, an SQLite file written by one, or rows already read (`VoteStore.log()`)."""
    from nbkit.serve.arena import VoteStore

    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise VotesError(
                f"no vote file at {path}: run the arena (`nbkit compare ...`) and collect votes first"
            )
        source = VoteStore(path)
    if isinstance(source, VoteStore):
        return source.log()
    return [dict(r) for r in source]


def round_turns(row: dict) -> list[dict]:
    """The turns of a voted round: [{"prompt", "a", "b"}, ...] from the row's JSON lists; [] for a vote without a
    served round. ValueError when the row is damaged (not the JSON lists of strings the store writes).

    Example: {"round_id": "r", "prompt": '["2+2?"]', "answer_a": '["4"]', "answer_b": '["5"]'}
    -> [{"prompt": "2+2?", "a": "4", "b": "5"}]
    """
    if not row.get("round_id") or row.get("answer_a") is None or row.get("answer_b") is None:
        return []
    prompts, a, b = (json.loads(row[k]) for k in ("prompt", "answer_a", "answer_b"))
    lists = (prompts, a, b)
    if not all(isinstance(x, list) and all(isinstance(t, str) for t in x) for x in lists):
        raise ValueError("prompt and answers must be JSON lists of strings")
    if not prompts or not len(prompts) == len(a) == len(b):
        raise ValueError(f"{len(prompts)} prompts for {len(a)} and {len(b)} answers")
    return [{"prompt": p, "a": x, "b": y} for p, x, y in zip(prompts, a, b)]


def to_pair(row: dict, turns: list[dict]) -> dict:
    """One TRL conversational preference row from a decided round (outcome "left" or "right").

    Example: turns [{"prompt": "hi", "a": "A1", "b": "B1"}, {"prompt": "2+2?", "a": "4", "b": "5"}], outcome "left"
    -> prompt [user hi, assistant A1, user 2+2?], chosen [assistant 4], rejected [assistant 5]
    """
    win, lose = ("a", "b") if row["outcome"] == "left" else ("b", "a")
    prompt: list[dict] = []
    for t in turns[:-1]:
        prompt += [{"role": "user", "content": t["prompt"]}, {"role": "assistant", "content": t[win]}]
    prompt.append({"role": "user", "content": turns[-1]["prompt"]})
    sides = {"a": row["left"], "b": row["right"]}
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": turns[-1][win]}],
        "rejected": [{"role": "assistant", "content": turns[-1][lose]}],
        "round_id": row["round_id"],
        "voter": voter_of(row),
        "winner": sides[win],
        "loser": sides[lose],
        "turns": len(turns),
    }


@dataclass
class VoteExport:
    """The pairs of an export, what was left out and why (`counts`), the audit of the votes it read, and where they
    came from. `snapshot()` is what a training run records as its data's lineage."""

    pairs: list[dict]
    counts: dict
    audit: Audit
    dropped_voters: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def round_ids(self) -> list[str]:
        return [p["round_id"] for p in self.pairs]

    @property
    def snapshot_id(self) -> str:
        """Six hex digits naming the set of rounds held: the same votes give the same id, one more vote another."""
        return hashlib.sha256("\n".join(sorted(self.round_ids)).encode()).hexdigest()[:6]

    def dataset(self):
        """The pairs as a Hugging Face `datasets.Dataset` (TRL's conversational preference format)."""
        from datasets import Dataset

        return Dataset.from_list(self.pairs)

    def per_voter(self) -> dict[str, int]:
        """Pairs kept per voter, most first."""
        return dict(Counter(p["voter"] for p in self.pairs).most_common())

    def snapshot(self) -> dict:
        return {
            "format": "dpo",
            "source": self.source,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "snapshot_id": self.snapshot_id,
            "round_ids": self.round_ids,
            "counts": self.counts,
            "position": {"left": self.audit.left, "right": self.audit.right, "text": self.audit.position},
            "per_voter": self.per_voter(),
            "flagged_voters": self.audit.flagged,
            "dropped_voters": self.dropped_voters,
            "intransitive_triples": [list(c) for c in self.audit.cycles],
            "voters": self.audit.voters,
        }

    def save(self, folder: str | Path) -> Path:
        """Write pairs.jsonl (`datasets.load_dataset("json", data_files=...)` reads it) and snapshot.json."""
        from nbkit.files import write_jsonl

        folder = Path(folder).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        write_jsonl(folder / "pairs.jsonl", self.pairs)
        (folder / "snapshot.json").write_text(json.dumps(self.snapshot(), indent=1))
        return folder

    def left_out(self) -> str:
        """Example: "left out: 3 ties, 1 both bad, 0 without a served round, 1 damaged, 0 from flagged voters" """
        c = self.counts
        return (
            f"left out: {c['ties']} ties, {c['both_bad']} both bad, {c['no_round']} without a served round, "
            f"{c['damaged']} damaged, {c['flagged_votes']} from flagged voters"
        )

    def lines(self) -> list[str]:
        """What the export kept and left out, in a few sentences."""
        c = self.counts
        out = [
            f"{c['pairs']} preference pairs from {c['votes']} votes (snapshot {self.snapshot_id}); {self.left_out()}."
        ]
        if self.dropped_voters:
            out.append(
                f"Flagged voters left out ({len(self.dropped_voters)}): {', '.join(self.dropped_voters)}."
            )
        out.append(self.audit.position)
        kept = self.per_voter()
        out.append(f"Pairs per voter ({len(kept)} voters): " + ", ".join(f"{v} {n}" for v, n in kept.items()))
        return out


def export_pairs(
    source,
    min_pairs: int = MIN_PAIRS,
    drop_flagged: bool = False,
    min_votes: int = MIN_VOTES,
    format: str = "dpo",
) -> VoteExport:
    """Decided blind rounds -> preference pairs (see the module docstring). `source`: a VoteStore, its file, or
    vote rows. Refuses (VotesError) with fewer than `min_pairs` pairs, saying what was left out and why."""
    if format not in FORMATS:
        raise VotesError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    rows = load_rows(source)
    label = (
        str(getattr(source, "path", source))
        if isinstance(source, (str, Path)) or hasattr(source, "path")
        else ""
    )
    counts = dict.fromkeys(("votes", "pairs", "ties", "both_bad", "no_round", "damaged", "flagged_votes"), 0)
    usable = []
    for row in rows:
        try:
            if row.get("outcome") not in OUTCOMES:
                raise ValueError(f"unknown outcome {row.get('outcome')!r}")
            turns = round_turns(row)
        except (ValueError, TypeError, KeyError):
            counts["damaged"] += 1
            continue
        usable.append((row, turns))
    found = audit([r for r, _ in usable], min_votes)
    dropped = found.flagged if drop_flagged else []
    pairs = []
    for row, turns in usable:
        if voter_of(row) in dropped:
            counts["flagged_votes"] += 1
        elif row["outcome"] == "tie":
            counts["ties"] += 1
        elif row["outcome"] == "both_bad":
            counts["both_bad"] += 1
        elif not turns:
            counts["no_round"] += 1
        else:
            pairs.append(to_pair(row, turns))
    counts.update(votes=len(rows), pairs=len(pairs))
    exp = VoteExport(pairs, counts, found, dropped, label or "vote rows")
    if len(pairs) < min_pairs:
        raise VotesError(
            f"only {len(pairs)} decided rounds can become preference pairs ({exp.left_out()}); training needs at least "
            f"{min_pairs}: collect more votes, or lower min_pairs"
        )
    return exp
