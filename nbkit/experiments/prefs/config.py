"""The preference loop's config and its profiles.

- `PrefsConfig`: every setting, with its --help text, checked when built (one line per problem, before anything runs).
- `PROFILES`: smoke (the tiny model, seconds), cpu (SmolLM2-135M, minutes; the class's laptop), gpu (Qwen2.5-0.5B).
"""

from __future__ import annotations

from dataclasses import dataclass

from nbkit.config import ExperimentConfig, opt, settings_hash
from nbkit.errors import ConfigError

SOURCES = ("auto", "arena", "judge")


class PrefsError(ConfigError):
    """A preference loop that cannot work; the message says what to change."""


@dataclass
class PrefsConfig(ExperimentConfig):
    """Votes -> DPO -> blind rounds against the old model. Defaults are TRL's (beta) and the cpu profile's sizes."""

    model: str = opt("smollm2-135m", "the model the votes train (short name, hub id or checkpoint)")
    votes: str = opt(
        "auto",
        "auto: the arena's votes when it has at least min_pairs decided rounds, else the scripted judge's; "
        "arena: only the arena's; judge: only the scripted judge's",
    )
    arena_db: str = opt(
        "", "the arena's vote file; empty: <registry>/arena.sqlite, as `nbkit compare` writes it"
    )
    drop_flagged: bool = opt(False, "leave out every vote of the voters the audit flags (nbkit.serve.audit)")
    min_pairs: int = opt(16, "fewest preference pairs worth training on; fewer: the export refuses")
    digits: list[int] = opt([2], "digit counts of the arithmetic questions the judge's rounds ask")
    n_votes: int = opt(
        200, "scripted-judge votes to cast on the model's own answers (one round per question)"
    )
    temperature: float = opt(
        0.8, "sampling temperature of every answer (blind rounds sample, as the arena does)"
    )
    top_p: float = opt(0.95, "nucleus sampling of every answer")
    max_new_tokens: int = opt(48, "tokens per answer, in the judge's rounds and the comparison")
    beta: float = opt(
        0.1, "DPO beta: how far from the reference model the preferences may pull (TRL's default)"
    )
    lr: float = opt(2e-4, "learning rate of the LoRA adapter")
    epochs: float = opt(2.0, "epochs over the preference pairs")
    batch_size: int = opt(8, "pairs per optimizer step")
    lora: bool = opt(True, "train a LoRA adapter (reference = adapter off) instead of the full model")
    lora_r: int = opt(16, "LoRA rank")
    max_length: int = opt(160, "tokens of prompt + answer kept per pair")
    eval_rounds: int = opt(100, "new blind rounds, old model against new, judged by the same scripted judge")
    batch: int = opt(64, "answers per generation batch")
    seed: int = opt(0, "seed for the questions, the sampling, the pairing and the training")
    profile: str = opt(
        "cpu", "smoke | cpu | gpu: the row of PROFILES applied; it also prefixes the run names"
    )

    def __post_init__(self):
        """The one validation step: each problem in one line, before anything loads."""
        if self.votes not in SOURCES:
            raise PrefsError(f"votes={self.votes!r}: choose one of {', '.join(SOURCES)}")
        for key in ("n_votes", "eval_rounds", "min_pairs", "batch_size", "max_new_tokens"):
            if getattr(self, key) < 1:
                raise PrefsError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.votes != "arena" and self.n_votes < self.min_pairs:
            raise PrefsError(
                f"n_votes={self.n_votes} judge votes cannot give min_pairs={self.min_pairs} pairs: raise n_votes"
            )
        if not 0 < self.temperature <= 2:
            raise PrefsError(f"temperature must be in (0, 2]: blind rounds sample, got {self.temperature}")

    def config_id(self) -> str:
        """Six hex digits naming every setting that shapes the runs (the profile only prefixes their names)."""
        return settings_hash(self, ignore={"profile"})

    @property
    def name(self) -> str:
        """What the loop's runs are named after, beside the profile: "prefs-{config_id}"."""
        return f"prefs-{self.config_id()}"


# Each profile is a row of overrides of PrefsConfig's defaults (which are the cpu profile's).
PROFILES = {
    "smoke": dict(
        model="tiny",
        n_votes=12,
        min_pairs=4,
        max_new_tokens=8,
        epochs=1.0,
        batch_size=4,
        max_length=64,
        eval_rounds=8,
    ),
    "cpu": {},
    "gpu": dict(
        model="qwen2.5-0.5b",
        digits=[2, 3],
        n_votes=400,
        max_new_tokens=96,
        lr=1e-4,
        batch_size=16,
        max_length=320,
        eval_rounds=200,
        batch=128,
    ),
}
