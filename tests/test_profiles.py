"""Every profile starts: each experiment's config builds in every profile and draws its data without a model, and
`nbkit <experiment> --dry-run` prints its plan (issue "Numbers a reader can trust")."""

import json

import pytest

from nbkit.cli import main
from nbkit.errors import ConfigError
from nbkit.experiments import budget, rft, star
from nbkit.experiments.budget.data import build_task as budget_task
from nbkit.experiments.budget.data import make_pools
from nbkit.experiments.rft.data import build_task as rft_task
from nbkit.experiments.star.data import build_task, digit_quotas, draw, split_size, spread_draw
from nbkit.runs import Registry

PROFILES = ["smoke", "cpu", "gpu"]


@pytest.fixture(scope="module")
def gsm8k_standin(tmp_path_factory):
    """A local file shaped like GSM8K, big enough for the gpu profile's pools, in place of the hub dataset
    (unreachable offline): 2,600 rows -> 2,080 train (2 x pool 1024) and 520 test (eval_n 500)."""
    path = tmp_path_factory.mktemp("data") / "gsm8k_standin.jsonl"
    rows = [
        {"question": f"Tom has {i} apples and buys 3. How many?", "answer": f"{i}+3={i + 3}\n#### {i + 3}"}
        for i in range(2600)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return str(path)


def test_split_sizes_are_counted():
    assert (split_size(1), split_size(1, test=True), split_size(2), split_size(2, test=True)) == (
        77,
        23,
        6458,
        1642,
    )


def test_digit_quotas_give_a_short_digit_all_it_has_and_spread_the_rest():
    sizes = {1: 77, 2: 6458, 3: 648_000, 4: 64_800_000, 5: 6_480_000_000}
    assert digit_quotas(10_000, sizes) == {1: 77, 2: 2481, 3: 2481, 4: 2481, 5: 2480}
    assert digit_quotas(192, {1: 77, 2: 6458, 3: 648_000, 4: 64_800_000}) == {1: 48, 2: 48, 3: 48, 4: 48}
    assert digit_quotas(7, {1: 2, 2: 1, 3: 100}) == {1: 2, 2: 1, 3: 4}  # two digit counts short at once
    with pytest.raises(ConfigError, match="only 79") as e:
        digit_quotas(80, {1: 78, 2: 1})
    assert "\n" not in str(e.value)


def test_a_draw_that_fits_is_the_tasks_own_draw():
    """The smoke and cpu profiles draw exactly what they drew before the fair rule (their runs stay valid)."""
    for profile in ["smoke", "cpu"]:
        cfg = star.StarConfig.for_profile(profile)
        task = build_task(cfg)
        assert spread_draw(task, cfg.problems_per_iteration, "star-train") == task.train(
            cfg.problems_per_iteration, salt="star-train"
        )


def test_too_few_problems_in_all_digits_is_one_line():
    cfg = star.StarConfig.for_profile("gpu", task_args={"digits": [1]})
    with pytest.raises(
        ConfigError, match="problems_per_iteration: 10000 problems asked of 1-digit sums"
    ) as e:
        draw(cfg, build_task(cfg))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("profile", PROFILES)
def test_star_draws_its_data(profile):
    cfg = star.StarConfig.for_profile(profile)
    plain, hinted, problems, test = draw(cfg, build_task(cfg))
    assert len(plain) + len(hinted) == cfg.seed_examples
    assert len(problems) == cfg.problems_per_iteration
    assert len({(ex.meta["a"], ex.meta["b"]) for ex in problems}) == len(problems)  # distinct
    digits = cfg.task_args["digits"]
    assert sorted({ex.difficulty for ex in problems}) == sorted({ex.difficulty for ex in test}) == digits
    per_digit = cfg.test_problems // len(digits)
    assert len(test) == sum(min(per_digit, split_size(1, test=True)) if d == 1 else per_digit for d in digits)


def test_star_gpu_gives_all_one_digit_sums_and_spreads_the_rest():
    cfg = star.StarConfig.for_profile("gpu")
    _, _, problems, test = draw(cfg, build_task(cfg))
    by = {d: sum(ex.difficulty == d for ex in problems) for d in range(1, 6)}
    assert by == {1: 77, 2: 2481, 3: 2481, 4: 2481, 5: 2480}
    assert len(test) == 23 + 4 * 60


@pytest.mark.parametrize("profile", PROFILES)
def test_rft_draws_its_data(profile):
    cfg = rft.RftConfig.for_profile(profile)
    task = rft_task(cfg)
    train, probes = task.train(cfg.n_train), task.test(cfg.n_probe)
    assert (len(train), len(probes)) == (cfg.n_train, cfg.n_probe)
    assert not {ex.question for ex in train} & {ex.question for ex in probes}


@pytest.mark.parametrize("profile", PROFILES)
def test_budget_draws_its_data(profile, gsm8k_standin):
    cfg = budget.BudgetConfig.for_profile(profile)
    if cfg.task == "gsm8k":  # the gpu profile reads the hub's GSM8K; the stand-in has its shape and more rows
        cfg = budget.BudgetConfig.for_profile(profile, source=gsm8k_standin)
    sft_pool, prefs, test = make_pools(budget_task(cfg), cfg)
    assert (len(sft_pool), len(prefs), len(test)) == (cfg.pool, cfg.pool, cfg.eval_n)
    assert not {ex.question for ex in sft_pool} & {ex.question for ex in prefs}


def dry_run(capsys, *argv):
    assert main([*map(str, argv), "--dry-run"]) == 0
    return capsys.readouterr().out


def test_star_gpu_dry_run_prints_the_plan_without_a_model(capsys, tmp_path):
    runs = tmp_path / "runs"
    out = dry_run(capsys, "star", "--profile", "gpu", "--model", "no-such-model", "--runs", runs)
    assert (
        "train problems, every iteration: 10000 (by difficulty 1: 77, 2: 2481, 3: 2481, 4: 2481, 5: 2480)"
        in out
    )
    assert "held-out problems: 263" in out
    for name in ["base-no-such-model", "gpu-star-primer", "gpu-star-iter0", "gpu-star-iter16"]:
        assert f"  {name} " in out
    assert "gpu-star-iter1 " in out and "SFT 40 steps" in out and "SFT 616 steps" in out
    assert "19 runs to build" in out
    assert not runs.exists()  # nothing written, not even the registry folder


def test_dry_run_marks_registered_runs(capsys, tmp_path):
    reg = Registry(tmp_path / "runs")
    with reg.create("cpu-rft", kind="rft", tracking="off"):
        pass
    out = dry_run(capsys, "rft", "--profile", "cpu", "--runs", reg.root)
    assert "cpu-rft " in out and "[registered]" in out and "1 run to build" in out
    assert "RFT prompts: 120" in out and "16 steps" in out


def test_rft_gpu_and_budget_dry_runs(capsys, tmp_path, gsm8k_standin):
    out = dry_run(capsys, "rft", "--profile", "gpu", "--runs", tmp_path / "runs")
    assert (
        "RFT prompts: 2000" in out and "gpu-rft " in out and "200 steps of 8 prompts x 8 completions" in out
    )
    out = dry_run(capsys, "budget", "--profile", "cpu", "--runs", tmp_path / "runs")
    cfg = budget.BudgetConfig.for_profile("cpu")
    assert f"SFT pool: {cfg.pool}" in out and f"{cfg.run_name('sft4', 'dpo28')} " in out
    assert "19 runs to build" in out
    out = dry_run(
        capsys, "budget", "--profile", "gpu", "--source", gsm8k_standin, "--runs", tmp_path / "runs"
    )
    assert "SFT pool: 1024" in out and "test problems: 500" in out and "18 runs to build" in out
    assert not (tmp_path / "runs").exists()
