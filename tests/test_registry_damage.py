"""A bad file never blocks the registry, and every I/O error a user can cause is one line (issue 15)."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import pytest

from nbkit.runs import Registry, RegistryWarning, RunError, writer_identity

ENV = {**os.environ, "NBKIT_WANDB": "off", "OMP_NUM_THREADS": "1"}


def nbkit(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "nbkit.cli", *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd
    )


def assert_one_line(proc, *fragments):
    """Exit 2, and stderr is one line that starts with 'nbkit: ' and holds every fragment."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("nbkit: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def make_runs(registry, *names):
    for name in names:
        with registry.create(name, kind="base", config={"model": "tiny"}, tracking="off") as run:
            run.log({"loss": 1.0}, step=1)


# -------------------------------------------------------------------------------------------------- damaged files


def test_truncated_run_json_is_listed_as_damaged_and_skipped(registry):
    make_runs(registry, "good-a", "bad", "good-b")
    f = registry.root / "bad" / "run.json"
    f.write_text(f.read_text()[:40])  # what a crash or a full disk leaves
    with pytest.warns(RegistryWarning, match="skipped: run 'bad' .* is damaged: run.json is not valid JSON"):
        assert [r.name for r in registry.list()] == ["good-a", "good-b"]
    assert [p.path.name for p in registry.damaged()] == ["bad"]
    with pytest.raises(RunError, match="run 'bad' at .* is damaged.*nbkit runs check --fix"):
        registry.get("bad")

    proc = nbkit("runs", "list", "--runs", registry.root)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("good-a ") for line in lines) and any(
        line.startswith("good-b ") for line in lines
    )
    assert "damaged: bad: run.json is not valid JSON" in proc.stdout
    assert_one_line(nbkit("runs", "show", "bad", "--runs", registry.root), "run 'bad'", "is damaged")


def test_torn_last_metrics_line_is_ignored_with_a_warning(registry):
    make_runs(registry, "torn")
    with open(registry.root / "torn" / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "loss": 0.')  # a crash mid-append
    with pytest.warns(RegistryWarning, match="ignored its last line, torn by a crash"):
        assert registry.get("torn").metrics() == [{"step": 1, "loss": 1.0}]
    proc = nbkit("runs", "show", "torn", "--runs", registry.root, "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["metrics_logged"] == 1
    assert "torn by a crash" in proc.stderr


# ---------------------------------------------------------------------------------------------- check and --fix


def _killed_writer(root: Path, name: str, wandb: str = "off") -> None:
    code = (
        "import os; from nbkit.runs import Registry\n"
        f"w = Registry({str(root)!r}).create({name!r}, kind='sft', config={{'x': 1}})\n"
        "w.log({'loss': 1.0}, step=1)\n"
        "os._exit(9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**ENV, "NBKIT_WANDB": wandb})
    assert proc.returncode == 9


def test_check_tells_dead_writers_from_live_ones_and_fix_moves_aside(registry):
    make_runs(registry, "fine", "bad")
    (registry.root / "bad" / "run.json").write_text("")
    _killed_writer(registry.root, "killed")
    live = registry.create("live", kind="sft", tracking="off")  # this process: alive
    # a pid that is alive now (ours) but with another start time: the old writer died and the pid was reused
    reused = registry.root / ".pending" / "reused-0000"
    reused.mkdir()
    (reused / "run.json").write_text(
        json.dumps({"kind": "sft", "writer": {**writer_identity(), "start": "1"}})
    )

    kinds = {p.path.name.split("-")[0]: p.kind for p in registry.check()}
    assert kinds == {"bad": "damaged", "killed": "stale", "live": "live", "reused": "stale"}
    listed = nbkit("runs", "list", "--runs", registry.root).stdout
    assert "2 stale entries in .pending/: see `nbkit runs check`" in listed
    proc = nbkit("runs", "check", "--runs", registry.root)
    assert (
        proc.returncode == 1
        and "3 to move aside" in proc.stdout
        and "is gone: killed or crashed" in proc.stdout
    )

    proc = nbkit("runs", "check", "--fix", "--runs", registry.root)
    assert proc.returncode == 0, proc.stderr
    aside = sorted(p.name.split("-", 2)[2] for p in (registry.root / ".aside").iterdir())
    assert [a.split("-")[0] for a in aside] == ["bad", "killed", "reused"]  # moved, not deleted
    assert any((p / "metrics.jsonl").exists() for p in (registry.root / ".aside").iterdir())
    assert [p.kind for p in registry.check()] == ["live"]  # the live writer was left alone
    assert live.commit().name == "live" and registry.names() == ["fine", "live"]


def test_name_race_loser_never_looks_like_a_finished_wandb_run(registry, monkeypatch):
    monkeypatch.setenv("NBKIT_WANDB", "offline")
    winner = registry.create("same", kind="sft", tracking="offline")
    loser = registry.create("same", kind="sft", tracking="offline")  # both passed the name check
    winner.log({"loss": 1.0}, step=1)
    loser.log({"loss": 2.0}, step=1)
    winner.commit()
    with pytest.raises(RunError, match="registered by someone else meanwhile; this one is kept at"):
        loser.commit()
    synced = sorted((registry.root / ".wandb" / "wandb").glob("offline-run-*"))
    assert len(synced) == 1 and registry.get("same").metrics() == [{"step": 1, "loss": 1.0}]
    assert list(loser.path.glob("offline-run-*"))  # the loser's wandb run went with its kept folder
    (problem,) = registry.pending()
    assert problem.kind == "stale" and "lost a name race" in problem.reason
    registry.fix()
    assert not (registry.root / ".pending").exists() or not list((registry.root / ".pending").iterdir())


def test_killed_writers_wandb_run_moves_aside_with_it(registry):
    _killed_writer(registry.root, "killed", wandb="offline")
    assert len(list((registry.root / ".wandb" / "wandb").glob("offline-run-*"))) == 1
    (moved,) = registry.fix()
    assert moved[0].kind == "stale"
    assert not list((registry.root / ".wandb" / "wandb").glob("offline-run-*"))  # `wandb sync` won't see it
    assert list(moved[1].glob("offline-run-*"))


# ------------------------------------------------------------------------------------------ one-line I/O errors


@pytest.fixture(scope="module")
def export_tar(tmp_path_factory):
    """A small export to import into bad registry folders (importing writes the registry, and starts quickly)."""
    root = tmp_path_factory.mktemp("src") / "runs"
    with Registry(root).create("base", kind="base", config={"model": "tiny"}, tracking="off"):
        pass
    out = root.parent / "one.tar"
    assert nbkit("runs", "export", "base", "-o", out, "--runs", root).returncode == 0
    return out


@pytest.fixture
def unwritable(tmp_path):
    """A folder this process cannot write: chmod for a user, the immutable flag for root."""
    d = tmp_path / "locked"
    d.mkdir()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(d)]).returncode != 0:
            pytest.skip("running as root without chattr +i: cannot make a folder unwritable")
        yield d
        subprocess.run(["chattr", "-i", str(d)])
    else:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)


def test_unwritable_registry_folder_is_one_line(export_tar, unwritable):
    err = assert_one_line(nbkit("runs", "import", export_tar, "--runs", unwritable), str(unwritable))
    assert "you cannot write there; choose another registry folder with --runs DIR or $NBKIT_RUNS" in err


def test_registry_under_a_file_is_one_line(export_tar, tmp_path):
    (tmp_path / "a-file").write_text("x")
    err = assert_one_line(nbkit("runs", "import", export_tar, "--runs", tmp_path / "a-file" / "runs"))
    assert f"{tmp_path / 'a-file'} is a file, not a folder" in err


def test_registry_under_proc_is_one_line(export_tar):
    assert_one_line(
        nbkit("runs", "import", export_tar, "--runs", "/proc/nbkit/runs"),
        "cannot write the run registry at /proc/nbkit/runs",
        "--runs DIR or $NBKIT_RUNS",
    )


def test_experiment_with_a_registry_under_proc_is_one_line():
    assert_one_line(nbkit("star", "--profile", "smoke", "--runs", "/proc/nbkit/runs"), "/proc/nbkit/runs")


# ----------------------------------------------------------------------------------- a folder that is not a model


@pytest.fixture(scope="module")
def not_models(tmp_path_factory, tiny):
    """An empty folder, and a save_pretrained folder without its tokenizer."""
    root = tmp_path_factory.mktemp("models")
    (root / "empty").mkdir()
    tiny[0].save_pretrained(root / "no-tokenizer")
    return root


@pytest.mark.parametrize(
    "command, folder, says",
    [
        ("star", "empty", "the folder is empty"),
        ("star", "no-tokenizer", "no tokenizer (tokenizer.json"),
        ("rft", "no-tokenizer", "no tokenizer (tokenizer.json"),
        ("budget", "empty", "the folder is empty"),
    ],
)
def test_experiment_on_a_folder_that_is_not_a_model_is_one_line_and_registers_nothing(
    not_models, tmp_path, command, folder, says
):
    model = not_models / folder
    runs = tmp_path / "runs"
    if command == "star":
        args = ["star", "--profile", "smoke", "--model", model, "--runs", runs]
    else:
        config = tmp_path / "c.yaml"
        config.write_text(f"profile: smoke\nmodel: {model}\n")
        args = [command, "--config", config, "--runs", runs]
    assert_one_line(nbkit(*args), f"{model} is not a usable checkpoint", says)
    assert Registry(runs).names() == [] and not (runs / ".pending").exists()


def test_a_damaged_export_is_refused_on_import(export_tar, tmp_path):
    bad = tmp_path / "bad.tar"
    with tarfile.open(export_tar) as src, tarfile.open(bad, "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name.endswith("run.json"):
                data = data.replace(b'"base"', b'"BASE"')
            m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    assert_one_line(nbkit("runs", "import", bad, "--runs", tmp_path / "runs"), "checksum mismatch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Registry(tmp_path / "runs").list() == []
