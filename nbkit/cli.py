"""The `nbkit` command.

    nbkit models list | pull NAME [--force]
    nbkit runs list | show NAME
    nbkit report [--profile cpu] [NOTEBOOK_PREFIX ...]
    nbkit star --config FILE      nbkit rft --config FILE      nbkit budget --config FILE
    nbkit chat [MODEL]            nbkit compare [MODEL ...]

Experiment and app subcommands are implemented next to their logic (`nbkit.star.cli`, ...); this file only routes.
Errors that nbkit raises on purpose (unknown model, name collision, offline, bad config) print one line, not a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from nbkit.errors import NbkitError

# subcommand -> module whose `cli(argv) -> int` handles it
DELEGATED = {
    "star": "nbkit.star",
    "rft": "nbkit.rft",
    "budget": "nbkit.budget",
    "chat": "nbkit.serve",
    "compare": "nbkit.serve",
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
    from nbkit.runs import Registry, RunError

    reg = Registry(args.root)
    if args.action == "list":
        table = reg.table()
        print("no runs in " + str(reg.root) if table.empty else table.to_string(index=False))
        return 0
    if not args.name:
        raise RunError("nbkit runs show NAME: give a NAME; `nbkit runs list` shows them")
    run = reg.get(args.name)
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


def _report(args) -> int:
    from nbkit.report import run_all

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

    r = sub.add_parser("runs", help="list runs or show one")
    r.add_argument("action", choices=["list", "show"])
    r.add_argument("name", nargs="?")
    r.add_argument("--root", default=None, help="registry folder (default ./runs or $NBKIT_RUNS)")
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
        handler = lambda: importlib.import_module(DELEGATED[argv[0]]).cli(argv)  # noqa: E731
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
