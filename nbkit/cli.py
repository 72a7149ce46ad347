"""The `nbkit` command.

    nbkit models list | pull NAME [--force]
    nbkit runs list | show NAME | check [--fix] | export NAME... -o FILE.tar | import FILE.tar [--rename]
    nbkit report [--profile cpu] [NOTEBOOK_PREFIX ...]
    nbkit star|rft|budget [--config FILE] [--profile P] [--runs DIR] [--KEY VALUE ...]
    nbkit chat [MODEL]            nbkit compare [MODEL ...]

Experiments run through `nbkit.experiments.command`, apps through `nbkit.serve.cli`; this file only routes.
Errors that nbkit raises on purpose (unknown model, name collision, offline, bad config) print one line, not a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from nbkit.errors import NbkitError
from nbkit.experiments import EXPERIMENTS

# subcommand -> module whose `cli(argv) -> int` handles it (the experiments: nbkit.experiments.command)
DELEGATED = {
    **{name: "nbkit.experiments" for name in EXPERIMENTS},
    "chat": "nbkit.serve.launch",
    "compare": "nbkit.serve.launch",
}


def _models(args) -> int:
    from nbkit import models

    if args.action == "list":
        rows = {r["name"]: r for r in models.cached()}
        print(f"cache: {models.cache_dir()}")
        print(f"{'name':14s} {'cached':>10s}  about")
        for name, short in models.KNOWN.items():
            r = rows.pop(name, None)
            state = "-" if r is None else (f"{r['mb']:.0f} MB" if r["ok"] else "BROKEN")
            print(f"{name:14s} {state:>10s}  {short.about}")
        for name, r in rows.items():
            print(f"{name:14s} {r['mb']:>7.0f} MB  (not a known short name)")
        return 0
    if not args.name:
        raise models.ModelError("nbkit models pull NAME: give a NAME; `nbkit models list` shows them")
    path = models.pull(args.name, force=args.force)
    print(f"{args.name}: ready at {path}")
    return 0


def _runs(args) -> int:
    import warnings

    from nbkit.runs import Registry, RegistryWarning, RunError

    reg = Registry(args.runs)
    if args.action == "list":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RegistryWarning)  # damaged runs are listed below instead
            table = reg.table()
        print(reg.describe())
        print("no runs" if table.empty else table.to_string(index=False))
        for problem in reg.damaged():
            print(f"damaged: {problem.path.name}: {problem.reason} (`nbkit runs check --fix` moves it aside)")
        stale = [p for p in reg.pending() if p.kind == "stale"]
        if stale:
            print(
                f"{len(stale)} stale entr{'y' if len(stale) == 1 else 'ies'} in .pending/: see `nbkit runs check`"
            )
        return 0
    if args.action == "check":
        return _runs_check(reg, args.fix)
    if args.action == "export":
        from nbkit.workshop.archive import export_runs

        if not args.output:
            raise RunError("nbkit runs export NAME... -o FILE.tar: give the file to write with -o")
        manifest = export_runs(reg, args.names, args.output, parents=not args.no_parents)
        names = [r["name"] for r in manifest["runs"]]
        print(f"exported {len(names)} run(s) to {args.output}: {', '.join(names)}")
        return 0
    if args.action == "import":
        from nbkit.workshop.archive import import_runs

        if len(args.names) != 1:
            raise RunError(
                "nbkit runs import FILE.tar [--rename]: give one .tar file made by `nbkit runs export`"
            )
        plan = import_runs(reg, args.names[0], rename=args.rename)
        for old, new in plan.items():
            print(f"{old}: " + ("already here (same run), skipped" if new is None else f"imported as {new}"))
        print(reg.describe())
        return 0
    if not args.names:
        raise RunError("nbkit runs show NAME: give a NAME; `nbkit runs list` shows them")
    run = reg.get(args.names[0])
    print(
        json.dumps(
            {
                "name": run.name,
                "kind": run.kind,
                "parent": run.parent,
                "lineage": [r.name for r in reg.lineage(run.name)],
                "path": str(run.path),
                "checkpoint": "lora adapter" if run.adapter else ("full" if run.checkpoint else None),
                "config": run.config,
                "summary": run.summary,
                "hardware": run.hardware,
                "metrics_logged": len(run.metrics()),
            },
            indent=1,
            default=str,
        )
    )
    return 0


def _runs_check(reg, fix: bool) -> int:
    """Report damaged runs and .pending/ work; with fix, move the damaged and the stale aside. 1 if any remain."""
    problems = reg.check()
    print(reg.describe())
    for problem in problems:
        print(problem.line())
    if fix:
        for problem, dest in reg.fix(problems):
            print(f"moved aside: {problem.path.name} -> {dest}")
    bad = [p for p in problems if p.kind in {"damaged", "stale"}]
    if not problems:
        print("ok: no damaged runs, nothing pending")
    elif bad and not fix:
        print(f"{len(bad)} to move aside: run `nbkit runs check --fix` (it deletes nothing)")
    return 1 if bad and not fix else 0


def _report(args) -> int:
    from nbkit.workshop.report import run_all

    return run_all(args.profile, args.out, args.only or None)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nbkit", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("models", help="list or pull models (offline-capable)")
    m.add_argument("action", choices=["list", "pull"])
    m.add_argument("name", nargs="?")
    m.add_argument("--force", action="store_true", help="rebuild even if cached")
    m.set_defaults(func=_models)

    r = sub.add_parser("runs", help="the run registry: list, show, check, export, import")
    r.add_argument("action", choices=["list", "show", "check", "export", "import"])
    r.add_argument(
        "names", nargs="*", metavar="NAME", help="show: one run; export: runs; import: the .tar file"
    )
    r.add_argument(
        "--runs", default=None, help="registry folder (default: $NBKIT_RUNS, else the project's runs/)"
    )
    r.add_argument("--root", dest="runs", help=argparse.SUPPRESS)  # the old name of --runs
    r.add_argument("--fix", action="store_true", help="check: move damaged and stale entries aside")
    r.add_argument("-o", "--output", help="export: the .tar file to write")
    r.add_argument("--no-parents", action="store_true", help="export: the named runs only, not their lineage")
    r.add_argument("--rename", action="store_true", help="import: rename runs whose names are taken")
    r.set_defaults(func=_runs)

    rep = sub.add_parser("report", help="execute the notebooks headless into a reports folder")
    rep.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "gpu"])
    rep.add_argument("--out", default="reports")
    rep.add_argument("only", nargs="*", help="notebook name prefixes, e.g. 00 01")
    rep.set_defaults(func=_report)

    for name in DELEGATED:
        d = sub.add_parser(name, help=f"see `nbkit {name} --help`", add_help=False)
        d.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        module = importlib.import_module(DELEGATED[argv[0]])
        handler = lambda: (module.command if argv[0] in EXPERIMENTS else module.cli)(argv)  # noqa: E731
    else:
        args = build_parser().parse_args(argv)
        handler = lambda: args.func(args)  # noqa: E731
    try:
        return int(handler() or 0)
    except KeyboardInterrupt:
        print("nbkit: interrupted", file=sys.stderr)
        return 130
    except NbkitError as e:
        print(f"nbkit: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
