"""The RFT pipeline: `run(cfg, registry)`, each stage a run in the registry.

1. optional warm-start: SFT for `warmstart_steps` steps on `warmstart_fraction` of the RFT inputs (the paper's
   remedy: a little SFT raises the reward std of inputs the model always gets wrong, so they get gradient again);
   the stage `warm_start`, registered as "{name}-warmstart";
2. RFT with TRL's GRPOTrainer (`RftTrainer`), probed on a fixed held-out set before training and every
   `probe_every` steps (`ProbeCallback`): the stage `grpo`, registered as "{name}".
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
from nbkit.experiments.rft.probe import ProbeCallback
from nbkit.experiments.rft.result import RftResult
from nbkit.experiments.rft.rewards import checked_reward
from nbkit.experiments.rft.trainer import make_trainer
from nbkit.runs import base_run
from nbkit.tasks import make_task


def build_task(cfg: RftConfig):
    """The task the config names (through `nbkit.tasks.make_task`)."""
    if cfg.task == "arithmetic":
        return make_task("arithmetic", digits=tuple(cfg.digits), seed=cfg.seed)
    return make_task("gsm8k", source=cfg.data, config=cfg.data_config)


def rl_records(task, examples, cfg: RftConfig) -> list[dict]:
    """GRPO rows (prompt as chat, plus the columns the reward reads), with the config's system prompt."""
    return [{**task.rl_record(ex), "prompt": task.chat(ex, system=cfg.system)} for ex in examples]


def warmstart_records(task, examples, cfg: RftConfig) -> list[dict]:
    """SFT rows for the first `warmstart_fraction` of the RFT inputs (at least one), same prompts as the RFT."""
    n = max(1, round(cfg.warmstart_fraction * len(examples)))
    rationale = None if cfg.rationale else ""  # "": the answer line only, e.g. "Answer: 132"
    return [
        {**task.sft_record(ex, rationale), "prompt": task.chat(ex, system=cfg.system)} for ex in examples[:n]
    ]


# ------------------------------------------------------------------------------------------------ the stages


def warm_start(model, tok, records: list[dict], cfg: RftConfig, run):
    """Stage 1: SFT on the warm-start rows, logging to `run`; returns the trained model."""
    from nbkit.train import sft

    trainer = sft(model, tok, records, steps=cfg.warmstart_steps, lr=cfg.warmstart_lr,
                  batch_size=min(8, len(records)), run=run, seed=cfg.seed)  # fmt: skip
    return trainer.model


def grpo(model, tok, cfg: RftConfig, task, train: list, probes: list, run, progress: bool = True):
    """Stage 2: GRPO on `train` with probes on `probes`, logging to `run`; returns (trained model, summary dict)."""
    from nbkit.train import release

    reward = checked_reward(task.reward, name=f"{task.name}_correct")
    probe_cb = ProbeCallback(
        run, tok, task, probes, cfg.probe_k, cfg.max_completion_length, cfg.probe_every,
        grad_prompts=cfg.grad_prompts, scale=cfg.scale_rewards, temperature=cfg.temperature, seed=cfg.seed,
        reward=reward, system=cfg.system, progress=progress,
    )  # fmt: skip
    records = rl_records(task, train, cfg)
    trainer = make_trainer(model, tok, cfg, records, [reward], run=run, callbacks=[probe_cb])
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


# -------------------------------------------------------------------------------------------------- the run


def _warm_started(reg, cfg: RftConfig, task, train: list, model, tok, parent, stage):
    """(model, tokenizer, parent name) after the warm-start: trained by `stage` and registered as
    "{name}-warmstart", or read back from an earlier run of the same config (e.g. the RFT was interrupted)."""
    ws_name = f"{cfg.name}-warmstart"
    records = warmstart_records(task, train, cfg)
    share = len(records) / len(train)
    ws_cfg = {"base_model": cfg.model, "examples": len(records), "share": share,
              "steps": cfg.warmstart_steps, "lr": cfg.warmstart_lr}  # fmt: skip
    if dist.broadcast(reg.exists(ws_name)):
        model, tok = reg.load(reg.reuse(ws_name, ws_cfg).name, dtype="float32")
        return model, tok, ws_name
    with reg.writer(ws_name, "sft", ws_cfg, parent) as ws_run:
        start = time.perf_counter()
        model = stage(model, tok, records, cfg, ws_run)
        ws_run.save_model(model, tok)
        ws_run.set_summary(examples=len(records), share=share, seconds=time.perf_counter() - start)
    return model, tok, ws_name


def run(
    cfg: RftConfig, registry=None, progress: bool = True, *, warm_start=warm_start, grpo=grpo
) -> RftResult:
    """Warm-start (optional) then RFT, as registry runs; returns the RftResult of the RFT run (on every rank; rank 0
    alone writes the registry). A finished run under `cfg.name` is reused when its config matches and refused, in
    one line, when it does not. warm_start, grpo: the stages (see above), replaceable by fakes in tests."""
    from nbkit.models import load
    from nbkit.runs import Registry

    reg = registry or Registry()
    if dist.broadcast(reg.exists(cfg.name)):
        return RftResult(
            reg.reuse(cfg.name, dataclasses.asdict(cfg)), cfg
        )  # refused if made with another config
    task = build_task(cfg)
    train = task.train(cfg.n_train)
    probes = task.test(cfg.n_probe) if cfg.n_probe else []
    parent = base_run(reg, cfg.model)
    model, tok = load(cfg.model, dtype="float32")
    if cfg.warmstart_fraction > 0:
        model, tok, parent = _warm_started(reg, cfg, task, train, model, tok, parent, warm_start)
    # ranks other than 0 train along with a run that records nothing (runs.NullRun)
    with reg.writer(cfg.name, "rft", dataclasses.asdict(cfg), parent) as rft_run:
        model, summary = grpo(model, tok, cfg, task, train, probes, rft_run, progress)
        rft_run.set_summary(**summary)
        if cfg.save_model:
            rft_run.save_model(model, tok)
    dist.barrier()  # rank 0 has committed the run
    return RftResult(reg.get(cfg.name), cfg)
