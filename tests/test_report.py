"""nbkit report: no cell time limit on the cpu profile, progress lines while a notebook runs, headless settings."""

import nbformat

from nbkit.workshop.report import CELL_TIMEOUT, disk_warning, execute


def test_the_cpu_profile_has_no_cell_time_limit_and_smoke_has_one():
    assert CELL_TIMEOUT["cpu"] is None and CELL_TIMEOUT["gpu"] is None
    assert CELL_TIMEOUT["smoke"] and CELL_TIMEOUT["smoke"] >= 600


def test_execute_says_which_notebook_runs_for_how_long_and_sets_the_headless_switches(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("NBKIT_SOLUTIONS", raising=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import os, time\ntime.sleep(2.5)"),
        nbformat.v4.new_code_cell(
            "print(os.environ['NBKIT_PROFILE'], os.environ['NBKIT_HEADLESS'], os.environ['NBKIT_SOLUTIONS'])"
        ),
    ]
    path = tmp_path / "99_probe.ipynb"
    nbformat.write(nb, path)
    written, seconds = execute(path, "cpu", tmp_path / "out", heartbeat=0.5)
    out = capsys.readouterr().out
    assert "[cpu] 99_probe.ipynb: running for" in out and "cell 1 of 2" in out
    executed = nbformat.read(written, as_version=4)
    assert executed.cells[1].outputs[0]["text"].split() == ["cpu", "1", "1"]
    assert seconds >= 2.5


def test_execute_starts_the_kernel_in_the_notebook_folder_without_the_tcp_warning(tmp_path, capfd):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint(os.getcwd())")]
    path = tmp_path / "98_cwd.ipynb"
    nbformat.write(nb, path)
    written, _ = execute(path, "smoke", tmp_path / "out")
    assert nbformat.read(written, as_version=4).cells[0].outputs[0]["text"].strip() == str(tmp_path)
    assert "without encryption" not in capfd.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "98_cwd.ipynb",
        "out",
    ]  # no socket files left behind


def test_a_disk_too_small_for_the_notebooks_runs_is_said_before_they_start(tmp_path, monkeypatch):
    """03's cpu runs keep 8.1 GB of checkpoints: with less room, one line says so before the run, not a traceback
    from safetensors an hour in. Notebooks with no measured size, and the smoke profile, say nothing."""
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    paths = [tmp_path / "02_rft.ipynb", tmp_path / "03_budget.ipynb"]
    root = tmp_path / "runs"  # not made yet: the check looks at the disk it will be on
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100e9, 95e9, 5e9))
    line = disk_warning("cpu", paths, root)
    assert "5.0 GB free" in line and "8.6 GB" in line and "03: 8.1 GB" in line and str(root) in line
    assert disk_warning("smoke", paths, root) is None
    assert disk_warning("cpu", [tmp_path / "00_tour.ipynb"], root) is None
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100e9, 50e9, 50e9))
    assert disk_warning("cpu", paths, root) is None
