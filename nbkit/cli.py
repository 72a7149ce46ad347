"""The `nbkit` command: routes each subcommand to the module that does the work (experiments to
`nbkit.experiments.command`, apps to `nbkit.serve.launch`, the registry's pages to `nbkit.runview`). Errors that
nbkit raises on purpose (unknown model, name collision, offline, bad config) print one line, not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from nbkit.errors import NbkitError
from nbkit.experiments import EXPERIMENTS

USAGE = """\
  nbkit models list | pull NAME          the models nbkit knows, and which are downloaded
  nbkit runs list [--kind K] [--wide]    your runs, one line each; `runs show NAME` for one run
  nbkit star|rft|budget --profile smoke  run an experiment (finished stages are reused)
  nbkit chat [MODEL] | compare [MODEL..] talk to a model, or compare models side by side
  nbkit report --profile smoke 00        run notebooks headless into reports/
  nbkit arena export --format dpo -o DIR the arena's blind votes as DPO preference pairs
  nbkit room | room submit FILE --to URL the instructor's room: every laptop's results, pooled
  nbkit room pool reports-seed-*/summary.json   the same pooling in the terminal, from files

Everything you train is kept in a run registry (`nbkit runs list` says where). Add --help to any command."""

# subcommand -> module whose `cli(argv) -> int` handles it (the experiments: nbkit.experiments.command)
DELEGATED = {
    **{name: "nbkit.experiments" for name in EXPERIMENTS},
    "chat": "nbkit.serve.launch",
    "compare": "nbkit.serve.launch",
    "room": "nbkit.serve.room",
}
HELP = {
    "chat": "chat with a model or a trained run in your browser",
    "compare": "compare models side by side in your browser and vote (an Elo leaderboard)",
    "room": "the instructor's room: pool every laptop's results (`nbkit room submit FILE` sends one; `nbkit room pool FILE...` pools files)",
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

    reg = Registry(args.runs)
    if args.action == "list":
        return _runs_list(reg, args)
    if args.action == "check":
        return _runs_check(reg, args.fix)
    if args.action == "export":
        from nbkit.workshop.archive import export_runs, notebook_runs

        if not args.output:
            raise RunError("nbkit runs export NAME... -o FILE.tar: give the file to write with -o")
        names = list(args.names)
        for nb in args.notebook or []:
            names += notebook_runs(nb, args.profile)
        manifest = export_runs(reg, names, args.output, parents=not args.no_parents)
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
    return _runs_show(reg, args.names[0], args.json)


def _runs_list(reg, args) -> int:
    """One line per run (name, kind, parent, age, key metric); --wide: every summary column; --json: records.
    Damaged runs and stale .pending/ entries are reported after the list (to stderr with --json)."""
    import warnings

    from nbkit import runview
    from nbkit.runs import RegistryWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RegistryWarning)  # damaged runs are listed below instead
        runs = [r for r in reg.list() if args.kind is None or r.kind == args.kind]
        table = reg.table() if args.wide else None
    notes = sys.stderr if args.json else sys.stdout
    if args.json:
        print(json.dumps([runview.record(r) for r in runs], indent=1))
    else:
        print(reg.describe())
        if table is not None and args.kind and not table.empty:
            table = table[table["kind"] == args.kind]
        if not runs:
            print("no runs" + (f" of kind {args.kind!r}" if args.kind else ""))
        else:
            print(table.to_string(index=False) if table is not None else "\n".join(runview.list_lines(runs)))
    for problem in reg.damaged():
        print(
            f"damaged: {problem.path.name}: {problem.reason} (`nbkit runs check --fix` moves it aside)",
            file=notes,
        )
    stale = [p for p in reg.pending() if p.kind == "stale"]
    if stale:
        print(
            f"{len(stale)} stale entr{'y' if len(stale) == 1 else 'ies'} in .pending/: see `nbkit runs check`",
            file=notes,
        )
    return 0


def _runs_show(reg, name: str, raw: bool) -> int:
    """A run's page (`nbkit.runview.show_lines`); raw: the same as one JSON object."""
    from nbkit import runview

    run = reg.get(name)
    lineage = reg.lineage(name)
    if raw:
        print(json.dumps(runview.page_record(run, lineage), indent=1, default=str))
        return 0
    defaults, about = _profile_defaults(run)
    print("\n".join(runview.show_lines(run, lineage, defaults, about)))
    return 0


def _profile_defaults(run) -> tuple[dict | None, str]:
    """(the config of the experiment profile `run` was made in, as a dict; "as `nbkit star --profile smoke`"), or
    (None, "") when the run names no experiment and profile. The experiment is
    the kind's first word ("star-iteration") or a part of the run's name ("smoke-budget-1db001-sft4")."""
    import dataclasses

    from nbkit.experiments import EXPERIMENTS, load

    parts = run.name.split("-")
    name = next((e for e in EXPERIMENTS if run.kind.split("-")[0] == e or e in parts), None)
    if name is None:
        return None, ""
    profile, exp = run.config.get("profile"), load(name)
    if profile not in exp.PROFILES:
        return None, ""
    return dataclasses.asdict(exp.Config.for_profile(profile)), f"as `nbkit {name} --profile {profile}`"


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


def _arena(args) -> int:
    """`nbkit arena export --format dpo -o DIR`: the arena's decided blind rounds as preference pairs
    (nbkit.serve.votes): DIR/pairs.jsonl and DIR/snapshot.json, and what was left out, printed."""
    from pathlib import Path

    from nbkit.runs import Registry
    from nbkit.serve.arena import ArenaConfig
    from nbkit.serve.votes import VotesError, export_pairs

    if not args.output:
        raise VotesError("nbkit arena export --format dpo -o DIR: give the folder to write with -o")
    db = Path(args.db) if args.db else Registry(args.runs).root / ArenaConfig().db
    exp = export_pairs(db, args.min_pairs, args.drop_flagged, format=args.format)
    exp.save(args.output)
    print("\n".join(exp.lines()))
    print(f"wrote {args.output}/pairs.jsonl and snapshot.json (TRL's conversational preference format)")
    return 0


def _report(args) -> int:
    from nbkit.workshop.report import run_all

    return run_all(args.profile, args.out, args.only or None)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nbkit",
        description="Train and compare small language models on a laptop: STaR, RFT (GRPO), SFT vs DPO.",
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser(
        "models", help="see which models are downloaded, or download one (works offline afterwards)"
    )
    m.add_argument("action", choices=["list", "pull"])
    m.add_argument("name", nargs="?")
    m.add_argument("--force", action="store_true", help="rebuild even if cached")
    m.set_defaults(func=_models)

    r = sub.add_parser("runs", help="look at your runs, check the registry, or move runs between machines")
    r.add_argument(
        "action",
        choices=["list", "show", "check", "export", "import"],
        help="list: one line per run; show: one run in full; check: find damaged runs; export/import: .tar files",
    )
    r.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="show: one run; export: runs or shell patterns ('cpu-star-*'); import: the .tar file",
    )
    r.add_argument(
        "--runs", default=None, help="registry folder (default: $NBKIT_RUNS, else the project's runs/)"
    )
    r.add_argument("--kind", help="list: only runs of this kind (e.g. star-iteration, rft, dpo)")
    r.add_argument("--wide", action="store_true", help="list: every summary value, one column each")
    r.add_argument("--json", action="store_true", help="list, show: machine-readable JSON")
    r.add_argument("--fix", action="store_true", help="check: move damaged and stale entries aside")
    r.add_argument("-o", "--output", help="export: the .tar file to write")
    r.add_argument("--no-parents", action="store_true", help="export: the named runs only, not their lineage")
    r.add_argument(
        "--notebook",
        action="append",
        metavar="NN",
        help="export: every run notebook NN (00-04) registers in --profile, so the notebook trains nothing after "
        "import; repeat it for several notebooks",
    )
    r.add_argument("--profile", default="cpu", help="export --notebook: the profile the notebook ran in")
    r.add_argument("--rename", action="store_true", help="import: rename runs whose names are taken")
    r.set_defaults(func=_runs)

    rep = sub.add_parser(
        "report",
        help="run the notebooks without Jupyter and save them, with their outputs, as .ipynb and .html",
    )
    rep.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "gpu"])
    rep.add_argument("--out", default="reports")
    rep.add_argument("only", nargs="*", help="notebook name prefixes, e.g. 00 01")
    rep.set_defaults(func=_report)

    a = sub.add_parser(
        "arena", help="the arena's votes as a preference dataset (`arena export --format dpo`)"
    )
    a.add_argument("action", choices=["export"])
    a.add_argument("--format", default="dpo", choices=["dpo"], help="dpo: prompt, chosen, rejected (TRL)")
    a.add_argument("-o", "--output", help="folder to write pairs.jsonl and snapshot.json into")
    a.add_argument("--db", default=None, help="the arena's vote file (default <registry>/arena.sqlite)")
    a.add_argument(
        "--runs", default=None, help="registry folder (default: $NBKIT_RUNS, else the project's runs/)"
    )
    a.add_argument("--min-pairs", type=int, default=16, help="refuse with fewer decided rounds than this")
    a.add_argument("--drop-flagged", action="store_true", help="leave out the voters the audit flags")
    a.set_defaults(func=_arena)

    for name in DELEGATED:
        d = sub.add_parser(name, help=HELP.get(name) or EXPERIMENTS[name], add_help=False)
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
    except BrokenPipeError:  # `nbkit room pool ... | head`: the reader left early; no traceback at exit either
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
