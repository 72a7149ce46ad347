import subprocess
import sys

from nbkit.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "nbkit.cli", *args], capture_output=True, text=True)


def test_unknown_model_is_one_clear_line():
    proc = run_cli("models", "pull", "gpt-17")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "Unknown model 'gpt-17'. Known short names: tiny" in proc.stderr


def test_models_list_and_pull(capsys):
    assert main(["models", "pull", "tiny"]) == 0
    assert "tiny: ready at" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m" in out and "qwen2.5-0.5b" in out


def test_runs_list_show(registry, capsys, monkeypatch):
    with registry.create("base", kind="base", config={"model": "tiny"}):
        pass
    assert main(["runs", "list", "--root", str(registry.root)]) == 0
    assert "base" in capsys.readouterr().out
    assert main(["runs", "show", "base", "--root", str(registry.root)]) == 0
    assert '"lineage": [\n  "base"\n ]' in capsys.readouterr().out
    assert main(["runs", "show", "ghost", "--root", str(registry.root)]) == 2
    assert "no run named 'ghost'" in capsys.readouterr().err
