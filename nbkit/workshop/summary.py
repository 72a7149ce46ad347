"""The report's summary: what each notebook measured, in one JSON file, and the prose checked against it.

A notebook's last cell calls `record("02", claims=..., values=..., curves=..., config=cfg)`. Under `nbkit report`
(NBKIT_SUMMARY_DIR set) that writes a part file; run by hand in Jupyter it writes nothing and says so. `merge`
joins the parts with the report's own numbers (minutes per notebook, load average, versions) into
reports/<profile>/summary.json:

    {"profile": "cpu", "date": ..., "machine": {cpu, cores, threads, dtype, load_start, load_end, ...},
     "versions": {...}, "total": {"minutes": 42.1},
     "notebooks": {"02": {"minutes": 12.6, "config_hash": ..., "seed": 0, "claims": [...], "values": {...},
                          "curves": {...}}}}

Prose ties a measured number to it with an invisible marker right after the number, e.g.
`12.6 min<!-- ref: 02.minutes -->` or `100/75/52/29%<!-- ref: 01.acc_iter1 -->` (a list value). The key is
`NN.name` (a notebook's `minutes` or one of its `values`), or a dotted path from the top (`total.minutes`,
`machine.load_start`). `check_prose` lists the marked numbers that differ from a summary at the precision the prose
shows ("52%" is 0.52 rounded to whole percent); `update_prose` rewrites them. The guide's time table is generated
between `<!-- summary: time table -->` and `<!-- /summary -->`. Text between `<!-- history: WHERE -->` and
`<!-- /history -->` reports dated measurements of other runs (WHERE: the benchmark or command that reruns them):
its unmarked numbers are not the reference run's, and its marked ones are checked like any other.

    python -m nbkit.workshop.summary --check  docs/reference/summary-cpu.json   # list mismatches
    python -m nbkit.workshop.summary --update docs/reference/summary-cpu.json   # rewrite notebooks and guide
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
from pathlib import Path

from nbkit.config import settings_hash

ROOT = Path(__file__).resolve().parents[2]
PART_DIR_ENV = "NBKIT_SUMMARY_DIR"
VERDICTS = ("AGREES", "DEPARTS", "INCONCLUSIVE", "NOT CHECKED")
PACKAGES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "nbkit")
# the guide's targets for the cpu profile (minutes): what a notebook should fit in, not a measurement
TARGETS = {
    "00": "<= 3 min",
    "01": "<= 20 min",
    "02": "<= 15 min",
    "03": "<= 15 min",
    "04": "<= 10 min",
    "total": "<= 55 min",
}
TITLES = {"00": "00 tour", "01": "01 STaR", "02": "02 RFT", "03": "03 budget", "04": "04 preferences"}


# ------------------------------------------------------------------------------------------ the notebook's side


def claim_row(claim) -> dict:
    """A Claim's row (claim, verdict, effect, ci_lo, ci_hi, n, ...), or a text claim with the verdict it names.

    Example: "group: AGREES (exact): 12 prompts" -> {"claim": "group: AGREES (exact): 12 prompts", "verdict": "AGREES"}
    """
    if hasattr(claim, "row"):
        return jsonable(claim.row())
    text = str(claim)
    found = re.search("|".join(VERDICTS), text, re.I)
    return {"claim": text, "verdict": found.group(0).upper() if found else None}


def config_hash(config, ignore=()) -> str | None:
    """Six hex digits of the config's JSON (a dataclass or a dict) without the keys in `ignore`: two summaries with
    the same hash ran the same settings. The replicate key is the hash without the seed: two laptops with the
    same replicate key ran the same experiment with (perhaps) different seeds (nbkit.room pools them)."""
    if config is None:
        return None
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return settings_hash(jsonable(data), ignore)


def record(
    notebook: str,
    claims=(),
    values: dict | None = None,
    curves: dict | None = None,
    config=None,
    profile: str | None = None,
) -> dict:
    """What notebook `notebook` ("02") measured: its claims, the named numbers its prose cites, its key curves.

    Writes $NBKIT_SUMMARY_DIR/<notebook>.json when that is set (`nbkit report` sets it); otherwise writes nothing.
    Prints one line either way and returns the part.
    """
    config_dict = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})
    part = {
        "notebook": notebook,
        "profile": profile or config_dict.get("profile") or os.environ.get("NBKIT_PROFILE"),
        "config_hash": config_hash(config),
        "replicate_key": config_hash(config, ignore=("seed",)),
        "seed": config_dict.get("seed"),
        "machine": machine(),
        "claims": [claim_row(c) for c in claims],
        "values": jsonable(values or {}),
        "curves": jsonable(curves or {}),
    }
    folder = os.environ.get(PART_DIR_ENV)
    what = f"{len(part['claims'])} claims, {len(part['values'])} values, {len(part['curves'])} curves"
    if folder:
        path = Path(folder) / f"{notebook}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(part, indent=1))
        print(f"summary of {notebook}: {what} -> {path}")
    else:
        print(f"summary of {notebook}: {what} (not written: `nbkit report` collects it into summary.json)")
    return part


def machine() -> dict:
    """This process's CPU, cores, torch threads and the dtype nbkit loads models in (nbkit.models.auto_dtype)."""
    from nbkit.hardware import hardware
    from nbkit.models import auto_device, auto_dtype

    device = auto_device()
    return {**hardware(), "device": device, "dtype": str(auto_dtype(device)).removeprefix("torch.")}


def jsonable(x):
    """numpy/pandas numbers and arrays, tuples, int keys -> plain JSON (NaN -> None)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "tolist"):  # numpy scalars and arrays, pandas Series
        return jsonable(x.tolist())
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


# ------------------------------------------------------------------------------------------- the report's side


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    from platform import python_version

    out = {"python": python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def merge(parts_dir: Path, minutes: dict, profile: str, load_start, load_end, failed=()) -> dict:
    """The report's summary: the notebooks' part files plus minutes per notebook ({"02": 12.6}), the load average
    at the start and end of the report, versions and the date. A notebook that failed or recorded nothing still
    gets its minutes, and `failed` lists it."""
    from datetime import datetime, timezone

    notebooks = {}
    for nn, mins in minutes.items():
        path = Path(parts_dir) / f"{nn}.json"
        part = json.loads(path.read_text()) if path.exists() else {"notebook": nn}
        notebooks[nn] = {"minutes": round(mins, 2), **part}
    machines = [nb.pop("machine") for nb in notebooks.values() if "machine" in nb]
    return {
        "profile": profile,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            **(machines[0] if machines else {}),
            "load_start": [round(x, 2) for x in load_start],
            "load_end": [round(x, 2) for x in load_end],
        },
        "versions": versions(),
        "total": {"minutes": round(sum(minutes.values()), 2)},
        "failed": sorted(failed),
        "notebooks": notebooks,
    }


# ----------------------------------------------------------------------------------------------- the prose side

NUM = r"[+-]?\d+(?:\.\d+)?"
MARKED = re.compile(
    rf"(?P<num>{NUM}(?:\s*/\s*{NUM})*)(?P<unit>%|\s?min|\s?s|x)?(?P<close>\**)<!-- ref: (?P<key>[\w.]+) -->"
)
TABLE = re.compile(r"(<!-- summary: time table -->\n)(.*?)(<!-- /summary -->)", re.S)
# numbers that look measured: minutes, seconds, percentages, throughput, ratios
HISTORY = re.compile(r"<!-- history:.*?<!-- /history -->", re.S)
MEASURED = re.compile(rf"(?<![\w.]){NUM}(?:\s?(?:%|min\b|minutes\b|s\b|tok/s\b)|x\b)")
# a fenced block of `nbkit room pool FILES` output (a seed study's pooled view): every line of it must be a line that
# command prints for the committed FILES (a glob from the repository's root)
SEEDS = re.compile(r"<!-- seeds: (?P<files>[^>]+?) -->\n(?P<body>.*?)<!-- /seeds -->", re.S)


def lookup(summary: dict, key: str):
    """ "02.minutes" -> notebooks["02"]["minutes"]; "01.acc_d3" -> notebooks["01"]["values"]["acc_d3"];
    anything else a dotted path from the top ("total.minutes", "machine.load_start.0"). KeyError if absent."""
    head, _, rest = key.partition(".")
    if head in summary.get("notebooks", {}):
        nb = summary["notebooks"][head]
        return nb["minutes"] if rest == "minutes" else nb["values"][rest]
    node = summary
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def shown_like(value, shown: str, unit: str = "") -> str:
    """`value` written as the prose writes `shown`: the same decimals, sign and unit ("%" shows value x 100).

    Example: shown_like(0.5212, "75", "%") -> "52"; shown_like(0.064, "+0.41") -> "+0.06"
    """
    if isinstance(value, list):
        parts = re.split(r"(\s*/\s*)", shown)
        numbers, seps = parts[::2], parts[1::2] + [""]
        if len(numbers) != len(value):
            return "/".join(shown_like(v, numbers[0], unit) for v in value)
        return "".join(shown_like(v, n, unit) + s for v, n, s in zip(value, numbers, seps))
    if value is None:
        return "None"
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    sign = "+" if shown[:1] in "+-" else ""
    return f"{value * (100 if unit == '%' else 1):{sign}.{decimals}f}"


def check_prose(text: str, summary: dict) -> list[str]:
    """One line per marked number that differs from `summary` at the prose's precision, or names a missing key."""
    out = []
    for m in MARKED.finditer(text):
        try:
            value = lookup(summary, m["key"])
        except (KeyError, IndexError, ValueError):
            out.append(f"{m['key']}: not in the summary (the prose says {m['num']}{m['unit'] or ''})")
            continue
        expected = shown_like(value, m["num"], (m["unit"] or "").strip())
        if expected != m["num"]:
            out.append(f"{m['key']}: the prose says {m['num']}{m['unit'] or ''}, the summary {expected}")
    if TABLE.search(text) and TABLE.search(text).group(2) != time_table(summary):
        out.append("the time table differs from the summary's")
    return out + check_seed_blocks(text)


def pooled_report(pattern: str, root: Path = ROOT) -> str | None:
    """What `nbkit room pool` prints for the files `pattern` (a glob from `root`) names; None if it names none."""
    import tempfile

    from nbkit.room import Room
    from nbkit.room.pool import text_report

    files = sorted(root.glob(pattern))
    if not files:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        room = Room(tmp)
        for f in files:
            room.store_file(f)
        return text_report(room.entries())


def check_seed_blocks(text: str, root: Path = ROOT) -> list[str]:
    """One line per line of a seeds block that `nbkit room pool FILES` does not print for the committed FILES, and
    per block whose FILES are missing or that holds anything but one fenced block."""
    out = []
    for m in SEEDS.finditer(text):
        pattern, body = m["files"].strip(), m["body"].strip()
        report = pooled_report(pattern, root)
        if report is None:
            out.append(f"seeds block: {pattern} names no file")
            continue
        if not (body.startswith("```") and body.endswith("```")):
            out.append(
                f"seeds block {pattern}: holds anything but one fenced block of `nbkit room pool` output"
            )
            continue
        printed = {line.strip() for line in report.splitlines()}
        for line in body.splitlines()[1:-1]:
            if line.strip() and line.strip() not in printed:
                out.append(
                    f"seeds block {pattern}: {line.strip()!r} is not what `nbkit room pool {pattern}` prints"
                )
    return out


def update_prose(text: str, summary: dict) -> str:
    """`text` with every marked number rewritten from `summary` (unknown keys left alone) and the time table
    regenerated."""

    def fix(m):
        try:
            value = lookup(summary, m["key"])
        except (KeyError, IndexError, ValueError):
            return m[0]
        return shown_like(value, m["num"], (m["unit"] or "").strip()) + m[0][len(m["num"]) :]

    text = MARKED.sub(fix, text)
    return TABLE.sub(lambda m: m[1] + time_table(summary) + m[3], text)


def unmarked_numbers(text: str, allowed=()) -> list[str]:
    """Measured-looking numbers ("12.6 min", "52%", "3.3 s", "164 tok/s", "2.0x") with no ref marker, outside code
    spans, comments, the generated table, history regions, seeds blocks and the `allowed` phrases.

    Example: "took 12.6 min<!-- ref: 02.minutes -->, then 3 s" -> ["3 s"]
    """
    for region in (
        TABLE,
        HISTORY,
        SEEDS,
    ):  # SEEDS: checked line by line against its files (check_seed_blocks)
        text = region.sub("", text)
    for phrase in allowed:
        text = text.replace(phrase, "")
    text = re.sub(r"<!--.*?-->", "", MARKED.sub("", re.sub(r"`[^`]*`", "", text)), flags=re.S)
    return [m.group(0) for m in MEASURED.finditer(text)]


def time_table(summary: dict) -> str:
    """The guide's table of minutes per notebook, and the machine and load it was measured on (markdown)."""
    mc, nbs = summary.get("machine", {}), summary.get("notebooks", {})
    lines = [
        f"| notebook | `{summary.get('profile')}` (minutes) | target (`cpu`) |",
        "|---|---|---|",
    ]
    lines += [
        f"| {TITLES.get(nn, nn)} | **{nb['minutes']:.1f}** | {TARGETS.get(nn, '')} |"
        for nn, nb in nbs.items()
    ]
    lines.append(f"| `make report` | **{summary['total']['minutes']:.1f}** | {TARGETS['total']} |")
    load = [f"{mc.get(k, [None])[0]}" for k in ("load_start", "load_end")]
    vers = summary.get("versions", {})
    lines += [
        "",
        f"Measured on {str(summary.get('date', '?'))[:10]} on {mc.get('cpu', '?')} ({mc.get('cores', '?')} cores, "
        f"{mc.get('threads', '?')} threads, {mc.get('dtype', '?')}), load average {load[0]} at the start and "
        f"{load[1]} at the end; torch {vers.get('torch')}, transformers {vers.get('transformers')}, "
        f"trl {vers.get('trl')}.",
        "",
    ]
    by_run = {}  # a reference merged from several runs (`parts`): which notebooks each run measured
    for nn, source in summary.get("parts", {}).items():
        by_run.setdefault(source, []).append(nn)
    if len(by_run) > 1:
        runs = "; ".join(f"{', '.join(nns)} on {source}" for source, nns in by_run.items())
        lines[-2] = f"Measured in {len(by_run)} quiet runs: {runs}; torch {vers.get('torch')}."
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- the command line


def prose_files(root: Path = ROOT) -> dict[str, Path]:
    return {
        p.name: p
        for p in [*sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")), root / "docs/workshop.md"]
    }


def markdown_of(path: Path) -> str:
    """A notebook's markdown cells, joined by blank lines; a .md file's text."""
    if path.suffix != ".ipynb":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def update_file(path: Path, summary: dict) -> bool:
    """Rewrite the marked numbers of a notebook's markdown cells or a markdown file; True if anything changed."""
    if path.suffix != ".ipynb":
        old = path.read_text()
        new = update_prose(old, summary)
        path.write_text(new)
        return new != old
    import nbformat

    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (new := update_prose(cell.source, summary)) != cell.source:
            cell.source, changed = new, True
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nbkit.workshop.summary", description=__doc__.split("\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--check", metavar="SUMMARY", help="list marked numbers that differ from SUMMARY")
    what.add_argument("--update", metavar="SUMMARY", help="rewrite the marked numbers and the time table")
    args = p.parse_args(argv)
    summary = json.loads(Path(args.check or args.update).read_text())
    bad = 0
    for name, path in prose_files().items():
        if args.update:
            print(f"{name}: {'updated' if update_file(path, summary) else 'unchanged'}")
        for line in check_prose(markdown_of(path), summary):
            print(f"{name}: {line}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
