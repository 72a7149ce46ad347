"""`nbkit runs export` / `import`: lineage carried, checksums verified, collisions refused or renamed (issue 15)."""

import json
import os
import re
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

from nbkit import models
from nbkit.runs import Registry, RegistryWarning, RunError
from nbkit.workshop.archive import export_runs, import_runs, with_parents

X = torch.tensor([[1, 2, 3, 4]])


def nbkit(*args):
    env = {**os.environ, "NBKIT_WANDB": "off", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "nbkit.cli", *map(str, args)], capture_output=True, text=True, env=env
    )


def logits(reg, name):
    model, _ = reg.load(name, dtype="float32")
    with torch.no_grad():
        return model(X).logits[0, -1, :8]


@pytest.fixture
def source(tmp_path, tiny):
    """base -> full -> lora, and an unrelated run, in registry A."""
    from peft import get_peft_model

    from nbkit.train import lora_config

    reg = Registry(tmp_path / "a" / "runs")
    with reg.create("base", kind="base", config={"model": "tiny"}, tracking="off"):
        pass
    with reg.create("other", kind="base", config={"model": "tiny"}, tracking="off"):
        pass
    with reg.create("full", kind="sft", config={"lr": 1e-4}, parent="base", tracking="off") as run:
        model, tok = models.load("tiny", dtype="float32")
        with torch.no_grad():
            model.model.norm.weight.mul_(1.5)
        run.save_model(model, tok)
        run.log({"loss": 0.7}, step=3)
        run.set_summary(accuracy=0.5)
    with reg.create("lora", kind="rft", config={"lora": True}, parent="full", tracking="off") as run:
        peft_model = get_peft_model(reg.load("full", dtype="float32")[0], lora_config(r=4))
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "lora_B" in n:
                    p.fill_(0.05)
        run.save_model(peft_model, tok)
    return reg


def test_round_trip_carries_lineage_and_loads_without_the_source(source, tmp_path):
    expected = {name: logits(source, name) for name in ["full", "lora"]}
    assert with_parents(source, ["lora"]) == ["base", "full", "lora"]
    proc = nbkit("runs", "export", "lora", "-o", tmp_path / "x.tar", "--runs", source.root)
    assert proc.returncode == 0 and "exported 3 run(s)" in proc.stdout, proc.stderr
    shutil.rmtree(source.root)  # the class has only the tar

    dest = Registry(tmp_path / "b" / "runs")
    proc = nbkit("runs", "import", tmp_path / "x.tar", "--runs", dest.root)
    assert proc.returncode == 0, proc.stderr
    assert "lora: imported as lora" in proc.stdout
    assert dest.names() == ["base", "full", "lora"]
    assert [r.name for r in dest.lineage("lora")] == ["base", "full", "lora"]
    assert dest.get("full").metrics() == [{"step": 3, "loss": 0.7}] and dest.get("full").summary == {
        "accuracy": 0.5
    }
    peft_cfg = json.loads((dest.get("lora").checkpoint / "adapter_config.json").read_text())
    assert peft_cfg["base_model_name_or_path"] == str(dest.get("full").checkpoint.resolve())
    card = (dest.get("lora").checkpoint / "README.md").read_text()
    assert (
        f"a LoRA adapter on `{dest.get('full').checkpoint.resolve()}`" in card
        and str(source.root) not in card
    )
    for name, want in expected.items():
        assert torch.allclose(logits(dest, name), want, atol=1e-5)

    again = nbkit("runs", "import", tmp_path / "x.tar", "--runs", dest.root)  # the same runs: nothing to do
    assert again.returncode == 0 and again.stdout.count("already here (same run), skipped") == 3
    assert dest.names() == ["base", "full", "lora"]


def test_no_parents_exports_only_the_named_runs(source, tmp_path):
    manifest = export_runs(source, ["lora"], tmp_path / "x.tar", parents=False)
    assert [r["name"] for r in manifest["runs"]] == ["lora"]
    dest = Registry(tmp_path / "b" / "runs")
    import_runs(dest, tmp_path / "x.tar")
    assert [r.name for r in dest.lineage("lora")] == ["lora"]  # its parent is not here: the chain stops
    assert torch.allclose(logits(dest, "lora"), logits(source, "lora"), atol=1e-5)  # base still on disk


def test_collisions_are_refused_or_renamed(source, tmp_path):
    export_runs(source, ["lora"], tmp_path / "x.tar")
    dest = Registry(tmp_path / "b" / "runs")
    with dest.create("full", kind="sft", tracking="off"):  # another run with a name in the archive
        pass
    proc = nbkit("runs", "import", tmp_path / "x.tar", "--runs", dest.root)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "full already in" in err and "--rename" in err
    assert dest.names() == ["full"]  # nothing imported

    plan = import_runs(dest, tmp_path / "x.tar", rename=True)
    assert plan == {"base": "base", "full": "full-imported", "lora": "lora"}
    assert [r.name for r in dest.lineage("lora")] == ["base", "full-imported", "lora"]
    assert torch.allclose(logits(dest, "lora"), logits(source, "lora"), atol=1e-5)


def test_not_an_export_is_one_line(tmp_path):
    (tmp_path / "x.tar").write_text("not a tar")
    with pytest.raises(RunError, match="cannot read .*x.tar"):
        import_runs(Registry(tmp_path / "runs"), tmp_path / "x.tar")
    with pytest.raises(RunError, match="no run named 'ghost'"):
        export_runs(Registry(tmp_path / "runs"), ["ghost"], tmp_path / "y.tar")


def test_an_imported_star_loop_resumes_with_no_recomputation_and_serves(tmp_path):
    """The instructor's path: run the loop, export it; the class imports it, resumes it, compares its runs."""
    from nbkit.experiments import star
    from nbkit.experiments.star import StarConfig
    from nbkit.serve.launch import Catalog

    def right_answers(cfg, model, tok, prompts, seed, desc, chat=True, *, progress=True):
        """The `sample` stage: the tiny model says nothing right; this does."""
        sums = [re.search(r"(\d+) \+ (\d+)", p[-1]["content"] if chat else p).groups() for p in prompts]
        return [[f"Ones: some work.\nAnswer: {int(a) + int(b)}"] * cfg.samples_per_problem for a, b in sums]

    cfg = StarConfig.for_profile(
        "smoke", primer_epochs=1.0
    )  # the fake sampler is right; the primer need not be
    teacher = Registry(tmp_path / "teacher" / "runs")
    first = star.run(cfg, teacher, sample=right_answers)
    assert len(first.runs) == cfg.iterations + 1 >= 2  # the loop ran to its end: every iteration registered
    last = first.runs[-1]
    proc = nbkit("runs", "export", "smoke-star-iter*", "-o", tmp_path / "star.tar", "--runs", teacher.root)
    assert proc.returncode == 0 and f"exported {len(first.runs) + 2} run(s)" in proc.stdout, proc.stderr
    shutil.rmtree(teacher.root)

    student = Registry(tmp_path / "student" / "runs")
    import_runs(student, tmp_path / "star.tar")
    with student.create("unrelated", kind="base", config={"model": "tiny"}, tracking="off"):
        pass
    (student.root / "unrelated" / "run.json").write_text("{")  # a damaged run does not block the resume
    before = {p.name: p.stat().st_mtime_ns for p in student.root.iterdir()}

    def recompute(*args, **kwargs):
        raise AssertionError("resuming an imported loop recomputed a stage")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RegistryWarning)
        again = star.run(cfg, student, sample=recompute, train=recompute)
    assert again.runs == first.runs and again.frame().equals(first.frame())
    assert {p.name: p.stat().st_mtime_ns for p in student.root.iterdir()} == before

    with pytest.warns(RegistryWarning, match="skipped: run 'unrelated'"):
        entries = Catalog(registry=student).entries()  # what the compare app offers, the damaged run aside
    assert last in entries
    model, _ = models.load(entries[last], dtype="float32")
    assert models.describe(model)["params"] > 3e6


def test_notebook_04_exports_its_preference_loop_and_the_import_trains_nothing(tmp_path, capsys):
    """`nbkit runs export --notebook 04`: the loop's votes, DPO model and new blind rounds, with the base run; the
    class resumes the loop on the imported registry without casting, training or answering again."""
    from test_prefs import fake_answer, fake_train

    from nbkit.cli import main
    from nbkit.experiments import prefs
    from nbkit.experiments.prefs import PrefsConfig

    cfg = PrefsConfig.for_profile("smoke")
    teacher = Registry(tmp_path / "teacher" / "runs")
    fake_train.calls = []
    first = prefs.run(cfg, teacher, answer=fake_answer, train=fake_train)
    argv = ["runs", "export", "--notebook", "04", "--profile", "smoke", "-o", str(tmp_path / "nb.tar")]
    assert main([*argv, "--runs", str(teacher.root)]) == 0  # in-process: a subprocess re-imports torch
    assert "exported 4 run(s)" in capsys.readouterr().out
    shutil.rmtree(teacher.root)

    student = Registry(tmp_path / "student" / "runs")
    import_runs(student, tmp_path / "nb.tar")
    assert student.names() == sorted(["base-tiny", first.votes_run, first.dpo_run, first.compare_run])

    def recompute(*args, **kwargs):
        raise AssertionError("resuming an imported preference loop recomputed a stage")

    again = prefs.run(cfg, student, answer=recompute, train=recompute, cast_votes=recompute)
    assert again.rows == first.rows and again.frame().equals(first.frame())


def _runs_on_disk(reg) -> dict:
    """Every file of every registered run (and of .pending/), with its modification time."""
    return {
        p.relative_to(reg.root).as_posix(): p.stat().st_mtime_ns
        for p in sorted(reg.root.rglob("*"))
        if p.is_file() and (p.relative_to(reg.root).parts[0] in set(reg.names()) | {".pending"})
    }


NOTEBOOK_IDS = ["00", "01", "02", "03", "04"]


@pytest.mark.parametrize(
    "notebook", [n if n == "01" else pytest.param(n, marks=pytest.mark.slow) for n in NOTEBOOK_IDS]
)
def test_a_notebook_exported_with_notebook_runs_trains_nothing_after_import(notebook, tmp_path):
    """The slow laptop's path (docs/workshop.md): the instructor runs a notebook and exports its runs with
    `--notebook`; an attendee imports them into an empty registry and the notebook runs through, reusing every run:
    no run is created, none is rewritten, no checkpoint is written."""
    from nbkit.workshop.archive import notebook_runs
    from nbkit.workshop.report import execute, notebook_paths

    (path,) = notebook_paths(only=[notebook])
    env = {"NBKIT_WANDB": "off", "NBKIT_SOLUTIONS": "1"}
    teacher, student = Registry(tmp_path / "teacher"), Registry(tmp_path / "student")
    execute(path, "smoke", None, timeout=600, extra_env={**env, "NBKIT_RUNS": str(teacher.root)})
    proc = nbkit(
        "runs",
        "export",
        "--notebook",
        notebook,
        "--profile",
        "smoke",
        "-o",
        tmp_path / "nb.tar",
        "--runs",
        teacher.root,
    )
    assert proc.returncode == 0, proc.stderr
    (pattern,) = notebook_runs(notebook, "smoke")
    import_runs(student, tmp_path / "nb.tar")
    assert student.names() == teacher.names()  # every run the notebook made came along, and its ancestors
    assert any(name.startswith(pattern.rstrip("*")) for name in student.names())
    before = _runs_on_disk(student)

    execute(path, "smoke", None, timeout=600, extra_env={**env, "NBKIT_RUNS": str(student.root)})
    assert student.names() == teacher.names()
    assert _runs_on_disk(student) == before
