"""Read an experiment config file (YAML or JSON) into one of the experiment dataclasses.

    cfg = load_config("star.yaml", StarConfig)     # keys are the dataclass's fields; `profile:` picks defaults

A file may set `profile: cpu|smoke|gpu`; the dataclass's `for_profile(name)` gives the defaults and the file's
other keys override them. Unknown keys fail at once with the list of valid ones.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from nbkit.errors import ConfigError


def load_config(path: str | Path, cls):
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error is a config error
        raise ConfigError(f"could not parse {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of field: value")
    return from_dict(data, cls, source=str(path))


def from_dict(data: dict, cls, source: str = "config"):
    data = dict(data)
    fields = {f.name for f in dataclasses.fields(cls)}
    profile = data.pop("profile", None)
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(fields)}"
        )
    base = cls.for_profile(profile) if profile is not None and hasattr(cls, "for_profile") else cls()
    return dataclasses.replace(base, **data)


def describe(cls) -> str:
    """One line per field with its help text, for --help output."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else "(factory)"
        lines.append(f"  {f.name} = {default!r}: {f.metadata.get('help', '')}")
    return "\n".join(lines)
