"""Tests for nbkit.experiments.rft: the group maths by hand, the zero-gradient invariant, reward and config
validation, splicing GRPO batches, the run's stages (fakes passed in), and short GRPO runs on the tiny model that must
leave metrics in the registry."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nbkit.config import parse_cli
from nbkit.errors import ConfigError, NbkitError
from nbkit.experiments.rft import PROFILES as RFT_PROFILES
from nbkit.experiments.rft import RftConfig, run
from nbkit.experiments.rft.probe import probe, prompt_gradient_norm, prompt_gradient_norms
from nbkit.experiments.rft.result import (
    claim_low_std_slow_growth,
    claim_rl_raises_reward,
    claim_warmstart_helps,
    claim_zero_std_zero_gradient,
    start_and_end,
)
from nbkit.experiments.rft.rewards import (
    RewardError,
    check_rewards,
    checked_reward,
    group_advantages,
    group_reward_stats,
    group_std,
)
from nbkit.experiments.rft.trainer import make_trainer, take_groups
from nbkit.runs import Registry, RunError
from nbkit.tasks import FIXTURES, Arithmetic, completion_text

# ------------------------------------------------------------------------------------------- golden values


def test_group_std_and_stats_by_hand():
    # [1,0,0,0]: mean 0.25, squared deviations 0.5625 + 3*0.0625 = 0.75, / (k-1=3) = 0.25 -> std 0.5
    assert group_std(torch.tensor([[1.0, 0, 0, 0]])).tolist() == [0.5]
    s = group_reward_stats([[1, 1], [0, 0], [1, 0]])
    assert s["mean"] == [1.0, 0.0, 0.5]
    assert s["std"][:2] == [0.0, 0.0] and s["std"][2] == pytest.approx(math.sqrt(0.5))  # (0.25+0.25)/1
    assert s["zero_std"] == [True, True, False]
    assert s["all_right"] == [True, False, False] and s["all_wrong"] == [False, True, False]
    assert s["frac_zero_std"] == pytest.approx(2 / 3)
    assert s["frac_all_right"] == pytest.approx(1 / 3) and s["frac_all_wrong"] == pytest.approx(1 / 3)
    assert s["mean_reward"] == pytest.approx(0.5)
    # a constant 0.5 group has zero std but is neither all right nor all wrong
    s = group_reward_stats([[0.5, 0.5]])
    assert s["zero_std"] == [True] and s["all_right"] == [False] and s["all_wrong"] == [False]


def test_group_advantages_by_hand():
    a = group_advantages(torch.tensor([[1.0, 0, 0, 0], [1.0, 1, 0, 0], [0.0, 0, 0, 0]]))
    # group 1: std 0.5 -> 0.75/0.5001 and -0.25/0.5001
    assert a[0].tolist() == pytest.approx([1.49970006, -0.49990002, -0.49990002, -0.49990002], abs=1e-6)
    # group 2: mean 0.5, std sqrt(4*0.25/3) = 0.577350 -> +-0.5/0.577450
    assert a[1].tolist() == pytest.approx([0.865875, 0.865875, -0.865875, -0.865875], abs=1e-5)
    assert a[2].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert group_advantages(torch.tensor([[3.0, 1.0]]), scale="none").tolist() == [[1.0, -1.0]]
    # batch scale: centred by the group, scaled by the std of all 4 rewards ([3,1,2,2]: var 2/3)
    b = group_advantages(torch.tensor([[3.0, 1.0], [2.0, 2.0]]), scale="batch")
    d = math.sqrt(2 / 3) + 1e-4
    assert b.view(-1).tolist() == pytest.approx([1 / d, -1 / d, 0.0, 0.0])
    with pytest.raises(ValueError, match="scale"):
        group_advantages(torch.zeros(1, 2), scale="nope")


def test_group_advantages_match_trl_formula():
    from trl.trainer.utils import nanstd

    g = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 2, (32, 8), generator=g).float()
    flat = rewards.view(-1)
    mean = flat.view(-1, 8).mean(1).repeat_interleave(8)
    std = nanstd(flat.view(-1, 8), dim=1).repeat_interleave(8)
    trl_adv = (flat - mean) / (std + 1e-4)  # TRL 1.16 GRPOTrainer, scale_rewards="group"
    assert torch.allclose(group_advantages(rewards).view(-1), trl_adv, atol=1e-6)


def _probes(steps, means, stds, questions=None):
    """A probes frame as run_tables gives it: one row per probe step, per-prompt lists in the cells."""
    import pandas as pd

    n = len(means[0])
    return pd.DataFrame(
        {
            "probe/prompt_mean": means,
            "probe/prompt_std": stds,
            "probe/questions": [questions or [f"{i} + 1" for i in range(n)]] * len(steps),
        },
        index=pd.Index(steps, name="step"),
    )


def test_claim_verdicts_by_hand():
    assert claim_zero_std_zero_gradient([0, 0.5], [0.0, 3.1]).startswith("AGREES (exact")
    leak = claim_zero_std_zero_gradient([0, 0, 0.5], [0.0, 3.1e-3, 3.1])
    assert leak.startswith("DEPARTS") and "1 zero-std prompts leak gradient, largest at 0.001 x" in leak
    assert claim_zero_std_zero_gradient([0, 0.5], [1e-30, 3.1]).startswith("DEPARTS")  # exact: no tolerance
    assert claim_zero_std_zero_gradient([0, 0.5], [0.0, 0.0]).startswith("DEPARTS")  # spread without gradient
    assert claim_zero_std_zero_gradient([0.5], [3.1]).startswith("NOT CHECKED")
    # 20 prompts with spread each gain 0.5, 20 all-wrong prompts gain 0 -> effect +0.5, interval [0.5, 0.5]
    c = claim_low_std_slow_growth([0] * 20 + [0.5] * 20, [0] * 20 + [0.5] * 20, [0] * 20 + [1] * 20)
    assert c.verdict == "AGREES" and c.effect == pytest.approx(0.5) and c.lo == pytest.approx(0.5)
    c = claim_low_std_slow_growth([0] * 20 + [0.5] * 20, [0] * 20 + [0.5] * 20, [1] * 20 + [0.5] * 20)
    assert c.verdict == "DEPARTS" and c.effect == pytest.approx(-1.0)
    assert claim_low_std_slow_growth([1], [0], [1]).startswith("NOT CHECKED: need prompts of both kinds")


def test_rl_and_warmstart_claims_on_probe_tables():
    # 32 prompts: the warm-started run starts with spread on 24 and gains 0.25 on each; RFT alone starts all
    # wrong on 28 and gains nothing
    warm = _probes([0, 10], [[0.5] * 24 + [0.0] * 8, [0.75] * 24 + [0.0] * 8], [[0.5] * 24 + [0.0] * 8] * 2)
    alone = _probes([0, 10], [[0.0] * 28 + [0.5] * 4] * 2, [[0.0] * 28 + [0.5] * 4] * 2)
    up = claim_rl_raises_reward(warm, "warm-started")
    assert up.verdict == "AGREES" and up.effect == pytest.approx(0.1875) and up.n == 32
    assert "warm-started: probe reward, step 10 minus step 0" in str(up)
    flat = claim_rl_raises_reward(alone)
    assert flat.verdict == "INCONCLUSIVE" and flat.effect == 0.0
    zero, gain, end = claim_warmstart_helps(alone, warm)
    assert zero.verdict == "AGREES" and zero.effect == pytest.approx((28 - 8) / 32)
    assert gain.verdict == "AGREES" and gain.effect == pytest.approx(0.1875)
    assert end.effect == pytest.approx((24 * 0.75 - 4 * 0.5) / 32)
    assert gain.p == pytest.approx(2 / 2**24)  # 24 prompts gained, none lost: the sign-flip (binomial) test


def test_warmstart_pairs_only_the_same_questions_in_the_same_order():
    warm = _probes([0, 10], [[0.5] * 4, [0.75] * 4], [[0.5] * 4] * 2, questions=["a", "b", "c", "d"])
    alone = _probes([0, 10], [[0.0] * 4] * 2, [[0.0] * 4] * 2, questions=["a", "b", "d", "c"])
    (line,) = claim_warmstart_helps(alone, warm)
    assert line.startswith("NOT CHECKED: the two arms probed different prompts (2 of 4 positions differ)")
    (line,) = claim_warmstart_helps(alone.drop(columns="probe/questions"), warm)
    assert line.startswith("NOT CHECKED: the probes did not record their questions")
    same = _probes([0, 10], [[0.0] * 4] * 2, [[0.0] * 4] * 2, questions=["a", "b", "c", "d"])
    assert [c.effect for c in claim_warmstart_helps(same, warm)] == [1.0, 0.25, 0.75]
    moved = warm.copy()
    moved.at[10, "probe/questions"] = ["d", "c", "b", "a"]  # the last probe asked other questions
    with pytest.raises(ValueError, match="first and last probes of this run asked different questions"):
        claim_warmstart_helps(same, moved)


def test_low_std_slow_growth_resamples_each_prompt_whole():
    # three arms probe the same 16 prompts and behave alike: 8 start with spread and gain, 8 start all wrong
    import numpy as np

    gains = np.random.default_rng(0).normal(0.2, 0.2, 16)
    start = [0.5] * 8 + [0.0] * 8
    arms = [_probes([0, 5], [start, list(np.add(start, gains))], [start, start]) for _ in range(3)]
    means, stds, ends, prompts = start_and_end(arms)
    assert len(prompts) == 48 and len(set(prompts)) == 16 and prompts[:2] == ["0 + 1", "1 + 1"]
    by_prompt = claim_low_std_slow_growth(means, stds, ends, prompts)
    by_row = claim_low_std_slow_growth(means, stds, ends)  # the old way: 48 independent prompts
    assert by_prompt.effect == pytest.approx(by_row.effect) and (by_prompt.n, by_row.n) == (16, 48)
    assert "rows of 16 prompts" in by_prompt.claim
    # one prompt counted three times is no more evidence than once: the interval is about sqrt(3) wider
    assert (by_prompt.hi - by_prompt.lo) / (by_row.hi - by_row.lo) == pytest.approx(3**0.5, rel=0.2)
    unnamed = [a.drop(columns="probe/questions") for a in arms]
    assert start_and_end(unnamed)[3][:2] == ["probe 0", "probe 1"]  # keyed by probe order
    with pytest.raises(ValueError, match=r"probed \[2, 16\] prompts"):
        start_and_end([*unnamed, _probes([0], [[0.0, 0.5]], [[0.0, 0.5]]).drop(columns="probe/questions")])


def test_signal_table_sorts_by_starting_std_and_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nbkit.experiments.rft.plots import plot_scaling, plot_signal_map
    from nbkit.experiments.rft.signal_map import scaling_table, signal_table

    means = [[0.0, 0.5, 1.0, 0.25], [0.0, 0.75, 1.0, 0.5], [0.0, 1.0, 1.0, 0.5]]
    probes = _probes(
        [0, 5, 10], means, [[0.0, 0.53, 0.0, 0.46], [0.0, 0.46, 0.0, 0.53], [0.0, 0.0, 0.0, 0.53]]
    )
    t = signal_table(probes)
    # highest starting std first; among std 0, all right (prompt 2) above all wrong (prompt 0)
    assert t["order"].tolist() == [1, 3, 2, 0] and t["questions"] == ["1 + 1", "3 + 1", "2 + 1", "0 + 1"]
    assert t["std"].shape == (4, 3) and t["steps"] == [0, 5, 10]
    assert t["mean"][0].tolist() == [0.5, 0.75, 1.0]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    plot_signal_map(probes, axes[0], axes[1])
    row = probes.iloc[0].copy()
    row["probe/grad_norm_group"], row["probe/grad_norm_none"] = [0.0, 4.0, 0.0], [0.0, 2.12, 0.0]
    table = scaling_table(row)
    assert table["grad_group"].tolist() == [0.0, 4.0, 0.0] and len(table) == 3
    plot_scaling(table, axes[2:])
    fig.savefig(tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 10_000
    plt.close(fig)


# --------------------------------------------------------------------------------- the zero-gradient invariant


@pytest.fixture(scope="module")
def tiny_trainer():
    """An RftTrainer on a tiny model of its own (never trained): the gradient norms go through its TRL loss."""
    from nbkit.models import load

    model, tok = load("tiny", dtype="float32")
    task = Arithmetic(digits=(1,))
    return make_trainer(model, tok, _small_cfg(), [task.rl_record(e) for e in task.train(12)], [hash_reward])


def _prompt(tok):
    return tok("What is 2 + 2?", add_special_tokens=False)["input_ids"]


@settings(max_examples=40, deadline=None)
@given(
    value=st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=32),
    k=st.integers(min_value=2, max_value=12),
    spread=st.booleans(),
    scale=st.sampled_from(["group", "batch", "none"]),
)
def test_trl_advantages_are_group_advantages(tiny_trainer, value, k, spread, scale):
    """TRL's own scoring of one group (`group_inputs`) gives group_advantages bit for bit, equal rewards included:
    neither forces a zero, so what nbkit teaches is what TRL trains on."""
    rewards = [value + (i % 2 if spread else 0) for i in range(k)]
    comps = [[19 + i, 20] for i in range(k)]
    trl_adv = tiny_trainer.group_inputs(_prompt(tiny_trainer.processing_class), comps, rewards, scale)[
        "advantages"
    ]
    assert torch.equal(trl_adv, group_advantages(torch.tensor([rewards]), scale=scale)[0])


def test_equal_non_binary_rewards_leak_in_trl():
    """Measured: TRL 1.16 divides the rounding of the mean by 1e-4, so equal rewards need not give 0 advantages.
    0/1 rewards (every nbkit task) are exact; 0.7 eight times is not, though its std is reported as 0."""
    assert torch.equal(group_advantages(torch.ones(1, 8)), torch.zeros(1, 8))
    leak = group_advantages(torch.full((1, 8), 0.7))
    assert leak[0].tolist() == pytest.approx([5.9567e-4] * 8, rel=1e-3)
    assert group_std(torch.full((1, 8), 0.7)).tolist() == [0.0]  # nbkit's reported std: exactly 0


@settings(max_examples=40, deadline=None)
@given(
    rewards=st.lists(st.sampled_from([0.0, 1.0]), min_size=2, max_size=12).filter(lambda r: len(set(r)) > 1)
)
def test_rewards_with_spread_give_normalized_nonzero_advantages(rewards):
    a = group_advantages(torch.tensor([rewards]))[0]
    assert a.abs().max() > 0.5
    assert a.sum().item() == pytest.approx(0.0, abs=1e-5)
    assert a.std().item() == pytest.approx(1.0, abs=1e-3)  # unit std within the group (up to eps)


def test_prompt_gradient_norm_through_trl_loss(tiny_trainer):
    """One backward through TRL's compute_loss per group: equal 0/1 rewards give exactly 0, spread a norm that
    "group" scaling multiplies by exactly 1 / (std + 1e-4) (the loss is linear in the advantages)."""
    model, prompt = tiny_trainer.model, _prompt(tiny_trainer.processing_class)
    comps = [[19, 20, 21], [22, 23], [24, 25, 26, 27]]
    assert prompt_gradient_norm(tiny_trainer, prompt, comps, [1.0, 1.0, 1.0]) == 0.0
    assert prompt_gradient_norm(tiny_trainer, prompt, comps, [0.0, 0.0, 0.0], scale="none") == 0.0
    group = prompt_gradient_norm(tiny_trainer, prompt, comps, [1.0, 0.0, 0.0])
    none = prompt_gradient_norm(tiny_trainer, prompt, comps, [1.0, 0.0, 0.0], scale="none")
    assert none > 0.0 and group / none == pytest.approx(1 / (math.sqrt(1 / 3) + 1e-4), rel=1e-4)
    assert all(p.grad is None for p in model.parameters())  # measuring leaves no gradient behind
    assert not any(tiny_trainer._metrics[m] for m in ("train", "eval"))  # nor anything in TRL's logs


def test_zero_std_claim_departs_when_gradient_leaks(tiny, tiny_trainer):
    """The claim can fail: a zero-std group whose TRL loss has a gradient makes it DEPART. Two real leaks: TRL's
    advantages for eight equal rewards of 0.7, and TRL's entropy bonus (a loss term outside the advantages)."""
    from datasets import Dataset
    from trl import GRPOConfig

    from nbkit.experiments.rft.trainer import RftTrainer
    from nbkit.train import trainer_config

    prompt, comps = _prompt(tiny[1]), [[19 + i, 20 + i] for i in range(8)]
    spread = [1.0, 0.0] * 4
    stds = group_reward_stats([[1.0] * 8, [0.7] * 8, spread])["std"]
    assert stds[:2] == [0.0, 0.0] and stds[2] > 0
    norms = [prompt_gradient_norm(tiny_trainer, prompt, comps, r) for r in ([1.0] * 8, [0.7] * 8, spread)]
    assert norms[0] == 0.0 and 0.0 < norms[1] < 1e-2 * norms[2]
    assert claim_zero_std_zero_gradient(stds[::2], norms[::2]).startswith("AGREES")
    assert claim_zero_std_zero_gradient(stds, norms).startswith("DEPARTS")

    args = trainer_config(
        GRPOConfig, max_steps=1, per_device_train_batch_size=4, num_generations=4, entropy_coef=0.1
    )
    task = Arithmetic(digits=(1,))
    bonus = RftTrainer(
        model=tiny[0],
        reward_funcs=[hash_reward],
        args=args,
        train_dataset=Dataset.from_list([task.rl_record(e) for e in task.train(4)]),
        processing_class=tiny[1],
    )
    norm = prompt_gradient_norm(bonus, prompt, comps, [0.0] * 8)
    assert norm > 0.0 and claim_zero_std_zero_gradient([0.0, stds[2]], [norm, norms[2]]).startswith("DEPARTS")


# ------------------------------------------------------------------------------------------ reward validation


def test_check_rewards_errors_name_the_function_and_prompt():
    prompts = [[{"role": "user", "content": "What is 4 + 5?"}]] * 2
    comps = ["9", "10"]
    assert check_rewards([1, 0.5], 2, "f", prompts, comps) == [1.0, 0.5]
    assert check_rewards([True, None], 2, "f", prompts, comps) == [1.0, None]
    with pytest.raises(
        RewardError, match=r"'my_reward' returned 1 rewards for 2 completions.*What is 4 \+ 5"
    ):
        check_rewards([1.0], 2, "my_reward", prompts, comps)
    with pytest.raises(
        RewardError, match=r"'my_reward' returned nan at position 1 for prompt 'What is 4 \+ 5\?'"
    ):
        check_rewards([1.0, float("nan")], 2, "my_reward", prompts, comps)
    with pytest.raises(
        RewardError, match=r"'my_reward' returned 'yes' \(str\) at position 0.*What is 4 \+ 5"
    ):
        check_rewards(["yes", 1.0], 2, "my_reward", prompts, comps)
    with pytest.raises(RewardError, match=r"'my_reward' returned float, not a list"):
        check_rewards(1.0, 2, "my_reward", prompts, comps)
    with pytest.raises(RewardError, match="inf"):
        check_rewards([float("inf"), 0.0], 2, "my_reward", prompts, comps)


def test_checked_reward_wraps_a_trl_reward():
    def shout(completions, **kw):
        return ["loud"] * len(completions)

    wrapped = checked_reward(shout)
    assert wrapped.__name__ == "shout"
    with pytest.raises(RewardError, match="'shout'.*'What is 1 \\+ 1\\?'"):
        wrapped(completions=["2"], prompts=["What is 1 + 1?"], answer=["2"])
    task = Arithmetic(digits=(1,))
    ok = checked_reward(task.reward, "arith")
    assert ok(completions=["Answer: 2", "3"], prompts=["p", "p"], answer=["2", "2"]) == [1.0, 0.0]


# ---------------------------------------------------------------------------------------------- config errors


def test_group_size_that_does_not_divide_batch_is_explained_in_config_terms():
    with pytest.raises(ConfigError) as e:
        RftConfig(batch_size=10, group_size=4)
    msg = str(e.value)
    assert "batch_size=10 is not a multiple of group_size=4" in msg
    assert "batch_size / group_size prompts per step" in msg and "Set batch_size to 8 or 12" in msg
    assert "[2, 5, 10]" in msg and "num_generations" not in msg  # our names, not TRL's


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(group_size=1, batch_size=4), "group_size=1"),
        (dict(zero_std_filter="always"), "zero_std_filter='always'"),
        (dict(task="gsm8k"), "needs data"),
        (dict(task="chess"), "task='chess'"),
        (dict(warmstart_fraction=10), r"warmstart_fraction=10 must be in \[0, 1\]"),
        (dict(scale_rewards="max"), "scale_rewards"),
        (dict(steps=0), "steps=0"),
        (dict(probe_k=1), "probe_k=1"),
        (dict(name="a/b"), "name='a/b'"),
    ],
)
def test_bad_config_values(kw, match):
    with pytest.raises(ConfigError, match=match):
        RftConfig(**kw)


def test_config_file_and_profiles(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("profile: smoke\nsteps: 3\nzero_std_filter: drop\n")
    cfg = parse_cli(RftConfig, RFT_PROFILES, ["--config", str(f)])[0]
    assert (cfg.model, cfg.steps, cfg.zero_std_filter) == ("tiny", 3, "drop")
    f.write_text("profile: smoke\ngroups: 3\n")
    with pytest.raises(ConfigError, match="unknown key"):
        parse_cli(RftConfig, RFT_PROFILES, ["--config", str(f)])[0]
    f.write_text("profile: smoke\nbatch_size: 6\n")
    with pytest.raises(ConfigError, match="batch_size=6 is not a multiple of group_size=4"):
        parse_cli(RftConfig, RFT_PROFILES, ["--config", str(f)])[0]
    assert RftConfig.for_profile("cpu").model == "smollm2-135m"
    assert RftConfig.for_profile("gpu").batch_size % RftConfig.for_profile("gpu").group_size == 0
    with pytest.raises(ConfigError):
        RftConfig.for_profile("laptop")


def test_shipped_rft_configs_load():
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parent.parent / "configs").glob("rft_*.yaml"))
    assert files
    for f in files:
        cfg = parse_cli(RftConfig, RFT_PROFILES, ["--config", str(f)])[0]
        assert cfg.batch_size % cfg.group_size == 0, f


# ------------------------------------------------------------------------------------------ splicing batches


def test_take_groups_repads_and_recounts_tokens():
    a = {
        "prompt_ids": torch.tensor([[0, 5], [0, 6], [7, 8], [7, 9]]),
        "prompt_mask": torch.tensor([[0, 1], [0, 1], [1, 1], [1, 1]]),
        "completion_ids": torch.tensor([[1, 0], [2, 0], [3, 4], [5, 0]]),
        "completion_mask": torch.tensor([[1, 0], [1, 0], [1, 1], [1, 0]]),
        "advantages": torch.tensor([1.0, -1.0, 0.0, 0.0]),
        "num_items_in_batch": torch.tensor(5),
    }
    b = {
        "prompt_ids": torch.tensor([[1, 2, 3], [1, 2, 3]]),
        "prompt_mask": torch.ones(2, 3, dtype=torch.long),
        "completion_ids": torch.tensor([[6], [7]]),
        "completion_mask": torch.ones(2, 1, dtype=torch.long),
        "advantages": torch.tensor([0.5, -0.5]),
        "num_items_in_batch": torch.tensor(2),
    }
    out = take_groups([a, b], [(0, 0), (1, 0)], group_size=2, pad_id=0)
    assert out["prompt_ids"].tolist() == [[0, 0, 5], [0, 0, 6], [1, 2, 3], [1, 2, 3]]  # left padded
    assert out["prompt_mask"].tolist() == [[0, 0, 1], [0, 0, 1], [1, 1, 1], [1, 1, 1]]
    assert out["completion_ids"].tolist() == [[1, 0], [2, 0], [6, 0], [7, 0]]  # right padded
    assert out["completion_mask"].tolist() == [[1, 0], [1, 0], [1, 0], [1, 0]]
    assert out["advantages"].tolist() == [1.0, -1.0, 0.5, -0.5]
    assert int(out["num_items_in_batch"]) == 4
    with pytest.raises(NbkitError, match="pixel_values"):
        take_groups([{**a, "pixel_values": torch.zeros(4, 2, 2, 2)}], [(0, 0)], 2, 0)


# ------------------------------------------------------------------------------------------- runs on tiny


@pytest.fixture
def tiny():
    from nbkit.models import load

    return load("tiny", dtype="float32")


def _md5(text: str) -> int:
    return int(hashlib.md5(text.encode()).hexdigest(), 16)


def hash_reward(completions, prompts, **kwargs):
    """Fake reward: prompts whose hash is 0 mod 3 always get 1, 1 mod 3 always 0 (zero-std groups of both kinds);
    the rest get a hash of the completion, so their groups usually have spread."""
    out = []
    for p, c in zip(prompts, completions):
        h = _md5(str(p)) % 3
        out.append(1.0 if h == 0 else 0.0 if h == 1 else float(_md5(str(c)) % 2))
    return out


def _small_cfg(**kw):
    base = dict(
        model="tiny",
        n_train=12,
        n_probe=3,
        steps=2,
        batch_size=12,
        group_size=4,
        lr=1e-3,
        max_completion_length=4,
        probe_k=3,
        probe_every=2,
        grad_prompts=2,
        save_model=False,
    )
    return RftConfig(**{**base, **kw})


def test_grpo_two_steps_writes_diagnostics_to_registry(tiny, tmp_path):
    model, tok = tiny
    task = Arithmetic(digits=(1, 2))
    cfg = _small_cfg()
    reg = Registry(tmp_path)
    with reg.create("t", "rft", dataclasses.asdict(cfg)) as run:
        trainer = make_trainer(
            model,
            tok,
            cfg,
            [task.rl_record(e) for e in task.train(12)],
            [checked_reward(hash_reward)],
            run=run,
        )
        trainer.train()
    rows = reg.get("t").metrics()
    trl_rows = [r for r in rows if "reward_std" in r]
    assert [r["step"] for r in trl_rows] == [1, 2]
    for r in trl_rows:
        for key in (
            "frac_reward_zero_std",
            "frac_reward_zero_std_all_right",
            "frac_reward_zero_std_all_wrong",
        ):
            assert 0.0 <= r[key] <= 1.0
        assert (
            r["frac_reward_zero_std_all_right"] + r["frac_reward_zero_std_all_wrong"]
            <= r["frac_reward_zero_std"] + 1e-9
        )
    groups = [r for r in rows if "groups/prompt_std" in r]
    assert len(groups) == 2 and len(groups[0]["groups/prompt_std"]) == 3  # 12 completions = 3 prompts of 4
    # TRL's own advantages for the last step: exactly 0 for every group whose rewards are all equal
    last = torch.tensor(trainer.group_history[-1]["rewards"])
    adv = torch.tensor(trainer.group_history[-1]["advantages"]).view(-1, 4)
    equal = last.amax(1) == last.amin(1)
    assert torch.equal(adv[equal], torch.zeros_like(adv[equal]))
    assert (adv[~equal].abs().amax(1) > 0.5).all()
    # the per-prompt record matches the fake reward: constant groups where the prompt's hash says so
    for text, rewards in zip(trainer.group_history[-1]["prompts"], trainer.group_history[-1]["rewards"]):
        h = _md5(str([{"role": "user", "content": text}])) % 3
        assert len(rewards) == 4 and (h == 2 or rewards == [float(h == 0)] * 4)


def test_resample_filter_keeps_only_groups_with_spread(tiny, tmp_path):
    model, tok = tiny
    task = Arithmetic(digits=(1, 2))
    cfg = _small_cfg(zero_std_filter="resample", max_resample=3, n_train=30)
    trainer = make_trainer(model, tok, cfg, [task.rl_record(e) for e in task.train(30)], [hash_reward])
    kept = []
    original = trainer.compute_loss

    def spy_loss(model, inputs, *a, **kw):
        kept.append(inputs["advantages"].clone())
        return original(model, inputs, *a, **kw)

    trainer.compute_loss = spy_loss
    trainer.train()
    assert len(trainer.group_history) > 2  # extra generation rounds happened
    for adv in kept:  # every trained group has spread: no group of 4 all-zero advantages
        assert (adv.view(-1, 4).abs().amax(1) > 0).all()
    logs = [h for h in trainer.state.log_history if "filter/informative_groups" in h]
    assert len(logs) == 2 and all(0 < h["filter/informative_groups"] <= 1 for h in logs)


def test_reward_errors_surface_through_grpo(tiny):
    model, tok = tiny
    task = Arithmetic(digits=(1,))

    def broken(completions, **kw):
        return [float("nan")] * len(completions)

    trainer = make_trainer(
        model, tok, _small_cfg(steps=1), [task.rl_record(e) for e in task.train(12)], [checked_reward(broken)]
    )
    with pytest.raises(
        RewardError, match=r"'broken' returned nan at position 0 for prompt 'What is \d \+ \d\?'"
    ):
        trainer.train()


def test_probe_and_gradient_norms(tiny):
    model, tok = tiny
    task = Arithmetic(digits=(1,))
    exs = task.test(4)[1:]  # three prompts whose fake rewards give both kinds of group (with and without spread)
    p = probe(model, tok, task, exs, k=3, max_new_tokens=4, reward=hash_reward, progress=False)
    assert len(p.rewards) == 3 and all(len(r) == 3 for r in p.rewards)
    again = probe(model, tok, task, exs, k=3, max_new_tokens=4, reward=hash_reward, progress=False)
    assert again.texts == p.texts  # seeded
    trainer = make_trainer(
        model, tok, _small_cfg(), [task.rl_record(e) for e in task.train(12)], [hash_reward]
    )
    norms = prompt_gradient_norms(trainer, p, progress=False)
    assert len(norms) == 3 and {s == 0 for s in p.stats["std"]} == {True, False}  # both kinds measured
    for std, norm in zip(p.stats["std"], norms):
        assert (norm == 0.0) == (std == 0.0)
    with pytest.raises(ValueError, match="k >= 2"):
        probe(model, tok, task, exs, k=1)


def test_pipeline_with_warmstart_and_reuse(tmp_path):
    reg = Registry(tmp_path)
    cfg = dataclasses.replace(
        RftConfig.for_profile("smoke"), name="w", warmstart_fraction=0.25, steps=1, n_probe=2, grad_prompts=1
    )
    result = run(cfg, reg, progress=False)
    r = result.run
    assert (r.name, cfg.run_name("warmstart")) == ("smoke-w", "smoke-w-warmstart")  # <profile>-<name>[-stage]
    assert r.parent == "smoke-w-warmstart" and reg.get("smoke-w-warmstart").parent == "base-tiny"
    assert reg.get("smoke-w-warmstart").summary["examples"] == 4  # 25% of 16 inputs
    assert r.checkpoint is not None
    for key in ("probe_reward_start", "probe_zero_std_end", "seconds_per_step", "train_reward_last5"):
        assert key in result.summary
    assert run(cfg, reg).run.created == r.created  # a finished run is reused, not retrained
    with pytest.raises(
        RunError, match=r"run 'smoke-w' exists with a different config \(steps: 1 there, 2 now\)"
    ):
        run(dataclasses.replace(cfg, steps=2), reg)  # never silently the old run
    train, probes, groups = result.tables()
    assert list(train.index) == [1] and "frac_reward_zero_std_all_wrong" in train
    assert list(probes.index) == [0, 1] and len(probes.iloc[0]["probe/prompt_std"]) == 2
    assert len(probes.iloc[0]["probe/grad_norm"]) == 1 and "probe/grad_norm" not in probes.iloc[1].dropna()
    assert len(groups.loc[1, "groups/prompt_std"]) == 2  # 8 completions = 2 prompts of 4
    frame = result.frame()
    assert list(frame["step"]) == [0, 1] and set(frame["run"]) == {"smoke-w"}
    assert frame["mean_reward"].tolist() == probes["probe/mean_reward"].tolist()
    assert result.say().splitlines()[0] == f"run smoke-w ({r.path}):"
    raises, group, none = result.claims()
    assert "smoke-w: probe reward, step 1 minus step 0" in str(raises)
    assert group.startswith("group: ") and none.startswith("none: ")
    reg.delete("smoke-w")  # as if the RFT had been interrupted after its warm-start: that one is checked too
    with pytest.raises(
        RunError, match=r"run 'smoke-w-warmstart' exists with a different config \(examples: 4 there, 8"
    ):
        run(dataclasses.replace(cfg, warmstart_fraction=0.5), reg)


def test_run_takes_its_stages_as_parameters(tmp_path):
    """Fake stages in place of the SFT and GRPO: run() wires data, lineage, summaries and the result around them."""
    reg = Registry(tmp_path)
    cfg = RftConfig.for_profile("smoke", name="fake", warmstart_fraction=0.25, save_model=False)
    calls = []

    def fake_warm_start(cfg, model, tok, records, writer):
        calls.append(("warm_start", len(records), completion_text(records[0]["completion"])[:8]))
        writer.log({"loss": 0.5}, step=1)
        return model

    def fake_grpo(cfg, model, tok, task, train, probes, writer, *, progress=True):
        calls.append(("grpo", len(train), len(probes), progress))
        for step, mean in ((0, [0.0, 0.5]), (2, [0.25, 1.0])):
            stats = group_reward_stats([[m] * 2 for m in mean])
            writer.log(
                {
                    "probe/mean_reward": stats["mean_reward"],
                    "probe/mean_std": 0.0,
                    "probe/frac_zero_std": 1.0,
                    "probe/frac_zero_std_all_right": stats["frac_all_right"],
                    "probe/frac_zero_std_all_wrong": stats["frac_all_wrong"],
                    "probe/prompt_mean": mean,
                    "probe/prompt_std": [0.0, 0.0],
                },
                step=step,
            )
        return model, {"probe_reward_start": 0.25, "completions_per_rank": [16]}

    result = run(cfg, reg, progress=False, warm_start=fake_warm_start, grpo=fake_grpo)
    assert calls == [("warm_start", 4, "Answer: "), ("grpo", 16, 4, False)]  # answer-only targets by default
    assert (
        reg.get("smoke-fake-warmstart").parent == "base-tiny" and result.run.parent == "smoke-fake-warmstart"
    )
    assert reg.get("smoke-fake-warmstart").metrics()[0]["loss"] == 0.5
    assert result.summary == {"probe_reward_start": 0.25, "completions_per_rank": [16]}
    assert result.frame()["mean_reward"].tolist() == [0.25, 0.625] and list(result.frame()["step"]) == [0, 2]
    assert result.claim_rl_raises_reward().effect == pytest.approx(0.375)
    (raises,) = result.claims()  # no gradient norms logged: the zero-gradient claim is not among them
    assert raises.effect == pytest.approx(0.375)
    assert (
        result.say()
        == f"run smoke-fake ({result.run.path}):\n  probe_reward_start: 0.250\n  completions_per_rank: [16]"
    )
    assert run(cfg, reg, grpo=None).run.created == result.run.created  # reused: no stage runs


def test_cli_on_gsm8k_fixture(tmp_path, capsys):
    from nbkit.cli import main

    f = tmp_path / "rft.yaml"
    f.write_text(
        f"profile: smoke\ntask: gsm8k\ndata: {FIXTURES / 'gsm8k_sample.jsonl'}\nn_train: 8\nn_probe: 2\n"
        "steps: 1\ngrad_prompts: 1\nname: gsm\nsave_model: false\n"
    )
    assert main(["rft", "--config", str(f), "--runs", str(tmp_path / "runs")]) == 0
    assert "run smoke-gsm" in capsys.readouterr().out
    assert Registry(tmp_path / "runs").get("smoke-gsm").kind == "rft"
    f.write_text("profile: smoke\nbatch_size: 6\n")
    assert main(["rft", "--config", str(f)]) == 2
    err = capsys.readouterr().err
    assert (
        "nbkit: " in err
        and "batch_size=6 is not a multiple of group_size=4" in err
        and "Traceback" not in err
    )


# --------------------------------------------------------------------------------------------- slow, real


@pytest.mark.slow
def test_warmstart_lowers_zero_std_share_on_smollm(tmp_path):
    """The paper's remedy on the embedded model: a 10% SFT warm-start leaves fewer all-wrong (zero-std) probe
    prompts at the start of RFT than the base model has."""
    reg = Registry(tmp_path)
    base = dataclasses.replace(
        RftConfig.for_profile("cpu"), steps=4, probe_every=4, grad_prompts=0, save_model=False
    )
    alone = run(dataclasses.replace(base, name="alone"), reg, progress=False)
    warm = run(dataclasses.replace(base, name="warm", warmstart_fraction=0.1), reg, progress=False)
    assert warm.summary["probe_zero_std_start"] < alone.summary["probe_zero_std_start"]
    assert warm.summary["probe_reward_start"] > alone.summary["probe_reward_start"]
