"""Experiment configs: one dataclass per experiment, profiles as a table of overrides, one command line.

    @dataclass
    class RftConfig:
        steps: int = opt(30, "RFT optimizer steps")        # the help text is the --help text
    PROFILES = {"smoke": {"model": "tiny", "steps": 2}, "cpu": {}, "gpu": {...}}

    cfg = with_profile(RftConfig, PROFILES, "smoke", steps=3)        # in a notebook
    cfg, extra = parse_cli(RftConfig, PROFILES, argv, prog="nbkit rft")  # `nbkit rft --config F --steps 3`

On the command line (transformers' HfArgumentParser, as TRL's scripts use it) a value comes from, last wins: the
dataclass default, the profile's row (`--profile`, else the file's `profile:`), the `--config` YAML/JSON file, then
`--key value` flags. Unknown keys fail at once with the list of valid ones.

NBKIT_SEED sets the `seed` of every experiment config (after the profile's row, before a file and flags), so that
the laptops of a room run distinct replicates of the same experiment: `NBKIT_SEED=7`, or a name (`NBKIT_SEED=ada`),
which is hashed to a number that is the same on every machine.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import field
from pathlib import Path

from nbkit.errors import ConfigError


def opt(default, help: str):
    """A config field with its --help text (lists and dicts get a deep-copying factory, as dataclasses require)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def read_file(path: str | Path) -> dict:
    """The mapping in a YAML or JSON config file; one-line ConfigError if it is missing or malformed."""
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
    return data


def check_keys(data: dict, cls, source: str = "config") -> None:
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields - {"profile"})
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(fields)}"
        )


def profile_row(profiles: dict, name: str, cls) -> dict:
    """The overrides of profile `name`, e.g. profile_row(PROFILES, "smoke", RftConfig) -> {"model": "tiny", ...}."""
    if name not in profiles:
        raise ConfigError(f"unknown profile {name!r} for {cls.__name__}; choose {', '.join(profiles)}")
    return profiles[name]


def with_profile(cls, profiles: dict, name: str, /, **overrides):
    """cls built from profile `name`'s row of overrides, then NBKIT_SEED, then `overrides`; its `profile` field says
    which."""
    return cls(**{**profile_row(profiles, name, cls), **env_seed(cls), "profile": name, **overrides})


SEED_ENV = "NBKIT_SEED"
MAX_SEED = 2**31 - 1


def seed_from(text: str) -> int:
    """The seed that NBKIT_SEED's value names: a whole number as is, anything else (a name) hashed, so that the
    same name gives the same seed on every machine.

    Example: seed_from("7") -> 7; seed_from(" Ada ") == seed_from("ada") (a number below a million)
    """
    text = str(text).strip()
    if text.lstrip("+-").isdigit():
        seed = int(text)
        if not 0 <= seed <= MAX_SEED:
            raise ConfigError(
                f"{SEED_ENV}={text}: a seed must be a whole number from 0 to {MAX_SEED}, or a name"
            )
        return seed
    if not text:
        raise ConfigError(f"{SEED_ENV} is empty: give a whole number or a name, or unset it")
    return int(hashlib.sha256(text.lower().encode()).hexdigest(), 16) % 1_000_000


def env_seed(cls) -> dict:
    """{"seed": the NBKIT_SEED seed} when that is set and `cls` has a `seed` field, else {}."""
    value = os.environ.get(SEED_ENV)
    if value is None or "seed" not in {f.name for f in dataclasses.fields(cls)}:
        return {}
    return {"seed": seed_from(value)}


def settings_hash(config, ignore=()) -> str:
    """Six hex digits of a config's settings (a dataclass or a dict) without the keys in `ignore`: the same digits
    mean the same settings. Names the budget sweep's and the preference loop's runs, and a summary's config hash.

    Example: settings_hash({"lr": 1e-4, "profile": "cpu"}, ignore={"profile"}) == settings_hash({"lr": 1e-4})
    """
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    keep = {k: v for k, v in data.items() if k not in ignore}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:6]


class ExperimentConfig:
    """The two methods every experiment's config dataclass shares (a base for methods only, never for fields):
    `for_profile` builds it from a row of the PROFILES table in the class's own module, `run_name` names its runs."""

    @classmethod
    def for_profile(cls, profile: str, /, **overrides):
        """The config of `profile` (a row of PROFILES), then `overrides`, e.g. StarConfig.for_profile("smoke",
        iterations=1)."""
        return with_profile(cls, sys.modules[cls.__module__].PROFILES, profile, **overrides)

    def run_name(self, *stage) -> str:
        """Every run of an experiment is "{profile}-{name}-{stage}". Example: profile cpu, name star:
        run_name("iter2") -> "cpu-star-iter2"; a budget sweep: run_name("sft4", "dpo28") ->
        "cpu-budget-1db001-sft4-dpo28". A seed other than the field's default joins the profile ("cpu-s7-star-iter2",
        NBKIT_SEED=7), so one registry holds a laptop's replicates side by side and a pattern such as "cpu-s7-star-*"
        takes one replicate's loop and arms."""
        from nbkit.runs import run_name

        return run_name(self.profile, self.seed_tag(), self.name, *stage)

    def seed_tag(self) -> str:
        """ "s{seed}" when the config's seed is not its field's default, else "" (runs keep their names)."""
        field = {f.name: f for f in dataclasses.fields(self)}.get("seed")
        if field is None or self.seed == field.default:
            return ""
        return f"s{self.seed}"


def from_dict(data: dict, cls, source: str = "config"):
    data = dict(data)
    check_keys(data, cls, source)
    profile = data.pop("profile", None)
    base = cls.for_profile(profile) if profile is not None and hasattr(cls, "for_profile") else cls()
    return dataclasses.replace(base, **data)


# ---------------------------------------------------------------------------------------------- the command line


def parser(cls, prog: str, description: str = ""):
    """An HfArgumentParser for `cls` (one --flag per field, its help from the field) plus --config and --runs.
    Add an experiment's own flags to it, then hand it to `parse_cli`."""
    from transformers import HfArgumentParser

    p = HfArgumentParser(
        cls, prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    for action in p._actions:
        if action.type is dict:  # a dict field takes a YAML/JSON mapping: --task_args '{digits: [1, 2]}'
            action.type = _mapping
        if action.help:  # argparse formats help with %: "20%" in a field's help must not break --help
            action.help = action.help.replace("%", "%%")
    p.add_argument(
        "--config",
        help=f"YAML/JSON file of {cls.__name__} keys (`profile:` picks the profile); flags override it",
    )
    p.add_argument(
        "--runs", default=None, help="registry folder (default: $NBKIT_RUNS, else the project's runs/)"
    )
    return p


def _mapping(text: str) -> dict:
    import yaml

    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a mapping such as '{{key: value}}', got {text!r}")
    return value


def parse_cli(cls, profiles: dict, argv: list[str], p=None, prog: str = "nbkit", description: str = ""):
    """(config, namespace of the other flags) from argv: defaults < profile row < NBKIT_SEED < --config file <
    --key value.

    Example: ["--profile", "smoke", "--steps", "3"] -> (RftConfig(model="tiny", ..., steps=3), Namespace(...)).
    """
    p = p or parser(cls, prog, description)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--profile")
    known, _ = pre.parse_known_args(argv)
    data = read_file(known.config) if known.config else {}
    check_keys(data, cls, known.config or "config")
    default = next(f.default for f in dataclasses.fields(cls) if f.name == "profile")
    profile = known.profile or data.get("profile") or default
    row = profile_row(profiles, profile, cls) if profile else {}
    p.set_defaults(**{**row, **env_seed(cls), **data, "profile": profile})
    cfg, extra, unknown = p.parse_args_into_dataclasses(
        argv, look_for_args_file=False, return_remaining_strings=True
    )
    if unknown:
        raise ConfigError(f"{p.prog}: unknown option(s) {' '.join(unknown)}; `{p.prog} --help` lists them")
    return cfg, extra
