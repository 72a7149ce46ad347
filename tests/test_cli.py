import json
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


def test_runs_show_unknown_is_one_line(registry, capsys):
    assert main(["runs", "show", "ghost", "--runs", str(registry.root)]) == 2
    assert "no run named 'ghost'" in capsys.readouterr().err


def small_registry(registry):
    """base -> smoke-budget-x-sft2 (accuracy 0.25) and an rft run (probe reward 0.4), like the experiments make."""
    import dataclasses

    from nbkit.experiments.budget import BudgetConfig

    with registry.create("base-tiny", kind="base", config={"model": "tiny"}):
        pass
    config = dataclasses.asdict(BudgetConfig.for_profile("smoke")) | {"pool": 99, "n_sft": 2}
    with registry.create("smoke-budget-x-sft2", kind="sft", config=config, parent="base-tiny") as run:
        run.log({"loss": 1.0}, step=1)
        run.set_summary(accuracy=0.25, by_difficulty={str(d): 0.5 for d in range(40)}, steps=1)
    with registry.create("rft", kind="rft", config={"steps": 2}, parent="base-tiny") as run:
        run.set_summary(probe_reward_start=0.1, probe_reward_end=0.4, **{f"k{i}": i for i in range(40)})


def test_runs_list_is_one_short_line_per_run(registry, capsys):
    small_registry(registry)
    assert main(["runs", "list", "--runs", str(registry.root)]) == 0
    first, header, *lines = capsys.readouterr().out.splitlines()
    assert first.startswith("run registry:") and header.split() == ["name", "kind", "parent", "age", "metric"]
    assert [line.split()[:3] for line in lines] == [
        ["base-tiny", "base", "-"],
        ["smoke-budget-x-sft2", "sft", "base-tiny"],
        ["rft", "rft", "base-tiny"],
    ]
    assert lines[0].rstrip().endswith("s ago")  # a base run has no metric
    assert lines[1].endswith("accuracy 25.0%") and lines[2].endswith("probe reward 0.40")
    assert all(len(line) <= 100 for line in lines) and "NaN" not in "".join(lines)

    assert main(["runs", "list", "--runs", str(registry.root), "--kind", "rft"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]] == ["rft"]

    assert main(["runs", "list", "--runs", str(registry.root), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in records] == ["base-tiny", "smoke-budget-x-sft2", "rft"]
    assert records[1]["metric"] == {"name": "accuracy", "value": 0.25} and records[0]["metric"] is None
    assert records[1]["parent"] == "base-tiny" and records[1]["summary"] == {"accuracy": 0.25, "steps": 1}

    assert main(["runs", "list", "--runs", str(registry.root), "--wide"]) == 0
    header = capsys.readouterr().out.splitlines()[1].split()
    assert {"created", "checkpoint", "probe_reward_start", "k39"} <= set(header)  # every summary scalar


def test_runs_show_reads_like_a_page(registry, capsys):
    from nbkit.experiments.budget import BudgetConfig

    small_registry(registry)
    assert main(["runs", "show", "smoke-budget-x-sft2", "--runs", str(registry.root)]) == 0
    out = capsys.readouterr().out
    assert "lineage:    base-tiny -> smoke-budget-x-sft2" in out
    assert "kind:       sft (accuracy 25.0%)" in out and "hardware:   CPU" in out
    config = out.split("config: ")[1].split("\n\n")[0].splitlines()
    pool = BudgetConfig.for_profile("smoke").pool
    assert config == [
        "as `nbkit budget --profile smoke`, except:",
        f"  pool: 99  (profile: {pool})",
        "  n_sft: 2",
    ]
    assert "by_difficulty: {0, 1, 2" in out and "(40 keys)" in out  # long values shortened
    files = out.split("files:\n")[1].splitlines()
    assert [f.split()[0] for f in files] == ["metrics.jsonl", "run.json"]

    assert main(["runs", "show", "base-tiny", "--runs", str(registry.root)]) == 0
    out = capsys.readouterr().out
    assert "config:\n  model: tiny\n" in out and "summary: empty" in out  # no experiment: the whole config

    assert main(["runs", "show", "rft", "--runs", str(registry.root), "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["name"] == "rft" and raw["summary"]["probe_reward_end"] == 0.4


def test_help_speaks_to_users(capsys):
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    assert "this file only routes" not in out and "nbkit.experiments" not in out
    assert "see `nbkit star --help`" not in out and "look at your runs" in out


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


def test_an_unknown_option_is_one_line(capsys):
    assert main(["budget", "--profile", "smoke", "--root", "/tmp/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown option(s) --root /tmp/x" in err and "nbkit budget --help" in err
