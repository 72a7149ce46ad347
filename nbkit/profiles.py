"""Profiles: one notebook, three sizes.

- `smoke`: the `tiny` random model and a handful of steps. Seconds. CI executes every notebook in it.
- `cpu`: the embedded SmolLM2-135M-Instruct (offline). Minutes on a laptop. The workshop default.
- `gpu`: a larger hub model (Qwen2.5-0.5B-Instruct) for real experiments on a GPU.

A notebook's `parameters` cell sets PROFILE; the NBKIT_PROFILE environment variable overrides it, so
`NBKIT_PROFILE=smoke jupyter nbconvert --execute ...` needs no edit. Each experiment scales its own sizes from the
profile name (see StarConfig.for_profile and friends); this module only says which model and what hardware.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nbkit.errors import ConfigError


@dataclass(frozen=True)
class Profile:
    name: str
    model: str
    about: str


PROFILES = {
    "smoke": Profile(
        "smoke", "tiny", "tiny random model, a few steps: checks that everything runs (seconds)"
    ),
    "cpu": Profile("cpu", "smollm2-135m", "embedded SmolLM2-135M-Instruct on a laptop CPU (minutes)"),
    "gpu": Profile("gpu", "qwen2.5-0.5b", "Qwen2.5-0.5B-Instruct from the hub, on a GPU"),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile named by $NBKIT_PROFILE, else `name`, else "cpu"."""
    chosen = os.environ.get("NBKIT_PROFILE") or name or "cpu"
    if chosen not in PROFILES:
        raise ConfigError(f"unknown profile {chosen!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[chosen]
