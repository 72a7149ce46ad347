"""Notebooks run under papermill as committed, with no extra flags (it needs metadata.kernelspec)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_keep_kernelspec_and_no_outputs(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3", (
        f"{path.name}: papermill needs metadata.kernelspec"
    )
    assert "language_info" in nb["metadata"]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{path.name} has outputs"
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code), "no parameters cell"


def test_papermill_runs_the_tour_in_smoke(tmp_path):
    out = tmp_path / "out.ipynb"
    env = {**os.environ, "NBKIT_RUNS": str(tmp_path / "runs"), "NBKIT_WANDB": "off", "NBKIT_SOLUTIONS": "1"}
    env.pop("NBKIT_PROFILE", None)  # the -p parameter must do it alone
    cmd = [
        sys.executable,
        "-m",
        "papermill",
        str(ROOT / "notebooks/00_tour.ipynb"),
        str(out),
        "-p",
        "PROFILE",
        "smoke",
    ]
    proc = subprocess.run(cmd, cwd=ROOT / "notebooks", env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert injected and "smoke" in "".join(injected[0]["source"])
    assert nb["metadata"]["papermill"]["exception"] is None
