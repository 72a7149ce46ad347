"""Tests for nbkit.experiments.budget: the cost model (golden numbers), bad input, pair building with a fake
sampler, the paper-claim checks, and a real sweep on the tiny model (lineage, cache, resume after an interruption,
fake stages passed to run, the CLI)."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from nbkit.config import from_dict
from nbkit.errors import ConfigError, NbkitError
from nbkit.experiments.budget import BudgetConfig, BudgetError, plan_grid, run, split_budget
from nbkit.experiments.budget.config import Cell
from nbkit.experiments.budget.data import draw_rejected, load_pairs, preference_pairs
from nbkit.experiments.budget.result import (
    claim_dpo_from_base_worst,
    claim_sft_wins_small,
    claim_small_sft_rescues,
    claims,
)
from nbkit.experiments.budget.run import run_names, train_dpo
from nbkit.runs import Registry, RunError
from nbkit.tasks import Arithmetic

# ------------------------------------------------------------------------------------------------- cost model


@pytest.mark.parametrize(
    "budget, f, sft_cost, pair_cost, expected",
    [
        (100, 0.25, 1, 2, (25, 37)),  # 25 units -> 25 examples; 75 units -> 37 pairs, half a unit left over
        (128, 0.125, 1, 1, (16, 112)),
        (100, 0.29, 1, 1, (29, 71)),  # 0.29 * 100 = 28.999999999999996 in floats: still 29
        (10, 1.0, 3, 1, (3, 0)),
        (10, 0.0, 3, 4, (0, 2)),
        (32, 0.5, 0.5, 4, (32, 4)),
    ],
)
def test_split_budget_golden(budget, f, sft_cost, pair_cost, expected):
    assert split_budget(budget, f, sft_cost, pair_cost) == expected


def test_plan_grid_is_budget_major_and_sorted():
    cells = plan_grid([20, 10], [1.0, 0.0, 0.5])
    assert cells == [
        Cell(10.0, 0.0, 0, 10),
        Cell(10.0, 0.5, 5, 5),
        Cell(10.0, 1.0, 10, 0),
        Cell(20.0, 0.0, 0, 20),
        Cell(20.0, 0.5, 10, 10),
        Cell(20.0, 1.0, 20, 0),
    ]


@pytest.mark.parametrize("f", [-0.1, 1.5])
def test_fraction_outside_unit_interval_fails(f):
    with pytest.raises(BudgetError, match=r"outside \[0, 1\]"):
        split_budget(10, f)


def test_budget_that_buys_nothing_says_how_much_is_needed():
    with pytest.raises(BudgetError, match="buys nothing.*at least 2") as e:
        split_budget(1, 0.5, sft_cost=1, pair_cost=1)  # half a unit each side buys nothing
    assert "\n" not in str(e.value)
    with pytest.raises(BudgetError, match="at least 4"):
        split_budget(3, 0.0, pair_cost=4)


@pytest.mark.parametrize("kw", [dict(sft_cost=0), dict(pair_cost=-1), dict(budget=0)])
def test_nonpositive_costs_and_budgets_fail(kw):
    args = dict(budget=10, fraction=0.5, sft_cost=1, pair_cost=1) | kw
    with pytest.raises(BudgetError):
        split_budget(**args)


def test_budget_errors_are_config_errors_that_the_cli_prints():
    assert issubclass(BudgetError, ConfigError) and issubclass(BudgetError, NbkitError)


def test_a_config_with_a_bad_grid_fails_when_built():
    with pytest.raises(BudgetError, match="outside"):
        _smoke(fractions=[0.0, 2.0])
    with pytest.raises(BudgetError, match="raise pool to 8"):
        _smoke(budgets=[8], fractions=[1.0], pool=4)
    with pytest.raises(BudgetError, match="rejected_k"):
        _smoke(budgets=[8], fractions=[0.0], pool=4, rejected_k=1)
    with pytest.raises(BudgetError, match="not 'tsp'"):
        _smoke(task="tsp")


# --------------------------------------------------------------------------------------------------- config


def _smoke(**kw) -> BudgetConfig:
    return from_dict({"profile": "smoke", **kw}, BudgetConfig)


def test_profiles_and_sweep_id():
    smoke, cpu = BudgetConfig.for_profile("smoke"), BudgetConfig.for_profile("cpu")
    assert (smoke.model, smoke.profile, cpu.model, cpu.profile) == ("tiny", "smoke", "smollm2-135m", "cpu")
    assert len(cpu.fractions) >= 3 and {0.0, 1.0} <= set(cpu.fractions) and cpu.budgets == [16, 32, 128]
    with pytest.raises(ConfigError, match="unknown profile"):
        BudgetConfig.for_profile("tpu")
    # the grid and the profile's name do not change the id (cells are reused); a hyperparameter does
    assert dataclasses.replace(_smoke(budgets=[4]), profile="x").sweep_id() == smoke.sweep_id()
    assert _smoke(dpo_lr=1e-3).sweep_id() != smoke.sweep_id()
    # every run of a sweep is named <profile>-budget-<sweep id>[-stage]
    assert smoke.run_name("sft4", "dpo28") == f"smoke-budget-{smoke.sweep_id()}-sft4-dpo28"


def test_run_names_follow_the_lineage():
    cfg = _smoke()
    stem = f"smoke-budget-{cfg.sweep_id()}"
    mixed = run_names(cfg, Cell(8, 0.5, 4, 4))
    assert (mixed["sft"], mixed["dpo"], mixed["final"]) == (
        f"{stem}-sft4",
        f"{stem}-sft4-dpo4",
        f"{stem}-sft4-dpo4",
    )
    cold = run_names(cfg, Cell(8, 0.0, 0, 8))
    assert (cold["sft"], cold["dpo"]) == (None, f"{stem}-base-dpo8")
    sft_only = run_names(cfg, Cell(8, 1.0, 8, 0))
    assert (sft_only["dpo"], sft_only["final"]) == (None, f"{stem}-sft8")


# ------------------------------------------------------------------------------------------ preference pairs


class FakeSamples:
    def __init__(self, texts):
        self._texts = texts

    def texts(self):
        return self._texts


def fake_sampler(answers_by_question):
    """A sampler that returns fixed texts per question, whatever the model."""

    def sample(model, tok, prompts, k, **kw):
        qs = [p[-1]["content"] for p in prompts]
        return FakeSamples([answers_by_question[q][:k] for q in qs])

    return sample


def test_pairs_from_a_fake_sampler_keep_wrong_answers_round_robin():
    task = Arithmetic(digits=(1,))
    exs = [task.make(2, 3), task.make(4, 4), task.make(1, 1)]
    sampler = fake_sampler(
        {
            "What is 2 + 3?": ["Answer: 6", "Answer: 7"],
            "What is 4 + 4?": ["Answer: 8", "8"],  # both right: no pair from this prompt
            "What is 1 + 1?": ["Answer: 2", "Answer: 3"],
        }
    )
    wrong = draw_rejected(None, None, task, exs, k=2, sampler=sampler)
    assert wrong == [["Answer: 6", "Answer: 7"], [], ["Answer: 3"]]
    pairs = preference_pairs(task, exs, wrong)
    got = [
        (p["prompt"][-1]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs
    ]
    assert got == [
        ("What is 2 + 3?", "Answer: 5", "Answer: 6"),
        ("What is 1 + 1?", "Answer: 2", "Answer: 3"),
        ("What is 2 + 3?", "Answer: 5", "Answer: 7"),
    ]
    with_rationale = preference_pairs(task, exs, wrong, rationale=True)[0]["chosen"][0]["content"]
    assert with_rationale == "2+3: 2+3=5 -> 5\nAnswer: 5"


def test_a_task_with_no_incorrect_samples_fails_with_one_clear_line():
    task = Arithmetic(digits=(1,))
    exs = [task.make(2, 3), task.make(1, 1)]
    sampler = fake_sampler({"What is 2 + 3?": ["5", "Answer: 5"], "What is 1 + 1?": ["2", "two is 2"]})
    wrong = draw_rejected(None, None, task, exs, k=2, sampler=sampler)
    with pytest.raises(BudgetError, match="no incorrect samples to pair against") as e:
        preference_pairs(task, exs, wrong)
    assert "\n" not in str(e.value)


def test_load_pairs_from_a_dataset_file(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text(
        json.dumps({"prompt": "What is 1 + 1?", "chosen": "Answer: 2", "rejected": "Answer: 3"}) + "\n"
    )
    (row,) = load_pairs(f)
    assert row["prompt"] == [{"role": "user", "content": "What is 1 + 1?"}]
    assert row["rejected"] == [{"role": "assistant", "content": "Answer: 3"}]
    f.write_text(json.dumps({"prompt": "x", "chosen": "y"}) + "\n")
    with pytest.raises(BudgetError, match=r"lacks \['rejected'\]"):
        load_pairs(f)


# ---------------------------------------------------------------------------------------------- claims


def _table(rows):
    t = pd.DataFrame(rows, columns=["budget", "fraction", "n_pairs", "accuracy"])
    return t.assign(run=[f"b{b:g}-f{f:g}" for b, f in zip(t.budget, t.fraction)])


AGREEING = _table(
    [
        (32, 0.0, 32, 0.05),
        (32, 0.125, 28, 0.20),
        (32, 1.0, 0, 0.30),
        (128, 0.0, 128, 0.10),
        (128, 0.125, 112, 0.45),
        (128, 1.0, 0, 0.40),
    ]
)


def _scores(table, n=60):
    """Per-problem 0/1 scores matching each cell's accuracy: cell with accuracy a gets the first round(a*n) right,
    so a higher cell is right on a superset of a lower cell's problems (a clean paired difference)."""
    return {
        r.run: [1.0] * round(r.accuracy * n) + [0.0] * (n - round(r.accuracy * n)) for r in table.itertuples()
    }


def test_claims_agree_on_a_table_shaped_like_the_paper():
    scores = _scores(AGREEING)
    c = claim_sft_wins_small(AGREEING, scores)
    # SFT only 18/60 right vs the best split with pairs (f = 0.125) 12/60: paired difference +6/60 = +0.1, and
    # every per-problem difference is 0 or +1, so the bootstrap interval stays above 0, and McNemar's exact test on
    # the 6 discordant problems, all one way, gives p = 2 / 2^6 = 0.031
    assert c.verdict == "AGREES" and c.effect == pytest.approx(0.1) and c.n == 60 and c.lo > 0
    assert c.p == pytest.approx(2 / 2**6) and "p=0.0312" in str(c)
    assert "at B = 32, SFT only (acc 0.30) minus the best split with pairs (f = 0.125, acc 0.20)" in str(c)
    worst = claim_dpo_from_base_worst(AGREEING, scores)
    assert [w.verdict for w in worst] == ["AGREES", "AGREES"]
    assert [round(w.effect, 3) for w in worst] == [0.15, 0.3]  # 0.20 - 0.05; min(0.45, 0.40) - 0.10
    rescue = claim_small_sft_rescues(AGREEING, scores)
    assert [round(r.effect, 3) for r in rescue] == [0.15, 0.35] and all(r.verdict == "AGREES" for r in rescue)
    assert len(claims(AGREEING, scores)) == 5


def test_claims_with_too_few_problems_are_inconclusive():
    scores = _scores(AGREEING, n=10)  # SFT only 3/10 vs 2/10: one problem apart
    c = claim_sft_wins_small(AGREEING, scores)
    assert c.verdict == "INCONCLUSIVE" and c.n_needed > 10 and "would decide" in str(c)


def test_claims_need_the_exact_test_as_well_as_the_interval():
    close = AGREEING.copy()
    close.loc[2, "accuracy"] = 16 / 60  # SFT only 16/60 vs 12/60: 4 problems apart, all one way
    c = claim_sft_wins_small(close, _scores(close))
    assert c.lo > 0 and c.p == pytest.approx(0.125)  # the interval alone would have said AGREES
    assert c.verdict == "INCONCLUSIVE" and "p >= 0.05" in str(c)
    assert c.n_needed == 83  # 83 * 4 / 60 = 5.53 discordant problems, rounded to the 6 that give p = 0.031


def test_claims_depart_plainly():
    flat = AGREEING.assign(accuracy=0.0)  # a random model: every cell scores 0, no effect, no decision
    assert claim_sft_wins_small(flat, _scores(flat)).verdict == "INCONCLUSIVE"
    mixed_wins = AGREEING.copy()
    mixed_wins.loc[1, "accuracy"] = 0.6
    c = claim_sft_wins_small(mixed_wins, _scores(mixed_wins))
    assert c.verdict == "DEPARTS" and c.effect == pytest.approx(-0.3)
    coarse = AGREEING[AGREEING.fraction != 0.125]
    with pytest.raises(BudgetError, match="the grid needs f = 0 and a share"):
        claim_small_sft_rescues(coarse, _scores(AGREEING))
    found = claims(coarse, _scores(AGREEING))  # what the grid can check, and a line for what it cannot
    assert found[-1].startswith("claim_small_sft_rescues: not checked: the grid needs f = 0 and a share")


# ------------------------------------------------------------------------------------ a real sweep on tiny


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBKIT_WANDB", "off")
        reg = Registry(tmp_path_factory.mktemp("runs"))
        cfg = _smoke(budgets=[4], fractions=[0.0, 0.5, 1.0], eval_n=4, max_new_tokens=4)
        yield cfg, reg, run(cfg, reg, progress=False)


def test_sweep_table_is_tidy(swept):
    cfg, reg, result = swept
    table = result.frame()
    assert list(table[["fraction", "n_sft", "n_pairs"]].itertuples(index=False, name=None)) == [
        (0.0, 0, 4),
        (0.5, 2, 2),
        (1.0, 4, 0),
    ]
    assert table.spent.tolist() == [4.0, 4.0, 4.0]
    assert table.accuracy.between(0, 1).all() and result.base_accuracy is not None
    assert (table.train_s > 0).all()
    pairs = [
        json.loads(x)
        for x in (reg.get(run_names(cfg, Cell(4, 0, 0, 4))["pairs"]).path / "pairs.jsonl").open()
    ]
    assert len(pairs) >= 4 and all(not Arithmetic().is_correct(p["rejected"], p["answer"]) for p in pairs)


def test_every_checkpoint_is_registered_with_its_parents(swept):
    cfg, reg, result = swept
    table = result.frame()
    stem = f"smoke-budget-{cfg.sweep_id()}"
    lineages = [[r.name for r in reg.lineage(name)] for name in table.run]
    assert lineages == [
        ["base-tiny", f"{stem}-base", f"{stem}-base-dpo4"],  # every lineage starts at the model's base run
        ["base-tiny", f"{stem}-base", f"{stem}-sft2", f"{stem}-sft2-dpo2"],
        ["base-tiny", f"{stem}-base", f"{stem}-sft4"],
    ]
    assert [reg.get(name).kind for name in lineages[1]] == ["base", "base", "sft", "dpo"]
    model, tok = reg.load(table.run[1])  # what the compare app does with any cell
    assert model.config.hidden_size == 64
    assert len(result.eval_rows(table.run[1])) == 4


def test_cold_start_table_names_the_four_models(swept):
    cfg, reg, result = swept
    table = result.frame()
    (row,) = result.cold_start().to_dict("records")
    stem = f"smoke-budget-{cfg.sweep_id()}"
    assert (row["n_sft"], row["n_pairs_cold"], row["n_pairs_warm"]) == (2, 4, 2)
    assert (row["sft_run"], row["cold_run"], row["warm_run"]) == (
        f"{stem}-sft2",
        f"{stem}-base-dpo4",
        f"{stem}-sft2-dpo2",
    )
    assert row["dpo_from_base"] == table.accuracy[0] and row["sft_share_then_dpo"] == table.accuracy[1]
    assert row["sft_share_alone"] == reg.get(f"{stem}-sft2").summary["accuracy"]


def test_the_summary_prints_the_table_the_base_and_the_claims(swept):
    _, _, result = swept
    text = result.say()
    assert "base model accuracy" in text and "sft_run" not in text and "accuracy" in text.splitlines()[0]
    assert text.count("\n") >= len(result.frame()) + len(result.claims())


def test_a_rerun_trains_nothing(swept):
    cfg, reg, result = swept

    def boom(*a, **k):
        raise AssertionError("a finished cell was trained again")

    again = run(cfg, reg, progress=False, train_sft=boom, train_dpo=boom, draw_pairs=boom)
    table = result.frame()
    pd.testing.assert_frame_equal(again.frame().drop(columns="train_s"), table.drop(columns="train_s"))


def test_a_run_of_the_same_name_with_another_config_is_refused(tmp_path):
    reg, cfg = Registry(tmp_path), _smoke(budgets=[4], fractions=[0.0])
    pairs = run_names(cfg, cfg.cells()[0])["pairs"]
    with reg.create(pairs, "pairs", {**dataclasses.asdict(cfg), "rejected_k": 9}):
        pass  # e.g. made by another version of nbkit
    with pytest.raises(RunError, match=r"exists with a different config \(rejected_k: 9 there, 2 now\)"):
        run(cfg, reg, progress=False)


def test_an_interrupted_sweep_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("NBKIT_WANDB", "off")
    reg, cfg = Registry(tmp_path), _smoke(budgets=[4], fractions=[0.0, 0.5], eval_n=2, max_new_tokens=2)
    calls = []

    def dpo_dies_second_time(cfg, model, tok, pairs, writer):
        calls.append(len(pairs))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user stops the sweep in the middle of a cell
        return train_dpo(cfg, model, tok, pairs, writer)

    with pytest.raises(KeyboardInterrupt):
        run(cfg, reg, progress=False, train_dpo=dpo_dies_second_time)
    stem = f"smoke-budget-{cfg.sweep_id()}"
    done = {n: reg.get(n).created for n in reg.names()}
    assert set(done) == {"base-tiny", f"{stem}-pairs", f"{stem}-base", f"{stem}-base-dpo4", f"{stem}-sft2"}
    assert not any((tmp_path / ".pending").glob("*/checkpoint"))  # the half-trained cell left nothing behind

    table = run(cfg, reg, progress=False, train_dpo=dpo_dies_second_time).frame()
    assert calls == [4, 2, 2]  # only the interrupted DPO ran again
    assert {n: reg.get(n).created for n in done} == done
    assert table.run.tolist() == [f"{stem}-base-dpo4", f"{stem}-sft2-dpo2"]


def test_fake_stages_show_what_data_each_stage_gets(tmp_path, monkeypatch):
    """No sampling, training or generation: the sweep's wiring alone (the tiny model is loaded and saved)."""
    from types import SimpleNamespace

    monkeypatch.setenv("NBKIT_WANDB", "off")
    cfg, calls = _smoke(budgets=[4], fractions=[0.0, 0.5]), []
    turn = [{"role": "assistant", "content": "Answer: 0"}]
    fake_pairs = [
        {"prompt": [{"role": "user", "content": f"q{i}"}], "chosen": turn, "rejected": turn} for i in range(4)
    ]

    def draw_pairs(cfg, task, prompts):
        calls.append(("pairs", len(prompts)))
        return fake_pairs

    def train(kind):
        def fake(cfg, model, tok, data, writer):
            calls.append((kind, len(data)))
            return SimpleNamespace(model=model, state=SimpleNamespace(global_step=1))

        return fake

    def evaluate(cfg, model, tok, task, problems):  # right on the first problem only
        return [{"difficulty": 1, "correct": i == 0} for i, _ in enumerate(problems)]

    stages = dict(draw_pairs=draw_pairs, train_sft=train("sft"), train_dpo=train("dpo"), evaluate=evaluate)
    result = run(cfg, Registry(tmp_path), progress=False, **stages)
    assert calls == [("pairs", cfg.pool), ("dpo", 4), ("sft", 2), ("dpo", 2)]
    assert result.base_accuracy == 0.25 and result.frame().accuracy.tolist() == [0.25, 0.25]


def test_cli_runs_a_gsm8k_sweep_from_a_config_file(tmp_path, monkeypatch, capsys):
    from nbkit.cli import main

    monkeypatch.setenv("NBKIT_WANDB", "off")
    cfg = tmp_path / "budget.yaml"
    cfg.write_text(
        "profile: smoke\ntask: gsm8k\nsource: gsm8k_sample.jsonl\nbudgets: [2]\nfractions: [0.0, 0.5, 1.0]\n"
        "pool: 2\neval_n: 2\nmax_new_tokens: 2\nmax_length: 160\n"
    )
    out = tmp_path / "table.csv"
    assert main(["budget", "--config", str(cfg), "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "base model accuracy" in printed
    assert "at B = 2, SFT only (acc" in printed and "95% CI" in printed  # claims print with their intervals
    assert "claim_small_sft_rescues: not checked: the grid needs f = 0 and a share 0 < f <= 0.25" in printed
    table = pd.read_csv(out)
    assert table[["n_sft", "n_pairs"]].values.tolist() == [[0, 2], [1, 1], [2, 0]]


def test_cli_bad_config_prints_one_line(tmp_path, capsys):
    from nbkit.cli import main

    cfg = tmp_path / "bad.yaml"
    cfg.write_text("profile: smoke\nfractions: [0.0, 1.5]\n")
    assert main(["budget", "--config", str(cfg), "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nbkit: SFT fraction f=1.5 is outside [0, 1]") and "\n" not in err


# ------------------------------------------------------------------------------------------------------ slow


@pytest.mark.slow
def test_cpu_profile_small_sft_share_beats_the_base(tmp_path, monkeypatch):
    """SmolLM2-135M: 16 direct-answer SFT examples teach the answer format that the base model lacks."""
    monkeypatch.setenv("NBKIT_WANDB", "off")
    cfg = from_dict(
        {"profile": "cpu", "budgets": [16], "fractions": [1.0], "pool": 16, "eval_n": 32}, BudgetConfig
    )
    result = run(cfg, Registry(tmp_path), progress=False)
    assert result.frame().accuracy[0] > result.base_accuracy + 0.1
