"""The RFT pipeline: `run(cfg, registry)`, each stage a run in the registry.

1. optional warm-start: SFT for `warmstart_steps` steps on `warmstart_fraction` of the RFT inputs (the paper's
   remedy: a little SFT raises the reward std of inputs the model always gets wrong, so they get gradient again);
   the stage `warm_start`, registered as `cfg.run_name("warmstart")`, e.g. "cpu-rft-warm-warmstart";
2. RFT with TRL's GRPOTrainer (`RftTrainer`), probed on a fixed held-out set before training and every
   `probe_every` steps (`ProbeCallback`): the stage `grpo`, registered as `cfg.run_name()`, e.g. "cpu-rft-warm".
Both start from the lineage root `base_run(registry, model)`, "base-{model}". A stage passed in replaces the real
one (tests pass fakes): `run(cfg, reg, grpo=my_fake)`.

Simplifications vs the paper: binary correctness reward instead of a learned reward model; GRPO with
group-normalized advantages instead of PPO with a value baseline; gradient norms of the sampled objective.

    nbkit rft --config configs/rft_arithmetic_cpu.yaml
    torchrun --nproc_per_node 2 -m nbkit.cli rft --config configs/rft_arithmetic_cpu.yaml   # 2 CPU processes
    accelerate launch --num_processes 4 -m nbkit.cli rft --config configs/rft_gsm8k_gpu.yaml  # 4 GPUs
"""

from __future__ import annotations

import dataclasses
import time

from nbkit import dist
from nbkit.experiments.rft.config import RftConfig
from nbkit.experiments.rft.data import build_task, rl_records, warmstart_records
from nbkit.experiments.rft.probe import ProbeCallback
from nbkit.experiments.rft.result import RftResult
from nbkit.experiments.rft.rewards import checked_reward
from nbkit.experiments.rft.trainer import make_trainer
from nbkit.runs import base_run

# ------------------------------------------------------------------------------------------------ the stages


def warm_start(cfg: RftConfig, model, tok, records: list[dict], writer):
    """Stage 1: SFT on the warm-start rows, logging to `writer`; returns the trained model."""
    from nbkit.train import sft

    batch_size = min(8, len(records))
    trainer = sft(
        model,
        tok,
        records,
        steps=cfg.warmstart_steps,
        lr=cfg.warmstart_lr,
        batch_size=batch_size,
        run=writer,
        seed=cfg.seed,
    )
    return trainer.model


def grpo(cfg: RftConfig, model, tok, task, train: list, probes: list, writer, *, progress: bool = True):
    """Stage 2: GRPO on `train` with probes on `probes`, logging to `writer`; returns (trained model, summary)."""
    from nbkit.train import release

    reward = checked_reward(task.reward, name=f"{task.name}_correct")
    probe_cb = ProbeCallback(
        writer,
        tok,
        task,
        probes,
        cfg.probe_k,
        cfg.max_completion_length,
        cfg.probe_every,
        grad_prompts=cfg.grad_prompts,
        scale=cfg.scale_rewards,
        temperature=cfg.temperature,
        seed=cfg.seed,
        reward=reward,
        system=cfg.system,
        progress=progress,
    )
    records = rl_records(task, train, cfg)
    trainer = make_trainer(model, tok, cfg, records, [reward], run=writer, callbacks=[probe_cb])
    start = time.perf_counter()
    trainer.train()
    release(trainer.model)
    seconds = time.perf_counter() - start
    # the completions each rank generated and scored: TRL's sampler gives every rank its own prompts
    per_rank = dist.gather([sum(h["local_completions"] for h in trainer.group_history)])
    return trainer.model, {**summarize(trainer, probe_cb, seconds, cfg), "completions_per_rank": per_rank}


def summarize(trainer, probe_cb, seconds: float, cfg: RftConfig) -> dict:
    """Scalars for the registry summary: probe stats at the start and the end, TRL's last rewards, timing."""
    train_seconds = seconds - probe_cb.seconds
    out = {"seconds": round(seconds, 1), "seconds_per_step": round(train_seconds / max(1, cfg.steps), 2)}
    if probe_cb.history:
        for tag, (_, p) in (("start", probe_cb.history[0]), ("end", probe_cb.history[-1])):
            s = p.stats
            out[f"probe_reward_{tag}"] = s["mean_reward"]
            out[f"probe_zero_std_{tag}"] = s["frac_zero_std"]
            out[f"probe_all_wrong_{tag}"] = s["frac_all_wrong"]
            out[f"probe_all_right_{tag}"] = s["frac_all_right"]
        out["probe_seconds"] = round(
            probe_cb.seconds, 1
        )  # probes and gradient norms, not in seconds_per_step
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    if rewards:
        out["train_reward_first5"] = sum(rewards[:5]) / len(rewards[:5])
        out["train_reward_last5"] = sum(rewards[-5:]) / len(rewards[-5:])
    return out


# -------------------------------------------------------------------------------------------------- the plan


def dry_run(cfg: RftConfig, registry=None) -> str:
    """What `run(cfg, registry)` would do, without a model: the prompts it draws, the runs it would register with
    their optimizer steps, and which of them the registry holds already (`nbkit rft --dry-run`)."""
    from nbkit.experiments import by_difficulty, n_steps, plan_text
    from nbkit.runs import Registry, base_run_name

    reg, task = registry or Registry(), build_task(cfg)
    train = task.train(cfg.n_train)
    probes = task.test(cfg.n_probe) if cfg.n_probe else []
    runs = [(base_run_name(cfg.model), "base", f"{cfg.model} as it is", 0)]
    data = [
        f"model: {cfg.model} (not loaded); task: {cfg.task} "
        + (f"digits {cfg.digits}" if cfg.task == "arithmetic" else f"from {cfg.data}")
    ]
    if cfg.warmstart_fraction > 0:
        rows = len(warmstart_records(task, train, cfg))
        runs.append(
            (
                cfg.run_name("warmstart"),
                "sft",
                f"SFT on {rows} rows, {n_steps(cfg.warmstart_steps)}",
                cfg.warmstart_steps,
            )
        )
        data.append(f"warm-start rows: the first {rows} RFT prompts with their answers")
    prompts = cfg.batch_size // cfg.group_size
    when = (
        f"at the start, every {cfg.probe_every} steps and the end"
        if cfg.probe_every
        else "at the start and the end"
    )
    what = f"GRPO, {n_steps(cfg.steps)} of {prompts} prompts x {cfg.group_size} completions; probes {when}"
    runs.append((cfg.run_name(), "rft", what, cfg.steps))
    data += [
        f"RFT prompts: {by_difficulty(train)}",
        f"probe prompts (held out): {by_difficulty(probes)}, {cfg.probe_k} samples each",
    ]
    return plan_text(data, runs, reg)


# -------------------------------------------------------------------------------------------------- the run


def run(
    cfg: RftConfig, registry=None, *, progress: bool = True, warm_start=warm_start, grpo=grpo
) -> RftResult:
    """Warm-start (optional) then RFT, as registry runs; returns the RftResult of the RFT run (on every rank; the
    main process alone writes the registry). A finished run of the same name is reused when its config matches and
    refused, in one line, when it does not (`Registry.ensure`). warm_start, grpo: the stages (see above),
    replaceable by fakes in tests."""
    from nbkit.models import load
    from nbkit.runs import Registry

    reg = registry or Registry()
    task = build_task(cfg)
    train = task.train(cfg.n_train)
    probes = task.test(cfg.n_probe) if cfg.n_probe else []
    parent, trained = base_run(reg, cfg.model), None  # trained: (model, tok) a stage left in memory

    if cfg.warmstart_fraction > 0:
        records = warmstart_records(task, train, cfg)
        share = len(records) / len(train)
        ws_config = dict(
            base_model=cfg.model,
            examples=len(records),
            share=share,
            steps=cfg.warmstart_steps,
            lr=cfg.warmstart_lr,
        )

        def build_warm_start(writer):
            nonlocal trained
            model, tok = load(cfg.model, dtype="float32")
            start = time.perf_counter()
            trained = warm_start(cfg, model, tok, records, writer), tok
            writer.save_model(*trained)
            writer.set_summary(examples=len(records), share=share, seconds=time.perf_counter() - start)

        parent = reg.ensure(cfg.run_name("warmstart"), "sft", ws_config, build_warm_start, parent).name

    def build_rft(writer):  # other ranks train along with a writer that records nothing (runs.NullRun)
        model, tok = trained or reg.load(parent, dtype="float32")
        model, summary = grpo(cfg, model, tok, task, train, probes, writer, progress=progress)
        writer.set_summary(**summary)
        if cfg.save_model:
            writer.save_model(model, tok)

    done = reg.ensure(cfg.run_name(), "rft", dataclasses.asdict(cfg), build_rft, parent)
    return RftResult(done, cfg)
