"""nbkit.dist on one process, and the experiments under `torchrun --nproc_per_node 2` (gloo, CPU)."""

import json
import os
import subprocess
import sys

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from nbkit import dist
from nbkit.runs import NullRun


def test_bounds_by_hand():
    assert [dist.bounds(5, r, 2) for r in range(2)] == [(0, 3), (3, 5)]
    assert [dist.bounds(2, r, 3) for r in range(3)] == [(0, 1), (1, 2), (2, 2)]  # a rank may get nothing


@given(st.integers(0, 50), st.integers(1, 8))
def test_blocks_cover_every_item_once_in_order(n, world):
    blocks = [dist.bounds(n, r, world) for r in range(world)]
    assert blocks[0][0] == 0 and blocks[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))  # contiguous: concatenation restores order
    sizes = [stop - start for start, stop in blocks]
    assert max(sizes) - min(sizes) <= 1


def test_one_process_is_rank_0_of_1_and_touches_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert (dist.rank(), dist.world(), dist.is_main()) == (0, 1, True)
    assert dist.shard([1, 2, 3]) == [1, 2, 3] and dist.gather([1, 2]) == [1, 2] and dist.broadcast("x") == "x"
    dist.barrier()
    null = NullRun()
    null.log({"a": 1})
    null.set_summary(a=1)
    assert null.path.is_dir()


# ------------------------------------------------------------------ the experiments under torchrun (2 CPU ranks)
# Each test runs the experiment's CLI under `torchrun --nproc_per_node 2` (gloo) into its own registry, and the
# same config in this process into another, then compares. What must match: whatever happens before any training
# (rank 0 alone, same seed, same weights). What differs: training, because `batch_size` is per process, so every
# optimizer step of the 2-process run sees twice the examples (DDP averages the two ranks' gradients).


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "NBKIT_WANDB": "off", "OMP_NUM_THREADS": "1", "NBKIT_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    proc = subprocess.run(
        [*cmd, "-m", "nbkit.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def registered(reg) -> set[str]:
    assert not any((reg.root / ".pending").glob("*")), "a rank left a half-written run behind"
    return set(reg.names())


def test_rft_on_two_processes(tmp_path):
    from nbkit.experiments.rft import RftConfig, run
    from nbkit.experiments.rft.result import run_tables
    from nbkit.runs import Registry

    keys = dict(name="mp", save_model=False, steps=1, n_probe=2, grad_prompts=1)
    (tmp_path / "rft.yaml").write_text(json.dumps({"profile": "smoke", **keys}))
    proc = torchrun("rft", "--config", str(tmp_path / "rft.yaml"), "--runs", str(tmp_path / "two"))
    assert proc.stdout.count("run smoke-mp (") == 1  # rank 0 alone reports
    two, one = Registry(tmp_path / "two"), Registry(tmp_path / "one")
    cfg = RftConfig.for_profile("smoke", **keys)
    run(cfg, one, progress=False)
    assert registered(two) == registered(one) == {"base-tiny", "smoke-mp"}
    a, b = one.get("smoke-mp"), two.get("smoke-mp")

    # each rank generated and scored its own batch_size completions per step
    assert a.summary["completions_per_rank"] == [cfg.steps * cfg.batch_size]
    assert b.summary["completions_per_rank"] == [cfg.steps * cfg.batch_size] * 2
    groups_a, groups_b = run_tables(a)[2], run_tables(b)[2]
    n_groups = cfg.batch_size // cfg.group_size
    assert {len(x) for x in groups_a["groups/prompt_std"]} == {n_groups}
    assert {len(x) for x in groups_b["groups/prompt_std"]} == {2 * n_groups}  # TRL gathers both ranks' groups

    # the probe before training: rank 0, the same model and seed -> the same samples
    start_a, start_b = run_tables(a)[1].loc[0], run_tables(b)[1].loc[0]
    for key in ("probe/questions", "probe/first_samples", "probe/prompt_mean", "probe/prompt_std"):
        assert start_a[key] == start_b[key], key
    # per-prompt gradient norms go through the model outside DDP: measured on one process only
    assert "probe/grad_norm" in start_a and pd.isna(start_b.get("probe/grad_norm"))


def test_budget_on_two_processes(tmp_path):
    from nbkit.config import from_dict
    from nbkit.experiments.budget import BudgetConfig, plan, run
    from nbkit.experiments.budget.result import eval_rows
    from nbkit.runs import Registry

    keys = {"profile": "smoke", "budgets": [4], "fractions": [0.0], "eval_n": 4, "max_new_tokens": 4}
    (tmp_path / "budget.yaml").write_text(json.dumps(keys))
    proc = torchrun("budget", "--config", str(tmp_path / "budget.yaml"), "--runs", str(tmp_path / "two"))
    assert proc.stdout.count("base model accuracy") == 1
    two, one = Registry(tmp_path / "two"), Registry(tmp_path / "one")
    cfg = from_dict(keys, BudgetConfig)
    sweep = plan(cfg, one)
    run(cfg, one, progress=False)
    names = registered(one)
    assert registered(two) == names and len(names) == 4  # base-tiny, pairs, base, base-dpo4: each once

    # evaluation was sharded: each rank scored its contiguous half of the 4 test problems
    for name in names - {sweep.names["pairs"], "base-tiny"}:
        assert one.get(name).summary["eval_per_rank"] == [4]
        assert two.get(name).summary["eval_per_rank"] == [2, 2], name

    # drawn once, on rank 0, with the same seed: the same preference pairs
    pairs = sweep.names["pairs"]
    assert (one.get(pairs).path / "pairs.jsonl").read_text() == (
        two.get(pairs).path / "pairs.jsonl"
    ).read_text()
    # the base model, greedy, gathered in order: the same answers to the same problems
    base = sweep.names["base"]
    assert eval_rows(one, base) == eval_rows(two, base)


def test_star_on_two_processes(tmp_path):
    """Both registries start from the same primer (trained here, on one process, and copied): what follows it
    before any training must match. Iteration 1's fine-tune then differs (batch_size is per process)."""
    import shutil

    from nbkit.experiments.star import StarConfig, run
    from nbkit.runs import Registry

    one, two = Registry(tmp_path / "one"), Registry(tmp_path / "two")
    cfg = StarConfig.for_profile("smoke", name="mp", iterations=1)
    result = run(cfg, one, progress=False)
    for name in ("base-tiny", "smoke-mp-primer"):
        shutil.copytree(one.root / name, two.root / name)
    proc = torchrun(
        "star", "--profile", "smoke", "--name", "mp", "--iterations", "1", "--runs", str(two.root)
    )
    assert proc.stdout.count("smoke-mp-iter1: accuracy") == 1  # rank 0 alone reports
    names = {"base-tiny", "smoke-mp-primer", "smoke-mp-iter0", "smoke-mp-iter1"}
    assert registered(one) == registered(two) == names  # each run registered once

    # the loop reached its gather and training step: something was kept
    a, b = one.get("smoke-mp-iter1").summary, two.get("smoke-mp-iter1").summary
    assert result.stopped is None and a["kept"] > 0
    # the work was split: each rank sampled and evaluated its own contiguous shard
    assert a["sampled_per_rank"] == [cfg.problems_per_iteration]
    assert b["sampled_per_rank"] == [cfg.problems_per_iteration // 2] * 2
    assert b["eval_per_rank"] == [cfg.test_problems // 2] * 2
    # the same primer, greedy decoding, shards gathered in order: the same held-out answers at iteration 0, and
    # the same problems kept (by their own answer or rationalized) with the same rationales in iteration 1
    assert (one.root / "smoke-mp-iter0" / "eval.jsonl").read_text() == (
        two.root / "smoke-mp-iter0" / "eval.jsonl"
    ).read_text()
    assert (a["correct"], a["rationalized"]) == (b["correct"], b["rationalized"])
    kept = [(one if i == 0 else two).root / "smoke-mp-iter1" / "rationales.jsonl" for i in range(2)]
    assert kept[0].read_text() == kept[1].read_text()
