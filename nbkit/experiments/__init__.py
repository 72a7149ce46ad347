"""The experiments. Each is a subpackage with the same pieces, in the same places, so that a reader who knows one
knows the other two, and a new one (say, LoRA against full fine-tuning) copies their shape:

    nbkit/experiments/<name>/
        config.py   <Name>Config: a dataclass whose fields carry their --help text (`nbkit.config.opt`); defaults
                    are the paper's where it gives one; checked in __post_init__ with one-line ConfigErrors;
                    `run_name(*stage)` names every run "{profile}-{name}-{stage}"; below the class, PROFILES, a
                    table of overrides per profile ("smoke", "cpu", "gpu"), applied by `for_profile(p, **overrides)`
        data.py     the task and the rows each stage trains or evaluates on (pure functions, no model)
        run.py      dry_run(cfg, registry=None) -> str: the data drawn and every run that run() would register, with
                    its steps, and which of them the registry holds already; no model is loaded, nothing is written.
                    run(cfg, registry=None, *, progress=True, <stage>=<default>, ...) -> Result. The stages are
                    module-level functions `stage(cfg, model, tok, <data>, writer)` that run() takes as keyword
                    parameters, so a test passes fakes in. Every finished stage is a registry run, reused or built
                    by `Registry.ensure` (a rerun reuses it when its config matches and refuses, in one line, when
                    it does not). Several processes: only the main one writes; the others get a `runs.NullRun`
        result.py   the Result: frame() (a DataFrame), plot_*() (figures), claims() (`nbkit.claims.Claim`s with
                    intervals) and say() (a few lines for the command line); figures that set several results
                    side by side (the arms of a notebook) are functions taking {label: Result}
        __init__.py what notebooks, the exercises and the CLI use, plus `Config`, `PROFILES` and `run`

One command line for all of them (`command` below): `nbkit <name> [--config FILE] [--profile P] [--runs DIR]
[--<field> value ...] [--out results.csv] [--dry-run]`, built from the config dataclass with transformers'
HfArgumentParser. `--dry-run` prints the plan (`dry_run`) instead of running it.
"""

from __future__ import annotations

import importlib

EXPERIMENTS = {
    "star": "STaR rationale bootstrapping: sample, filter, rationalize, fine-tune, repeat",
    "rft": "GRPO with per-prompt reward-variance diagnostics and an optional SFT warm-start",
    "budget": "SFT vs DPO under a fixed annotation budget: a sweep of budget x preference share",
    "prefs": "the room's preferences: arena votes (or a scripted judge's) -> DPO -> new blind rounds",
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
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="draw the data and print the runs, steps and examples a run would have; load and train nothing",
    )
    cfg, args = parse_cli(exp.Config, exp.PROFILES, argv[1:], p)
    if args.dry_run:
        print(f"nbkit {name} --profile {cfg.profile} --dry-run: no model loaded, nothing trained or written")
        print(exp.dry_run(cfg, Registry(args.runs)))
        return 0
    result = exp.run(cfg, Registry(args.runs))
    if dist.is_main():
        print(result.say())
        if args.out:
            result.frame().to_csv(args.out, index=False)
    return 0


# ------------------------------------------------------------------------------------- what a dry run prints


def n_steps(n: int) -> str:
    """Example: 1 -> "1 step", 24 -> "24 steps"."""
    return f"{n} step{'s' * (n != 1)}"


def by_difficulty(examples: list) -> str:
    """Example: 3 examples of difficulty [1, 2, 2] -> "3 (by difficulty 1: 1, 2: 2)"."""
    from nbkit.tasks.base import count_by_difficulty

    counts = count_by_difficulty(examples).items()
    return f"{len(examples)} (by difficulty " + ", ".join(f"{d}: {n}" for d, n in counts) + ")"


def plan_text(data: list[str], runs: list[tuple[str, str, str, int]], registry) -> str:
    """A dry run's page: the `data` lines, then one line per run (name, kind, what it does, optimizer steps) with
    those the registry holds already marked "reused", then how much would be built.

    Example: plan_text(["model: tiny"], [("base-tiny", "base", "the model", 0)], registry) -> "model: tiny\nruns
    in /x/runs (0 of 1 registered already, reused if their config matches):\n  base-tiny  base  the model\n1 run to
    build, 0 optimizer steps at most"
    """
    done = [name for name, *_ in runs if registry.exists(name)]
    width = max(len(name) for name, *_ in runs)
    kinds = max(len(kind) for _, kind, *_ in runs)
    head = f"runs in {registry.root} ({len(done)} of {len(runs)} registered already, reused if their config matches):"
    lines = [*data, head]
    for name, kind, what, _ in runs:
        lines.append(
            f"  {name:{width}s}  {kind:{kinds}s}  {what}" + ("  [registered]" if name in done else "")
        )
    todo = [r for r in runs if r[0] not in done]
    steps = sum(r[3] for r in todo)
    lines.append(f"{len(todo)} run{'s' * (len(todo) != 1)} to build, {steps} optimizer steps at most")
    return "\n".join(lines)
