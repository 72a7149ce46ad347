"""The experiments. Each is a subpackage with the same pieces, in the same places, so that a reader who knows one
knows the other two, and a new one (say, LoRA against full fine-tuning) copies their shape:

    nbkit/experiments/<name>/
        config.py   <Name>Config: a dataclass whose fields carry their --help text (`nbkit.config.opt`); defaults
                    are the paper's where it gives one; checked in __post_init__ with one-line ConfigErrors;
                    `run_name(*stage)` names every run "{profile}-{name}-{stage}"; below the class, PROFILES, a
                    table of overrides per profile ("smoke", "cpu", "gpu"), applied by `for_profile(p, **overrides)`
        data.py     the task and the rows each stage trains or evaluates on (pure functions, no model)
        run.py      run(cfg, registry=None, *, progress=True, <stage>=<default>, ...) -> Result. The stages are
                    module-level functions `stage(cfg, model, tok, <data>, writer)` that run() takes as keyword
                    parameters, so a test passes fakes in. Every finished stage is a registry run, reused or built
                    by `Registry.ensure` (a rerun reuses it when its config matches and refuses, in one line, when
                    it does not). Several processes: only the main one writes; the others get a `runs.NullRun`
        result.py   the Result: frame() (a DataFrame), plot_*() (figures), claims() (`nbkit.claims.Claim`s with
                    intervals) and say() (a few lines for the command line); figures that set several results
                    side by side (the arms of a notebook) are functions taking {label: Result}
        __init__.py what notebooks, the exercises and the CLI use, plus `Config`, `PROFILES` and `run`

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
    cfg, args = parse_cli(exp.Config, exp.PROFILES, argv[1:], p)
    result = exp.run(cfg, Registry(args.runs))
    if dist.is_main():
        print(result.say())
        if args.out:
            result.frame().to_csv(args.out, index=False)
    return 0
