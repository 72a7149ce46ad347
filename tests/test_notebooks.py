"""Every notebook runs top to bottom in the smoke profile: every code cell is run as a test."""

import pytest

from nbkit.report import notebook_paths

NOTEBOOKS = notebook_paths()


def test_there_are_notebooks():
    assert any(p.name.startswith("00_") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(path, tmp_path):
    import nbformat

    from nbkit.report import execute

    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit notebooks without outputs"
    )
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert params and "PROFILE" in params[0].source, "the first code cell must be the tagged parameters cell"
    written, _ = execute(
        path,
        "smoke",
        tmp_path / "out",
        timeout=600,
        extra_env={"NBKIT_RUNS": str(tmp_path / "runs"), "NBKIT_WANDB": "off"},
    )
    executed = nbformat.read(written, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert written.with_suffix(".html").stat().st_size > 10_000
