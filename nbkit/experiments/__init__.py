"""The experiments. Each is a subpackage with the same pieces, so a new one (say, LoRA against full fine-tuning)
copies the shape of these three:

    nbkit/experiments/<name>/
        config.py   <Name>Config: a dataclass whose fields carry their --help text (`nbkit.config.opt`), checked in
                    __post_init__ with one-line ConfigErrors; PROFILES, a table of overrides per profile
                    ("smoke", "cpu", "gpu"); for_profile(name, **overrides)
        run.py      run(config, registry, ...) -> Result, made of named stages (module-level functions that the run
                    takes as parameters, so tests pass fakes in). Every finished stage is a registry run: a rerun
                    reuses it when its config matches and refuses, in one line, when it does not
                    (`Registry.reuse`). Several processes: `nbkit.dist` (only the main process writes)
        result.py   the Result: frame() (a DataFrame), plot_*(), claim_*() and say() (a few lines for the CLI)
        __init__.py the public names, plus `Config`, `PROFILES` and `run`, which `nbkit <name>` uses

One command line for all of them (`command` below): `nbkit <name> [--config FILE] [--profile P] [--runs DIR]
[--<field> value ...] [--out results.csv]`, built from the config dataclass with transformers' HfArgumentParser.
"""

from __future__ import annotations

import importlib

EXPERIMENTS = {
    "star": "STaR rationale bootstrapping: sample, filter, rationalize, fine-tune, repeat",
    "rft": "GRPO with per-prompt reward-variance diagnostics and an optional SFT warm-start",
    "budget": "SFT vs DPO under a fixed annotation budget: a sweep of budget x preference share",
}


def load(name: str):
    """The subpackage of experiment `name`, e.g. load("rft") -> nbkit.experiments.rft."""
    return importlib.import_module(f"{__name__}.{name}")


def command(argv: list[str]) -> int:
    """`nbkit <name> ...` (argv[0] is the experiment's name): parse, run or resume, print the result's summary."""
    from nbkit import dist
    from nbkit.config import parse_cli, parser
    from nbkit.runs import Registry

    name = argv[0]
    exp = load(name)
    p = parser(exp.Config, f"nbkit {name}", EXPERIMENTS[name] + "; finished stages are reused.")
    p.add_argument("--out", default=None, help="also write the result's frame() to this CSV file")
    for flag in getattr(exp, "EXTRA_FLAGS", {}):  # e.g. budget's deprecated --root
        p.add_argument(flag, **exp.EXTRA_FLAGS[flag])
    cfg, args = parse_cli(exp.Config, exp.PROFILES, argv[1:], p)
    result = exp.run(cfg, Registry(args.runs))
    if dist.is_main():
        print(result.say())
        if args.out:
            result.frame().to_csv(args.out, index=False)
    return 0
