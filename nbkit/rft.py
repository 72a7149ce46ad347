"""Reinforcement fine-tuning (GRPO through TRL) with the diagnostics of Razin et al., "Vanishing Gradients in
Reinforcement Finetuning of Language Models" (ICLR 2024): why RFT stalls, and the fix.

The pipeline (`run_rft`), each stage a run in the registry:
1. optional warm-start: SFT for `warmstart_steps` steps on `warmstart_fraction` of the RFT inputs (the paper's
   remedy: a little SFT raises the reward std of inputs the model always gets wrong, so they get gradient again);
2. RFT with TRL's GRPOTrainer. `RftTrainer` adds, per step, the share of zero-std groups split into all-right and
   all-wrong (logged next to TRL's `reward_std` and `frac_reward_zero_std`) and the per-prompt rewards, plus a
   zero-std filter switch; `ProbeCallback` (nbkit.diagnostics) samples k completions per prompt on a fixed probe set
   before training and every `probe_every` steps, and measures per-prompt gradient norms at the start.

The zero-std filter (TRL 1.16 has no option for it: huggingface/trl#3708 is open, #3758 was closed unmerged):
- "drop": groups whose rewards are all equal are removed from the batch after scoring. Their advantages are 0, so
  this does not change the direction of the update; it saves their forward/backward pass and stops them diluting
  DAPO's per-token normalization.
- "resample": as "drop", then fresh prompts from the training set are generated and scored (at most
  `max_resample` rounds) to refill the batch with groups that have spread: DAPO's dynamic sampling.
Both need a single process (no multi-GPU), `beta: 0` (TRL's default) and no vLLM/multimodal inputs.

Simplifications vs the paper: binary correctness reward instead of a learned reward model; GRPO with
group-normalized advantages instead of PPO with a value baseline; gradient norms of the sampled objective.

    nbkit rft --config configs/rft_arithmetic_cpu.yaml
    torchrun --nproc_per_node 2 -m nbkit.cli rft --config configs/rft_arithmetic_cpu.yaml   # 2 CPU processes
    accelerate launch --num_processes 4 -m nbkit.cli rft --config configs/rft_gsm8k_gpu.yaml  # 4 GPUs
"""

from __future__ import annotations

import dataclasses
import random
import re
import time
from dataclasses import dataclass, field

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer

from nbkit.config import with_profile
from nbkit.diagnostics import ProbeCallback, checked_reward, group_reward_stats, prompt_text, zero_spread
from nbkit.errors import ConfigError, NbkitError

FILTERS = ("off", "drop", "resample")


@dataclass
class RftConfig:
    model: str = field(default="smollm2-135m", metadata={"help": "short name, hub id or checkpoint dir"})
    task: str = field(default="arithmetic", metadata={"help": "'arithmetic' or 'gsm8k' (GSM8K-format data)"})
    digits: list[int] = field(
        default_factory=lambda: [1, 2], metadata={"help": "arithmetic: operand digit counts"}
    )
    data: str | None = field(default=None, metadata={"help": "gsm8k: a .jsonl file or a hub dataset name"})
    data_config: str | None = field(default=None, metadata={"help": "gsm8k: hub dataset config, e.g. 'main'"})
    n_train: int = field(default=120, metadata={"help": "RFT inputs (training prompts)"})
    n_probe: int = field(default=16, metadata={"help": "held-out prompts probed for per-prompt reward stats"})
    steps: int = field(default=30, metadata={"help": "RFT optimizer steps"})
    batch_size: int = field(
        default=8,
        metadata={"help": "completions per optimizer step (per device) = prompts per step x group_size"},
    )
    group_size: int = field(default=4, metadata={"help": "completions sampled per prompt (GRPO's group, k)"})
    lr: float = field(default=3e-5, metadata={"help": "RFT learning rate"})
    max_completion_length: int = field(default=8, metadata={"help": "max new tokens per completion"})
    system: str | None = field(
        default=None, metadata={"help": "system prompt for every chat (None: the chat template's default)"}
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature in RFT and probes"})
    scale_rewards: str = field(
        default="group", metadata={"help": "advantage scaling: 'group', 'batch', 'none'"}
    )
    lora: bool = field(
        default=False,
        metadata={"help": "RFT trains LoRA adapters instead of all weights (warm-start: always full)"},
    )
    warmstart_fraction: float = field(
        default=0.0, metadata={"help": "share of the RFT inputs used for an SFT warm-start (0 = none)"}
    )
    warmstart_steps: int = field(default=10, metadata={"help": "SFT warm-start optimizer steps"})
    warmstart_lr: float = field(default=1e-4, metadata={"help": "SFT warm-start learning rate"})
    rationale: bool = field(
        default=False,
        metadata={"help": "warm-start targets include the task's rationale (else the answer only)"},
    )
    zero_std_filter: str = field(
        default="off", metadata={"help": "'off', 'drop' or 'resample' groups whose rewards are all equal"}
    )
    max_resample: int = field(default=4, metadata={"help": "resample: max extra generation rounds per step"})
    probe_k: int = field(default=8, metadata={"help": "samples per probe prompt"})
    probe_every: int = field(
        default=0,
        metadata={"help": "also probe every N steps during training (0: only at the start and the end)"},
    )
    grad_prompts: int = field(default=8, metadata={"help": "probe prompts whose gradient norm is measured"})
    name: str = field(
        default="rft", metadata={"help": "run name in the registry (warm-start: NAME-warmstart)"}
    )
    save_model: bool = field(default=True, metadata={"help": "save the RFT checkpoint in the registry"})
    seed: int = field(default=0, metadata={"help": "seed for data, sampling and training"})
    profile: str | None = field(
        default=None,
        metadata={"help": "smoke | cpu | gpu: the row of PROFILES applied (None: these defaults)"},
    )

    def __post_init__(self):
        self.digits = [int(d) for d in self.digits]
        if self.group_size < 2:
            raise ConfigError(
                f"group_size={self.group_size}: GRPO compares completions of the same prompt, so it needs at "
                f"least 2 (with 1 every group has zero reward std and nothing is learned); set group_size >= 2"
            )
        if self.batch_size < self.group_size or self.batch_size % self.group_size:
            fits = [d for d in range(2, self.batch_size + 1) if self.batch_size % d == 0]
            lo = max(self.group_size, self.batch_size // self.group_size * self.group_size)
            raise ConfigError(
                f"batch_size={self.batch_size} is not a multiple of group_size={self.group_size}: each step trains on "
                f"batch_size completions made of whole groups (group_size completions of one prompt), i.e. "
                f"batch_size / group_size prompts per step. Set batch_size to {lo} or {lo + self.group_size}"
                + (f", or group_size to one of {fits}" if fits else "")
            )
        if self.task not in {"arithmetic", "gsm8k"}:
            raise ConfigError(f"task={self.task!r}: choose 'arithmetic' or 'gsm8k'")
        if self.task == "gsm8k" and not self.data:
            raise ConfigError(
                "task=gsm8k needs data: a .jsonl file or a hub dataset name (e.g. openai/gsm8k)"
            )
        if not 0.0 <= self.warmstart_fraction <= 1.0:
            raise ConfigError(f"warmstart_fraction={self.warmstart_fraction} must be in [0, 1] (0.1 = 10%)")
        if self.zero_std_filter not in FILTERS:
            raise ConfigError(f"zero_std_filter={self.zero_std_filter!r}: choose one of {', '.join(FILTERS)}")
        if self.scale_rewards not in {"group", "batch", "none"}:
            raise ConfigError(f"scale_rewards={self.scale_rewards!r}: choose 'group', 'batch' or 'none'")
        if self.steps < 1 or self.n_train < self.batch_size // self.group_size:
            raise ConfigError(
                f"steps={self.steps} and n_train={self.n_train}: need steps >= 1 and at least one step's "
                f"prompts (batch_size / group_size = {self.batch_size // self.group_size})"
            )
        if self.n_probe and self.probe_k < 2:
            raise ConfigError(f"probe_k={self.probe_k}: a reward std needs at least 2 samples per prompt")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ConfigError(f"name={self.name!r}: use letters, digits, '-', '_', '.'")

    @classmethod
    def for_profile(cls, profile: str, /, **overrides) -> RftConfig:
        """The config of `profile` (a row of PROFILES), then `overrides`, e.g. for_profile("smoke", steps=1)."""
        return with_profile(cls, PROFILES, profile, **overrides)


# Each profile is a row of overrides of RftConfig's defaults.
# smoke: tiny model, 2 steps (seconds). cpu: SmolLM2-135M on 1-2 digit sums (minutes). gpu: Qwen2.5-0.5B.
# cpu, measured (benchmarks/rft_warmstart_gain.py; table in the 02 notebook): the SmolLM2-135M base answers 1-2 digit
# sums in 6 tokens almost never (probe reward 0.04, 88% of prompts all wrong); one SFT step (8 examples) gives
# spread, after which GRPO raises the held-out reward. Groups of 4, not 8: with 8 samples the base finds a right
# answer on enough 1-digit prompts to learn almost as fast unaided. 20 steps: in 30-step runs the warm-started probe
# reward was 0.13 -> 0.63 by step 20 and 0.63 at 30, and RFT alone 0.04 -> 0.13 at both. 32 probe prompts x 8 samples
# every 10 steps feed the signal map.
# fmt: off
PROFILES = {
    "smoke": dict(model="tiny", n_train=16, n_probe=4, steps=2, batch_size=8, group_size=4, lr=1e-4,
                  max_completion_length=6, probe_k=4, grad_prompts=2, warmstart_steps=2, max_resample=1),
    "cpu": dict(system="You are a helpful assistant.", max_completion_length=6, steps=16, batch_size=32,
                group_size=4, n_probe=32, probe_k=8, probe_every=8, grad_prompts=16, max_resample=2,
                warmstart_steps=1),
    "gpu": dict(model="qwen2.5-0.5b", digits=[2, 3], n_train=2000, n_probe=64, steps=200, batch_size=64,
                group_size=8, lr=1e-5, max_completion_length=16, probe_every=25, grad_prompts=32),
}
# fmt: on


# ------------------------------------------------------------------------------------------------ the trainer


# pad value and side of each per-row tensor in a GRPO batch, for splicing groups from several generation rounds
_PADDING = {
    "prompt_ids": ("left", None),  # None: the tokenizer's pad id
    "prompt_mask": ("left", 0),
    "completion_ids": ("right", None),
    "completion_mask": ("right", 0),
    "old_per_token_logps": ("right", 0.0),
    "ref_per_token_logps": ("right", 0.0),
    "sampling_per_token_logps": ("right", 0.0),
    "tool_mask": ("right", 1),
}


def take_groups(batches: list[dict], picks: list[tuple[int, int]], group_size: int, pad_id: int) -> dict:
    """A GRPO batch made of whole groups taken from several batches: picks = [(batch index, group index), ...].

    Tensors of shape (rows, T) are re-padded to a common width (prompts on the left, completions on the right);
    `num_items_in_batch` (DAPO's token count) is recomputed for the rows kept.
    """
    out: dict = {}
    for key, first in batches[0].items():
        if key == "num_items_in_batch" or first is None:
            out[key] = first
            continue
        if not isinstance(first, torch.Tensor) or first.ndim > 2 or (first.ndim == 2 and key not in _PADDING):
            raise NbkitError(
                f"zero_std_filter cannot splice the GRPO batch field {key!r}; set zero_std_filter: off"
            )
        parts = [batches[b][key][g * group_size : (g + 1) * group_size] for b, g in picks]
        if first.ndim == 1:
            out[key] = torch.cat(parts)
            continue
        side, value = _PADDING[key]
        value = pad_id if value is None else value
        width = max(p.shape[1] for p in parts)
        padded = []
        for p in parts:
            fill = p.new_full((p.shape[0], width - p.shape[1]), value)
            padded.append(torch.cat([fill, p] if side == "left" else [p, fill], dim=1))
        out[key] = torch.cat(padded)
    loss_mask = out["completion_mask"]
    if out.get("tool_mask") is not None:
        loss_mask = loss_mask * out["tool_mask"]
    out["num_items_in_batch"] = loss_mask.sum()
    return out


class RftTrainer(GRPOTrainer):
    """TRL's GRPOTrainer plus, at each step, the zero-std groups split into all-right and all-wrong (logged next to
    TRL's `frac_reward_zero_std`), each group's rewards (`group_history`), and the zero-std filter."""

    def __init__(self, *args, zero_std_filter: str = "off", max_resample: int = 4, **kwargs):
        super().__init__(*args, **kwargs)
        if zero_std_filter not in FILTERS:
            raise ConfigError(f"zero_std_filter={zero_std_filter!r}: choose one of {', '.join(FILTERS)}")
        if zero_std_filter != "off":
            if self.accelerator.num_processes > 1:
                raise ConfigError(
                    f"zero_std_filter={zero_std_filter!r} runs on one process only; under a multi-GPU "
                    f"`accelerate launch` set zero_std_filter: off"
                )
            if self.beta != 0.0 or self.args.steps_per_generation != 1 or self.use_vllm:
                raise ConfigError(
                    "zero_std_filter needs beta=0, steps_per_generation=1 and no vLLM; set it to off"
                )
        self.zero_std_filter, self.max_resample = zero_std_filter, max_resample
        self.group_history: list[
            dict
        ] = []  # {"step", "prompts", "rewards": (n_groups, k)} per generation round
        self.last_group_rewards: torch.Tensor | None = None
        self.resample_rng = random.Random(self.args.seed)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.model.training:
            weights = self.reward_weights.to(per_func.device)[None]
            groups = (per_func * weights).nansum(dim=1).view(-1, self.num_generations).float().cpu()
            stats = group_reward_stats(groups)
            self._metrics["train"]["frac_reward_zero_std_all_right"].append(stats["frac_all_right"])
            self._metrics["train"]["frac_reward_zero_std_all_wrong"].append(stats["frac_all_wrong"])
            self.last_group_rewards = groups
            single = self.accelerator.num_processes == 1  # else `prompts` are this process's share only
            self.group_history.append(
                {
                    "step": self.state.global_step + 1,
                    "prompts": [prompt_text(p) for p in prompts[:: self.num_generations]] if single else None,
                    "rewards": groups.tolist(),  # every rank's groups (TRL gathers the rewards)
                    "local_completions": len(prompts),  # this rank's share of them
                }
            )
        return per_func

    def _fresh_inputs(self, n_groups: int) -> list[dict]:
        """n_groups random training prompts, each repeated group_size times (the layout GRPO's sampler gives)."""
        picks = [self.resample_rng.randrange(len(self.train_dataset)) for _ in range(n_groups)]
        return [dict(self.train_dataset[i]) for i in picks for _ in range(self.num_generations)]

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        if self.zero_std_filter == "off" or not self.model.training:
            return batch
        n_groups = len(inputs) // self.num_generations
        batches, keep = [batch], [~zero_spread(self.last_group_rewards)]
        rounds = 0
        while self.zero_std_filter == "resample" and sum(int(k.sum()) for k in keep) < n_groups:
            if rounds == self.max_resample:
                break
            rounds += 1
            batches.append(super()._generate_and_score_completions(self._fresh_inputs(n_groups)))
            keep.append(~zero_spread(self.last_group_rewards))
        picks = [(b, g) for b, k in enumerate(keep) for g in k.nonzero().flatten().tolist()][:n_groups]
        self._metrics["train"]["filter/informative_groups"].append(len(picks) / n_groups)
        self._metrics["train"]["filter/resample_rounds"].append(rounds)
        if not picks:  # every group has zero std: keep one; its advantages, hence its gradient, are zero
            picks = [(0, 0)]
        return take_groups(batches, picks, self.num_generations, self.processing_class.pad_token_id)


def make_trainer(
    model, tokenizer, cfg: RftConfig, train_records: list[dict], reward_funcs, run=None, callbacks=()
):
    """An RftTrainer for `cfg` on prompt records (Task.rl_record rows), logging to `run` (a RunWriter or None)."""
    from datasets import Dataset
    from trl import GRPOConfig

    from nbkit.train import RegistryCallback, lora_config, trainer_config, with_defaults

    args = trainer_config(
        GRPOConfig,
        max_steps=cfg.steps,
        learning_rate=cfg.lr,
        lr_scheduler_type="constant",
        per_device_train_batch_size=cfg.batch_size,
        num_generations=cfg.group_size,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        scale_rewards=cfg.scale_rewards,
        seed=cfg.seed,
    )
    trainer = RftTrainer(
        model=model,
        reward_funcs=list(reward_funcs),
        args=args,
        train_dataset=Dataset.from_list(train_records),
        processing_class=tokenizer,
        peft_config=lora_config() if cfg.lora else None,
        callbacks=([RegistryCallback(run)] if run is not None else []) + list(callbacks),
        zero_std_filter=cfg.zero_std_filter,
        max_resample=cfg.max_resample,
    )
    if run is not None:
        trainer.add_callback(GroupLogCallback(run, trainer))
    return with_defaults(trainer)


class GroupLogCallback(TrainerCallback):
    """Writes the per-prompt rewards of the groups GRPO generated at each step to the run (registry only)."""

    def __init__(self, run, trainer):
        self.run, self.trainer, self.done = run, trainer, 0

    def on_step_end(self, args, state, control, **kwargs):
        new = self.trainer.group_history[self.done :]
        self.done = len(self.trainer.group_history)
        if new and state.is_world_process_zero:
            rewards = [row for h in new for row in h["rewards"]]
            stats = group_reward_stats(rewards)
            prompts = [p for h in new for p in (h["prompts"] or [])]
            self.run.log(
                {
                    "groups/prompt_mean": stats["mean"],
                    "groups/prompt_std": stats["std"],
                    "groups/prompts": prompts,
                },
                step=state.global_step,
            )


# ---------------------------------------------------------------------------------------------- the pipeline


def make_task(cfg: RftConfig):
    from nbkit.tasks import get_task

    if cfg.task == "arithmetic":
        return get_task("arithmetic", digits=tuple(cfg.digits), seed=cfg.seed)
    return get_task("gsm8k", source=cfg.data, config=cfg.data_config)


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


def base_run(registry, model: str) -> str:
    """The name of a "base" run for `model` (created if missing): the root of the lineage."""
    name = "base-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", model).strip("-.")
    if not registry.exists(name):
        try:
            with registry.create(name, kind="base", config={"model": model}, tracking="off"):
                pass
        except NbkitError:
            if not registry.exists(name):  # someone else registering it meanwhile is fine
                raise
    return name


def run_rft(cfg: RftConfig, registry=None, progress: bool = True):
    """Warm-start (optional) then RFT, as registry runs; returns the finished RFT Run (on every rank; rank 0 alone
    writes the registry). A run that already exists under `cfg.name` is returned as it is (re-running a notebook
    reuses finished runs)."""
    from nbkit import dist
    from nbkit.models import load
    from nbkit.runs import Registry
    from nbkit.train import release, sft

    reg = registry or Registry()
    if dist.broadcast(reg.exists(cfg.name)):
        return reg.reuse(cfg.name, dataclasses.asdict(cfg))  # refused if made with another config
    main = dist.is_main()
    task = make_task(cfg)
    train = task.train(cfg.n_train)
    probes = task.test(cfg.n_probe) if cfg.n_probe else []
    parent = base_run(reg, cfg.model) if main else None
    model, tok = load(cfg.model, dtype="float32")

    if cfg.warmstart_fraction > 0:
        ws_name = f"{cfg.name}-warmstart"
        records = warmstart_records(task, train, cfg)
        share = len(records) / len(train)
        ws_cfg = {"base_model": cfg.model, "examples": len(records), "share": share,
                  "steps": cfg.warmstart_steps, "lr": cfg.warmstart_lr}  # fmt: skip
        if dist.broadcast(reg.exists(ws_name)):  # finished earlier (e.g. the RFT was interrupted): reuse it
            model, tok = reg.load(reg.reuse(ws_name, ws_cfg).name, dtype="float32")
        else:
            with reg.create(ws_name, "sft", ws_cfg, parent) if main else dist.NullRun() as ws_run:
                start = time.perf_counter()
                trainer = sft(model, tok, records, steps=cfg.warmstart_steps, lr=cfg.warmstart_lr,
                              batch_size=min(8, len(records)), run=ws_run, seed=cfg.seed)  # fmt: skip
                model = trainer.model
                ws_run.save_model(model, tok)
                ws_run.set_summary(examples=len(records), share=share, seconds=time.perf_counter() - start)
        parent = ws_name

    reward = checked_reward(task.reward, name=f"{task.name}_correct")
    # ranks other than 0 train along with a run that records nothing (dist.NullRun)
    with reg.create(cfg.name, "rft", dataclasses.asdict(cfg), parent) if main else dist.NullRun() as run:
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
        run.set_summary(**summarize(trainer, probe_cb, seconds, cfg), completions_per_rank=per_rank)
        if cfg.save_model:
            run.save_model(trainer.model, tok)
    dist.barrier()  # rank 0 has committed the run
    return reg.get(cfg.name)


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


# ------------------------------------------------------------------------------------------------------- CLI


def cli(argv: list[str]) -> int:
    """`nbkit rft [--config FILE] [--profile P] [--runs DIR] [--KEY VALUE ...]` (argv[0] is "rft")."""
    from nbkit import dist
    from nbkit.config import parse_cli
    from nbkit.runs import Registry

    about = "GRPO with per-prompt reward-variance diagnostics (nbkit/rft.py); an existing run is reused."
    cfg, args = parse_cli(RftConfig, PROFILES, argv[1:], prog="nbkit rft", description=about)
    run = run_rft(cfg, Registry(args.runs))
    if dist.is_main():
        print(f"run {run.name} ({run.path}):")
        for k, v in run.summary.items():
            print(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")
    return 0
