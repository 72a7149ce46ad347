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


# ------------------------------------------------------------------------ experiment flags (HfArgumentParser)


def test_experiment_flags_override_the_file_which_overrides_the_profile(tmp_path):
    from nbkit.config import parse_cli
    from nbkit.experiments import budget, rft

    f = tmp_path / "c.yaml"
    f.write_text("profile: smoke\nsteps: 3\nlr: 1e-3\nname: from-file\n")  # YAML reads 1e-3 as a string
    cfg, extra = parse_cli(rft.RftConfig, rft.PROFILES, ["--config", str(f), "--steps", "4", "--runs", "R"])
    assert (cfg.profile, cfg.model, cfg.steps, cfg.lr, cfg.name) == ("smoke", "tiny", 4, 1e-3, "from-file")
    assert extra.runs == "R"
    cfg, _ = parse_cli(
        rft.RftConfig, rft.PROFILES, ["--config", str(f), "--profile", "cpu", "--digits", "2", "3"]
    )
    assert (cfg.profile, cfg.model, cfg.steps, cfg.digits) == ("cpu", "smollm2-135m", 3, [2, 3])
    assert parse_cli(rft.RftConfig, rft.PROFILES, [])[0] == rft.RftConfig()  # no profile: the defaults
    cfg, _ = parse_cli(budget.BudgetConfig, budget.PROFILES, ["--profile", "smoke", "--fractions", "0", "1"])
    assert cfg == budget.BudgetConfig.for_profile("smoke", fractions=[0.0, 1.0])


def test_experiment_help_comes_from_the_fields(capsys):
    experiments = [("rft", "completions sampled per prompt"), ("budget", "SFT shares f of each budget")]
    for name, text in experiments + [("star", "retry failures with the correct answer as a hint")]:
        try:
            main([name, "--help"])
        except SystemExit as e:
            assert e.code == 0
        out = capsys.readouterr().out
        assert text in out and "--config" in out and "--runs" in out and "--profile" in out


def test_a_dict_field_takes_a_yaml_mapping_flag():
    from dataclasses import dataclass, field

    from nbkit.config import parse_cli

    @dataclass
    class WithDict:
        task_args: dict = field(default_factory=dict, metadata={"help": "task keyword arguments"})
        profile: str = "a"

    profiles = {"a": {"task_args": {"digits": [1]}}}
    assert parse_cli(WithDict, profiles, [])[0].task_args == {"digits": [1]}
    assert parse_cli(WithDict, profiles, ["--task_args", "{digits: [1, 2]}"])[0].task_args == {
        "digits": [1, 2]
    }


def test_budget_root_is_an_alias_of_runs():
    from nbkit.config import parse_cli, parser
    from nbkit.experiments.budget import EXTRA_FLAGS, PROFILES, BudgetConfig

    p = parser(BudgetConfig, "nbkit budget")
    p.add_argument("--root", **EXTRA_FLAGS["--root"])
    assert parse_cli(BudgetConfig, PROFILES, ["--root", "old"], p)[1].runs == "old"
