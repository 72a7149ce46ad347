"""Probes: k samples per held-out prompt under the current policy, scored, and each prompt's gradient norm.

- `probe(model, tok, task, examples, k)`: k samples per prompt (nbkit's batched sampler), scored with the task's
  reward. Used before training and at intervals during it (`ProbeCallback`).
- `prompt_gradient_norms(trainer, probe)`: for each probed prompt, the norm of the gradient of TRL's own GRPO loss
  for that prompt's group (TRL scores the probe's k completions and rewards, `RftTrainer.group_inputs`, then
  `trainer.compute_loss`, one backward per prompt), to set against that prompt's reward std. Nothing is forced to
  zero on the way, so a zero-std prompt with a non-zero norm is a real leak (`result.claim_zero_std_zero_gradient`).

Simplification relative to the paper: the paper bounds the gradient of the *expected* reward; we measure the
gradient of the sampled GRPO objective (k samples, TRL's advantages and loss: DAPO token normalization by default,
no KL), at the sampling policy, where the clipped surrogate's gradient equals the plain policy gradient.

    p = probe(model, tok, task, task.test(16), k=8, max_new_tokens=8)
    p.stats["frac_all_wrong"], prompt_gradient_norms(trainer, p)   # trainer: an RftTrainer on `model`
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from transformers import TrainerCallback

from nbkit.errors import NbkitError
from nbkit.experiments.rft.rewards import check_rewards, group_reward_stats


@dataclass
class Probe:
    """k samples per prompt under one policy, scored. rewards: (n_prompts, k)."""

    questions: list[str]
    rewards: list[list[float]]
    prompt_ids: list[list[int]]
    completion_ids: list[list[list[int]]]  # (n_prompts, k, tokens)
    texts: list[list[str]]
    seconds: float
    stats: dict = field(default_factory=dict)

    def log_row(self, prefix: str = "probe/") -> dict:
        """Scalars (for wandb and the registry) and per-prompt lists (registry only)."""
        s = self.stats
        row = {f"{prefix}{k}": s[k] for k in ("mean_reward", "mean_std", "frac_zero_std")}
        row[f"{prefix}frac_zero_std_all_right"] = s["frac_all_right"]
        row[f"{prefix}frac_zero_std_all_wrong"] = s["frac_all_wrong"]
        row[f"{prefix}prompt_mean"] = s["mean"]
        row[f"{prefix}prompt_std"] = s["std"]
        row[f"{prefix}seconds"] = self.seconds
        row[f"{prefix}questions"] = self.questions
        row[f"{prefix}first_samples"] = [group[0] for group in self.texts]  # one completion per prompt
        return row


def probe(
    model,
    tokenizer,
    task,
    examples,
    k: int = 8,
    max_new_tokens: int = 16,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    reward=None,
    system: str | None = None,
    progress: bool = True,
) -> Probe:
    """Sample k completions per example under the current policy and score them with `reward` (TRL signature;
    default: the task's own reward). The same seed gives the same samples for the same weights."""
    from nbkit.sampling import encode_prompts, sample

    if k < 2:
        raise ValueError(f"probe needs k >= 2 samples per prompt to measure a std, got k={k}")
    chats = [task.chat(ex, system=system) for ex in examples]
    was_training = model.training
    model.eval()
    try:
        out = sample(
            model,
            tokenizer,
            chats,
            k=k,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
            batch_size=batch_size,
            progress=progress,
            desc="probe",
        )
    finally:
        model.train(was_training)
    texts = out.texts()
    reward = reward or task.reward
    rewards = []
    for ex, chat, group in zip(examples, chats, texts):
        values = reward(completions=group, prompts=[chat] * k, answer=[ex.answer] * k)
        rewards.append(check_rewards(values, k, getattr(reward, "__name__", "reward"), [chat] * k, group))
    rewards = [[0.0 if v is None else v for v in row] for row in rewards]
    return Probe(
        questions=[ex.question for ex in examples],
        rewards=rewards,
        prompt_ids=encode_prompts(tokenizer, chats),
        completion_ids=[[c.token_ids for c in g] for g in out.grouped()],
        texts=texts,
        seconds=out.seconds,
        stats=group_reward_stats(rewards),
    )


def prompt_gradient_norm(
    trainer, prompt_ids: list[int], completion_ids: list[list[int]], rewards, scale: str = "group"
) -> float:
    """L2 norm of d(TRL's GRPO loss of one prompt's group)/d(trainable parameters), one backward.

    trainer: an RftTrainer (its model, loss settings and reward weight); prompt_ids: the prompt's tokens;
    completion_ids: k sampled completions (token lists); rewards: (k,); scale: TRL's scale_rewards for this group.
    In eval mode (no dropout); the parameters' .grad and TRL's logs are left as they were.
    """
    model = trainer.model
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.grad for p in params]
    was_training = model.training
    model.eval()
    try:
        for p in params:
            p.grad = None
        with trainer.unlogged():
            inputs = trainer.group_inputs(prompt_ids, completion_ids, rewards, scale)
            with trainer.compute_loss_context_manager():
                loss = trainer.compute_loss(model, inputs)
        loss.backward()
        return math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in params if p.grad is not None))
    finally:
        for p, g in zip(params, saved):
            p.grad = g
        model.train(was_training)


def prompt_gradient_norms(
    trainer, p: Probe, n: int | None = None, scale: str = "group", progress: bool = True
) -> list[float]:
    """Per-prompt gradient norms through TRL's loss for the first `n` prompts of a probe (all by default).
    (n_prompts,)."""
    from tqdm.auto import tqdm

    n = len(p.rewards) if n is None else min(n, len(p.rewards))
    return [
        prompt_gradient_norm(trainer, p.prompt_ids[i], p.completion_ids[i], p.rewards[i], scale)
        for i in tqdm(range(n), desc="grad norms", disable=not progress, leave=False)
    ]


class ProbeCallback(TrainerCallback):
    """Probes the policy on a fixed prompt set at the start of training and every `every` steps (and at the end),
    logging scalars and per-prompt lists to a registry run; at the start it can also measure per-prompt gradient
    norms through TRL's loss on the first `grad_prompts` prompts, under scale_rewards "group" and "none" (same
    samples, same policy). `make_trainer` hands it its trainer (`self.trainer`) for that."""

    def __init__(
        self,
        run,
        tokenizer,
        task,
        examples,
        k,
        max_new_tokens,
        every,
        grad_prompts=0,
        scale="group",
        **probe_kw,
    ):
        self.run, self.tokenizer, self.task, self.examples = run, tokenizer, task, examples
        self.k, self.max_new_tokens, self.every, self.grad_prompts = k, max_new_tokens, every, grad_prompts
        self.scale = scale
        self.probe_kw = probe_kw
        self.history: list[tuple[int, Probe]] = []
        self.trainer = None  # the RftTrainer whose loss the gradient norms go through (set by make_trainer)
        self.seconds = 0.0  # time spent probing and measuring gradients

    def _probe(self, model, step: int, grads: bool = False) -> None:
        start = time.perf_counter()
        p = probe(
            model, self.tokenizer, self.task, self.examples, self.k, self.max_new_tokens, **self.probe_kw
        )
        row = p.log_row()
        if grads and self.grad_prompts:
            # the same samples under both advantage scalings (signal_map.plot_scaling); "batch" as "group"
            if self.trainer is None:
                raise NbkitError(
                    "ProbeCallback measures gradients through its trainer: pass it to make_trainer"
                )
            progress = self.probe_kw.get("progress", True)
            for scale in ("group", "none"):
                row[f"probe/grad_norm_{scale}"] = prompt_gradient_norms(
                    self.trainer, p, self.grad_prompts, scale, progress
                )
            row["probe/grad_norm"] = row[f"probe/grad_norm_{'none' if self.scale == 'none' else 'group'}"]
            row["probe/grad_norm_std"] = p.stats["std"][: len(row["probe/grad_norm"])]
        self.history.append((step, p))
        self.seconds += time.perf_counter() - start
        if self.run is not None:
            self.run.log(row, step=step)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and self.examples:
            # Gradients through a DDP-wrapped model would join its all-reduce: measure them on one process only.
            self._probe(model, state.global_step, grads=args.world_size == 1)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        last = state.global_step >= state.max_steps
        due = self.every and state.global_step % self.every == 0
        if state.is_world_process_zero and self.examples and (due or last):
            self._probe(model, state.global_step)
