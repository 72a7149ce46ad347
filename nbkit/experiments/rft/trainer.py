"""TRL's GRPOTrainer with per-prompt reward records and a zero-std filter.

`RftTrainer` adds, per step, the share of zero-std groups split into all-right and all-wrong (logged next to TRL's
`reward_std` and `frac_reward_zero_std`) and the per-prompt rewards (`group_history`, written to the run by
`GroupLogCallback`), plus a zero-std filter switch. TRL 1.16 has no option for such a filter (huggingface/trl#3708
is open, #3758 was closed unmerged):
- "drop": groups whose rewards are all equal are removed from the batch after scoring. Their advantages are 0 (for
  0/1 rewards; see `rewards.group_advantages`), so this does not change the direction of the update; it saves
  their forward/backward pass and stops them diluting DAPO's per-token normalization.
- "resample": as "drop", then fresh prompts from the training set are generated and scored (at most
  `max_resample` rounds) to refill the batch with groups that have spread: DAPO's dynamic sampling.
Both need a single process (no multi-GPU), `beta: 0` (TRL's default) and no vLLM/multimodal inputs.

`RftTrainer.group_inputs` builds TRL's own loss batch for one group of completions sampled elsewhere (a probe's):
the per-prompt gradient norms of `probe.prompt_gradient_norm` go through TRL's scoring and `compute_loss`, so that
a change in TRL or nbkit that leaks gradient from zero-std groups shows up in them.
"""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from contextlib import contextmanager

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer

from nbkit.errors import ConfigError, NbkitError
from nbkit.experiments.rft.config import FILTERS, RftConfig
from nbkit.experiments.rft.probe import ProbeCallback
from nbkit.experiments.rft.rewards import group_reward_stats, prompt_text, zero_spread

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
        # per generation round: {"step", "prompts", "rewards": (n_groups, k), "advantages", "local_completions"}
        self.group_history: list[dict] = []
        self.last_group_rewards: torch.Tensor | None = None
        self.resample_rng = random.Random(self.args.seed)
        self._replay: dict | None = None  # set by `group_inputs`: the completions and rewards TRL scores

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        if self._replay is not None:  # the given rewards stand in for the reward function's output
            return self._replay["rewards"]
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

    def _generate(self, prompts: list):
        if self._replay is None:
            return super()._generate(prompts)
        # TRL's return: prompt ids, completion ids, tool mask, completions, logprobs, extra fields, images, tool images
        r = self._replay
        return r["prompt_ids"], r["completion_ids"], None, r["texts"], None, {}, None, []

    def group_inputs(
        self, prompt_ids: list[int], completion_ids: list[list[int]], rewards, scale=None
    ) -> dict:
        """TRL's loss batch for one prompt's group of k completions sampled elsewhere (a probe's), for `compute_loss`.

        prompt_ids: the prompt's tokens; completion_ids: k token lists; rewards: (k,) the reward function's values.
        TRL's own `_generate_and_score_completions` builds it, in eval mode (the group is the whole batch), with
        generation replaced by `completion_ids` and the reward function by `rewards`: padding, masks, advantages
        (`scale`: scale_rewards for this batch, default the trainer's) and the token count are TRL's. TRL's logs and
        metrics are left as they were (`unlogged`).
        """
        if len(self.reward_funcs) != 1:
            raise NbkitError(
                f"group_inputs replays one reward function's values; this trainer has {len(self.reward_funcs)}"
            )
        k, device = len(completion_ids), self.accelerator.device
        text = self.processing_class.decode(prompt_ids)
        replay = {
            "prompt_ids": [list(prompt_ids)] * k,
            "completion_ids": [list(c) for c in completion_ids],
            "texts": self.processing_class.batch_decode(completion_ids, skip_special_tokens=True),
            "rewards": torch.tensor(rewards, dtype=torch.float32, device=device)[:, None],
        }
        saved = (self.num_generations_eval, self.scale_rewards, self.model.training)
        self.num_generations_eval, self.scale_rewards = k, scale or self.scale_rewards
        self._replay = replay
        self.model.eval()
        try:
            with self.unlogged():
                return super()._generate_and_score_completions([{"prompt": text}] * k)
        finally:
            self._replay = None
            self.num_generations_eval, self.scale_rewards = saved[:2]
            self.model.train(saved[2])

    @contextmanager
    def unlogged(self):
        """Within: what TRL records while scoring and computing a loss (metrics, completion logs) is thrown away, so
        measurements made between steps leave the training logs as they were."""
        saved = (self._metrics, self._logs, self._pending_metrics, self._pending_extra_logs)
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._logs = copy.deepcopy(self._logs)
        self._pending_metrics, self._pending_extra_logs = defaultdict(list), defaultdict(list)
        try:
            yield
        finally:
            self._metrics, self._logs, self._pending_metrics, self._pending_extra_logs = saved

    def _fresh_inputs(self, n_groups: int) -> list[dict]:
        """n_groups random training prompts, each repeated group_size times (the layout GRPO's sampler gives)."""
        picks = [self.resample_rng.randrange(len(self.train_dataset)) for _ in range(n_groups)]
        return [dict(self.train_dataset[i]) for i in picks for _ in range(self.num_generations)]

    def _scored(self, inputs) -> dict:
        """TRL's generation and scoring of `inputs`; in training, the batch's advantages (this rank's, in group
        order) join its rewards in `group_history`."""
        rounds = len(self.group_history)
        batch = super()._generate_and_score_completions(inputs)
        if len(self.group_history) > rounds:  # a training round (`_calculate_rewards` recorded its rewards)
            self.group_history[-1]["advantages"] = batch["advantages"].tolist()
        return batch

    def _generate_and_score_completions(self, inputs):
        batch = self._scored(inputs)
        if self.zero_std_filter == "off" or not self.model.training:
            return batch
        n_groups = len(inputs) // self.num_generations
        batches, keep = [batch], [~zero_spread(self.last_group_rewards)]
        rounds = 0
        while self.zero_std_filter == "resample" and sum(int(k.sum()) for k in keep) < n_groups:
            if rounds == self.max_resample:
                break
            rounds += 1
            batches.append(self._scored(self._fresh_inputs(n_groups)))
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
    for cb in callbacks:  # a probe measures its gradient norms through this trainer's loss
        if isinstance(cb, ProbeCallback):
            cb.trainer = trainer
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
