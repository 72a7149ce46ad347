"""Execute the notebooks headless, in a profile, and write executed notebooks and HTML to a reports folder.

    nbkit report --profile cpu            # the main job: every notebook, in order, into reports/cpu/
    nbkit report --profile smoke 00       # just notebooks whose name starts with 00

Execution goes through nbclient; the profile reaches the notebook through NBKIT_PROFILE, which overrides the
`parameters` cell. A failing cell stops that notebook, is reported with its traceback, and the executed notebook
is still written so the error can be read in place.

A slow or busy machine must not fail the report: the cpu and gpu profiles have no cell timeout (a STaR cell once hit
nbclient's 3600 s while another job shared the two cores), smoke keeps one so that CI catches a hang. While a
notebook runs, a line every minute says which one, for how long, and which cell. Exercises run with their reference
solutions (NBKIT_SOLUTIONS=1 unless set), and the live training view draws only its final figure (NBKIT_HEADLESS=1).

Each notebook's last cell records what it measured (nbkit/workshop/summary.py) into a part file; `run_all` merges the
parts with each notebook's minutes, the load average at the start and the end, and versions into
reports/<profile>/summary.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
# seconds one cell may run, per profile; None: no limit (a slow laptop is not an error)
CELL_TIMEOUT = {"smoke": 900, "cpu": None, "gpu": None}
# GB of checkpoints one run of a notebook leaves in the registry (`du -sh` of one seed's registry, quiet cpu runs of
# 2 December 2026, docs/workshop.md "Before the day"); notebooks not measured are left out
DISK_GB = {("cpu", "02"): 0.52, ("cpu", "03"): 8.1}


def notebook_paths(folder: Path = NOTEBOOKS, only: list[str] | None = None) -> list[Path]:
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
    return paths


def execute(
    path: Path,
    profile: str,
    out_dir: Path | None = None,
    timeout: int | None | str = "profile",
    extra_env: dict | None = None,
    heartbeat: float | None = None,
) -> tuple[Path | None, float]:
    """Run one notebook in `profile` (cwd = the notebook's folder); write .ipynb and .html to `out_dir`.

    timeout: seconds per cell, None for no limit, "profile" for CELL_TIMEOUT[profile]. heartbeat: print a progress
    line every that many seconds (None: quiet). Returns (executed notebook path or None, seconds). Raises
    nbclient's CellExecutionError on a failing cell.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ.update(
        {
            "NBKIT_PROFILE": profile,
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "NBKIT_HEADLESS": "1",
            **_passive_waits(),
            "NBKIT_SOLUTIONS": os.environ.get("NBKIT_SOLUTIONS", "1"),
            **(extra_env or {}),
        }
    )
    if timeout == "profile":
        timeout = CELL_TIMEOUT.get(profile)
    start = time.perf_counter()
    error = None
    where = {"cell": 0}
    scratch = tempfile.TemporaryDirectory(prefix="nbkit-kernel-")
    client = NotebookClient(
        nb,
        km=local_kernel(scratch.name),
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=lambda cell, cell_index: where.update(cell=cell_index + 1),
    )
    done = threading.Event()
    if heartbeat:
        threading.Thread(
            target=_heartbeat,
            args=(f"[{profile}] {path.name}", len(nb.cells), where, start, done, heartbeat),
            daemon=True,
        ).start()
    try:
        client.execute()
    except Exception as e:  # noqa: BLE001 - a failing cell, a dead kernel, a timeout: still write what ran
        error = e
    finally:
        done.set()
        if client.km.has_kernel:  # nbclient shuts down only the kernels it made itself
            client.km.shutdown_kernel(now=True)
        scratch.cleanup()
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


def local_kernel(folder: str):
    """A kernel manager that talks to its kernel over Unix sockets in `folder` instead of TCP on localhost: the
    kernel then has no reason to warn that TCP is not encrypted (ipykernel does, once per notebook)."""
    from jupyter_client.manager import KernelManager

    return KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(folder) / "kernel"))


def _passive_waits() -> dict:
    """OMP_WAIT_POLICY=PASSIVE for the kernel (nbkit/threads.py), which a notebook that imports torch before nbkit
    would otherwise miss; nothing when the user set a policy or NBKIT_THREADS=off."""
    if os.environ.get("OMP_WAIT_POLICY") or os.environ.get("NBKIT_THREADS", "").lower() == "off":
        return {}
    return {"OMP_WAIT_POLICY": "PASSIVE"}


def _heartbeat(
    name: str, n_cells: int, where: dict, start: float, done: threading.Event, every: float
) -> None:
    while not done.wait(every):
        print(
            f"{name}: running for {_minutes(time.perf_counter() - start)}, cell {where['cell']} of {n_cells}",
            flush=True,
        )


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def disk_warning(profile: str, paths: list[Path], root: Path | None = None) -> str | None:
    """A line to print before running `paths` when the registry's disk has less room than their runs keep
    (DISK_GB), else None. A warning, not a refusal: runs already in the registry are reused and take no more."""
    import shutil

    from nbkit.runs import default_root

    need = {p.name[:2]: DISK_GB[(profile, p.name[:2])] for p in paths if (profile, p.name[:2]) in DISK_GB}
    if not need:
        return None
    root = Path(root) if root is not None else default_root()[0]
    probe = next((p for p in [root, *root.resolve().parents] if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free / 1e9
    if free >= 1.2 * sum(need.values()):
        return None
    sizes = ", ".join(f"{nn}: {gb:g} GB" for nn, gb in need.items())
    return (
        f"[{profile}] warning: {free:.1f} GB free for the run registry {root}, and new runs of these notebooks keep "
        f"about {sum(need.values()):.1f} GB of checkpoints ({sizes}). A full disk stops a notebook mid-run with "
        f"'No space left on device': delete finished runs under {root} first (runs already there are reused)."
    )


def run_all(
    profile: str = "cpu", out: str | Path = "reports", only: list[str] | None = None, folder: Path = NOTEBOOKS
) -> int:
    """Run the notebooks of `folder` in order into `out`/<profile>/, then write summary.json there (see
    nbkit/workshop/summary.py). Returns 1 if a notebook failed."""
    from nbkit.workshop import summary

    out_dir = Path(out) / profile
    failed = []
    paths = notebook_paths(folder, only)
    if not paths:
        print(f"no notebooks matched {only} in {folder}", file=sys.stderr)
        return 1
    limit = CELL_TIMEOUT.get(profile)
    print(
        f"[{profile}] {len(paths)} notebooks; cell time limit: {f'{limit} s' if limit else 'none'}",
        flush=True,
    )
    if warning := disk_warning(profile, paths):
        print(warning, file=sys.stderr, flush=True)
    load_start, minutes = os.getloadavg(), {}
    parts = tempfile.TemporaryDirectory(prefix="nbkit-summary-")
    total = time.perf_counter()
    for i, path in enumerate(paths, 1):
        print(f"[{profile}] running {path.name} ({i}/{len(paths)}) ...", flush=True)
        start = time.perf_counter()
        try:
            written, secs = execute(
                path, profile, out_dir, heartbeat=60, extra_env={summary.PART_DIR_ENV: parts.name}
            )
            print(f"[{profile}] {path.name}: ok in {_minutes(secs)} -> {written} (+ .html)", flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on to the next notebook
            failed.append(path.name[:2])
            took = _minutes(time.perf_counter() - start)
            print(
                f"[{profile}] {path.name}: FAILED after {took} ({type(e).__name__})\n{e}",
                file=sys.stderr,
                flush=True,
            )
        minutes[path.name[:2]] = (time.perf_counter() - start) / 60
    took = _minutes(time.perf_counter() - total)
    merged = summary.merge(Path(parts.name), minutes, profile, load_start, os.getloadavg(), failed)
    parts.cleanup()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(merged, indent=1))
    print(
        f"{len(paths) - len(failed)}/{len(paths)} notebooks ran in {took}; reports and summary.json in {out_dir}/"
    )
    return 1 if failed else 0
