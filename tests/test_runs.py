import os
import subprocess
import sys

import pytest

from nbkit.files import read_jsonl, write_jsonl
from nbkit.hardware import hardware, hardware_label
from nbkit.runs import Registry, RunError, config_diff, wandb_mode


def test_create_log_commit_and_read_back(registry, tiny):
    model, tok = tiny
    with registry.create("base", kind="base", config={"model": "tiny"}):
        pass
    with registry.create("sft-1", kind="sft", config={"lr": 1e-4}, parent="base") as run:
        run.log({"loss": 2.0}, step=1)
        run.log({"loss": 1.5}, step=2)
        run.save_model(model, tok)
        run.set_summary(accuracy=0.25)
    got = registry.get("sft-1")
    assert got.kind == "sft" and got.parent == "base" and got.config == {"lr": 1e-4}
    assert got.metrics() == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]
    assert got.summary == {"accuracy": 0.25} and got.checkpoint is not None and not got.adapter
    assert {"platform", "torch", "cores"} <= set(got.hardware)
    assert [r.name for r in registry.lineage("sft-1")] == ["base", "sft-1"]
    assert registry.get("base").model_source == "tiny"
    loaded, _ = registry.load("sft-1", dtype="float32")
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())
    assert list(registry.table()["name"]) == ["base", "sft-1"]


def test_name_collision_is_refused(registry):
    with registry.create("a", kind="base", config={"model": "tiny"}):
        pass
    with pytest.raises(RunError, match="a run named 'a' already exists"):
        registry.create("a", kind="base")
    assert registry.get("a").kind == "base"


def test_bad_names_and_parents(registry):
    for bad in ["", "../x", ".hidden", "a/b"]:
        with pytest.raises(RunError, match="invalid run name"):
            registry.create(bad, kind="x")
    with pytest.raises(RunError, match="parent run 'ghost' is not in"):
        registry.create("child", kind="sft", parent="ghost")
    with pytest.raises(RunError, match="no run named 'nope'"):
        registry.get("nope")


def test_exception_inside_leaves_nothing_registered(registry):
    with pytest.raises(ZeroDivisionError), registry.create("boom", kind="sft") as run:
        run.log({"loss": 1.0}, step=1)
        raise ZeroDivisionError("simulated failure mid-run")
    assert not registry.exists("boom") and registry.names() == []
    with registry.create("boom", kind="sft"):  # the name is free again
        pass


def test_killed_process_never_appears_half_registered(registry):
    code = (
        "import os; from nbkit.runs import Registry\n"
        f"r = Registry({str(registry.root)!r})\n"
        "w = r.create('killed', kind='sft', config={'x': 1})\n"
        "w.log({'loss': 1.0}, step=1)\n"
        "os._exit(9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "NBKIT_WANDB": "off"})
    assert proc.returncode == 9
    assert registry.names() == [] and not registry.exists("killed")


def test_reuse_checks_the_config(registry):
    assert config_diff({"steps": 30, "lr": 1e-4}, {"steps": 20, "lr": 1e-4, "profile": "cpu"}) == ["steps"]
    assert config_diff({"digits": [1, 2]}, {"digits": (1, 2)}) == []  # compared as the registry stores them
    assert registry.reuse("r", {"steps": 1}) is None  # nothing to reuse
    with registry.create("r", kind="rft", config={"steps": 30, "lr": 1e-4, "grid": [1]}):
        pass
    assert registry.reuse("r", {"steps": 30, "lr": 1e-4, "grid": [1], "new_field": 1}).name == "r"
    assert registry.reuse("r", {"steps": 30, "lr": 1e-4, "grid": [1, 2]}, ignore={"grid"}).name == "r"
    with pytest.raises(RunError) as e:
        registry.reuse("r", {"steps": 20, "lr": 1e-3, "grid": [1]})
    msg = str(e.value)
    assert "\n" not in msg and "run 'r' exists with a different config" in msg
    assert "lr: 0.0001 there, 0.001 now; steps: 30 there, 20 now" in msg


def test_jsonl_round_trip(tmp_path):
    import numpy as np

    rows = [{"q": "1 + 2", "correct": True}, {"score": np.float32(0.5), "path": tmp_path}]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    assert (tmp_path / "rows.jsonl").read_text().count("\n") == 2
    (tmp_path / "rows.jsonl").write_text(
        (tmp_path / "rows.jsonl").read_text() + "\n"
    )  # a blank line is skipped
    assert read_jsonl(tmp_path / "rows.jsonl") == [rows[0], {"score": 0.5, "path": str(tmp_path)}]


def test_one_hardware_caption_for_figures_and_cards():
    from nbkit.plots import caption

    assert hardware_label({"cpu": "AMD EPYC", "threads": 2, "cores": 2}) == "CPU AMD EPYC, 2 threads"
    assert hardware_label({"cpu": "Xeon", "threads": 16, "gpu": "NVIDIA H100"}) == "GPU NVIDIA H100"
    assert hardware_label({}) == "CPU ?, ? threads"  # a run recorded before hardware was
    assert caption("smoke") == f"profile: smoke | {hardware_label(hardware())}"


def test_delete(registry):
    with registry.create("x", kind="base"):
        pass
    registry.delete("x")
    assert registry.names() == []


def test_wandb_mode(monkeypatch, tmp_path):
    monkeypatch.delenv("NBKIT_WANDB", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert wandb_mode("auto") == "offline"  # no key: never prompt, never crash
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("auto") == "online"
    assert wandb_mode("off") == "disabled"
    monkeypatch.setenv("NBKIT_WANDB", "off")
    assert wandb_mode("online") == "disabled"


def test_wandb_offline_mirrors_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("NBKIT_WANDB", "offline")
    reg = Registry(tmp_path / "runs")
    with reg.create("tracked", kind="sft") as run:
        run.log({"loss": 0.5}, step=1)
    offline = list((tmp_path / "runs" / ".wandb" / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
    assert reg.get("tracked").metrics() == [{"step": 1, "loss": 0.5}]


def test_one_registry_per_project_wherever_you_stand(tmp_path, monkeypatch):
    from nbkit.runs import default_root, describe

    project = tmp_path / "proj"
    (project / "notebooks" / "runs").mkdir(parents=True)  # a stray registry a notebook made before
    (project / "pyproject.toml").write_text("[project]\nname='x'\n")
    monkeypatch.delenv("NBKIT_RUNS", raising=False)
    for where in [project, project / "notebooks"]:
        monkeypatch.chdir(where)
        assert default_root()[0] == project / "runs"
        assert Registry().root == project / "runs"
    assert describe().startswith(f"run registry: {project / 'runs'} (the project at {project}; 0 runs)")
    outside = tmp_path / "elsewhere" / "deep"
    outside.mkdir(parents=True)
    (tmp_path / "elsewhere" / "runs").mkdir()
    monkeypatch.chdir(outside)
    assert default_root()[0] == tmp_path / "elsewhere" / "runs"  # no project: the nearest existing runs/
    monkeypatch.setenv("NBKIT_RUNS", str(tmp_path / "mine"))
    assert default_root() == (tmp_path / "mine", "$NBKIT_RUNS")
    assert Registry(tmp_path / "given").root == tmp_path / "given"


def test_runs_list_names_its_registry_and_takes_runs_flag(registry):
    with registry.create("base", kind="base", config={"model": "tiny"}):
        pass
    proc = subprocess.run(
        [sys.executable, "-m", "nbkit.cli", "runs", "list", "--runs", str(registry.root)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    first, *rest = proc.stdout.splitlines()
    assert first == f"run registry: {registry.root.resolve()} (given; 1 run)"
    assert any(line.startswith("base ") for line in rest)
