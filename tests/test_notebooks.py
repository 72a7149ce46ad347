"""Every notebook runs top to bottom in the smoke profile: every code cell is run as a test.

They run with SOLUTIONS on (NBKIT_SOLUTIONS=1), so every exercise cell is filled with its reference solution and
must print its check mark, and every training cell of 01-03 must end with the live view's figure; the 00 tour
also runs with it off, where an exercise says "not done yet" and the notebook carries on.
"""

import pytest

from nbkit.workshop.report import notebook_paths

NOTEBOOKS = notebook_paths()


def test_there_are_notebooks():
    assert any(p.name.startswith("00_") for p in NOTEBOOKS)


def _run(path, tmp_path, solutions: str):
    import nbformat

    from nbkit.workshop.report import execute

    written, _ = execute(
        path,
        "smoke",
        tmp_path / "out",
        timeout=600,
        extra_env={"NBKIT_RUNS": str(tmp_path / "runs"), "NBKIT_WANDB": "off", "NBKIT_SOLUTIONS": solutions},
    )
    executed = nbformat.read(written, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert written.with_suffix(".html").stat().st_size > 10_000
    return written, executed


def _exercise_text(executed) -> list[str]:
    return [
        "".join(o.get("text", "") for o in c.get("outputs", []))
        for c in executed.cells
        if c.cell_type == "code" and "check_" in c.source
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(path, tmp_path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit notebooks without outputs"
    )
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert params and "PROFILE" in params[0].source, "the first code cell must be the tagged parameters cell"
    assert "SOLUTIONS" in params[0].source, "the parameters cell sets SOLUTIONS (the exercises read it)"
    checks = [c for c in nb.cells if c.cell_type == "code" and "check_" in c.source]
    assert checks, "every notebook has exercises"
    _, executed = _run(path, tmp_path, solutions="1")
    texts = _exercise_text(executed)
    assert len(texts) == len(checks)
    assert all("✓" in t for t in texts), texts
    if not path.name.startswith("00_"):  # every training cell ends with the live view's final figure
        live = [
            o for c in executed.cells for o in c.get("outputs", []) if o.get("metadata", {}).get("nbkit_live")
        ]
        assert any(o["metadata"]["nbkit_live"] == "figure" and "image/png" in o["data"] for o in live)


def test_unfinished_exercises_do_not_stop_a_notebook(tmp_path):
    path = next(p for p in NOTEBOOKS if p.name.startswith("00_"))
    _, executed = _run(path, tmp_path, solutions="0")
    texts = _exercise_text(executed)
    assert texts and all("not done yet" in t and "✓" not in t for t in texts), texts
