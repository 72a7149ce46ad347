"""Execute the notebooks headless, in a profile, and write executed notebooks and HTML to a reports folder.

    nbkit report --profile cpu            # the main job: every notebook, in order, into reports/cpu/
    nbkit report --profile smoke 00       # just notebooks whose name starts with 00

Execution goes through nbclient; the profile reaches the notebook through NBKIT_PROFILE, which overrides the
`parameters` cell. A failing cell stops that notebook, is reported with its traceback, and the executed notebook
is still written so the error can be read in place.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def notebook_paths(folder: Path = NOTEBOOKS, only: list[str] | None = None) -> list[Path]:
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
    return paths


def execute(
    path: Path, profile: str, out_dir: Path | None = None, timeout: int = 3600, extra_env: dict | None = None
) -> tuple[Path | None, float]:
    """Run one notebook in `profile` (cwd = the notebook's folder); write .ipynb and .html to `out_dir`.

    Returns (executed notebook path or None, seconds). Raises nbclient's CellExecutionError on a failing cell.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ.update(
        {
            "NBKIT_PROFILE": profile,
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            **(extra_env or {}),
        }
    )
    start = time.perf_counter()
    error = None
    try:
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
    except Exception as e:  # noqa: BLE001 - a failing cell, a dead kernel, a timeout: still write what ran
        error = e
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    seconds = time.perf_counter() - start
    written = None
    if out_dir is not None:
        from nbconvert import HTMLExporter

        out_dir.mkdir(parents=True, exist_ok=True)
        written = out_dir / path.name
        nbformat.write(nb, written)
        html, _ = HTMLExporter().from_notebook_node(nb)
        written.with_suffix(".html").write_text(html)
    if error is not None:
        raise error
    return written, seconds


def run_all(profile: str = "cpu", out: str | Path = "reports", only: list[str] | None = None) -> int:
    out_dir = Path(out) / profile
    failures = 0
    paths = notebook_paths(only=only)
    if not paths:
        print(f"no notebooks matched {only} in {NOTEBOOKS}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"[{profile}] running {path.name} ...", flush=True)
        try:
            written, secs = execute(path, profile, out_dir)
            print(f"[{profile}] {path.name}: ok in {secs:.0f}s -> {written} (+ .html)", flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on to the next notebook
            failures += 1
            print(f"[{profile}] {path.name}: FAILED ({type(e).__name__})\n{e}", file=sys.stderr, flush=True)
    print(f"{len(paths) - failures}/{len(paths)} notebooks ran; reports in {out_dir}/")
    return 1 if failures else 0
