"""Per-prompt reward-variance diagnostics for RL fine-tuning (Razin et al., "Vanishing Gradients in Reinforcement
Finetuning of Language Models", ICLR 2024).

The paper's point: the expected policy gradient for an input is bounded by (a power of) the standard deviation of
the reward under the model for that input. With GRPO's group-normalized advantages the extreme case is exact: if
all k completions of a prompt get the same reward, every advantage is 0 and the prompt contributes exactly zero
gradient, however far its reward is from the best. TRL logs only the batch scalars `reward_std` and
`frac_reward_zero_std`; this module looks at each prompt.

- `group_reward_stats(rewards)`: per-prompt mean and std of k rewards; zero-std prompts split into all-right and
  all-wrong.
- `group_advantages(rewards)`: GRPO's group-normalized advantages, as TRL 1.16 computes them.
- `probe(model, tok, task, examples, k)`: k samples per prompt under the current policy (nbkit's batched sampler),
  scored with the task's reward. Used before training and at intervals during it (see `ProbeCallback`).
- `prompt_gradient_norms(model, probe)`: for each probed prompt, the norm of the gradient of the policy-gradient
  objective with those advantages, to set against that prompt's reward std.

Simplifications relative to the paper: the paper bounds the gradient of the *expected* reward; we measure the
gradient of the sampled GRPO objective (k samples, group-normalized advantages, DAPO token normalization, no KL), at
the sampling policy, where the clipped surrogate's gradient equals the plain policy gradient.

    from nbkit.diagnostics import probe, prompt_gradient_norms
    p = probe(model, tok, task, task.test(16), k=8, max_new_tokens=8)
    p.stats["zero_std_all_wrong"], prompt_gradient_norms(model, p)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from transformers import TrainerCallback

from nbkit.errors import NbkitError
from nbkit.tasks.base import completion_text


class RewardError(NbkitError, ValueError):
    """A reward function returned something GRPO cannot use; the message names the function and the prompt."""


# ----------------------------------------------------------------------------------------------- the maths


def zero_spread(rewards: torch.Tensor) -> torch.Tensor:
    """rewards (n_prompts, k) -> (n_prompts,) bool: all k rewards of the prompt are equal (exactly).

    Example: [[1, 1, 1], [0, 1, 0]] -> [True, False]
    """
    return rewards.amax(dim=1) == rewards.amin(dim=1)


def group_std(rewards: torch.Tensor) -> torch.Tensor:
    """rewards (n_prompts, k) -> (n_prompts,) std with Bessel's correction, as TRL's `nanstd` (0 where k == 1).

    Example: [[1, 0, 0, 0]] -> [0.5]   (mean 0.25; squared deviations 0.5625 + 3 * 0.0625 = 0.75; 0.75 / 3 = 0.25)
    """
    if rewards.shape[1] < 2:
        return torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    std = rewards.std(dim=1, unbiased=True)
    return torch.where(zero_spread(rewards), torch.zeros_like(std), std)


def group_reward_stats(rewards, right: float = 1.0, wrong: float = 0.0) -> dict:
    """Per-prompt reward statistics from k samples per prompt.

    rewards: (n_prompts, k), a tensor or nested list. A zero-std prompt is "all right" when its reward is >= `right`,
    "all wrong" when <= `wrong` (else "zero std, other", e.g. every completion got 0.5).
    Returns per-prompt lists "mean", "std", "zero_std", "all_right", "all_wrong" (length n_prompts) and the scalars
    "mean_reward", "mean_std", "frac_zero_std", "frac_all_right", "frac_all_wrong".

    Example: [[1, 1], [0, 0], [1, 0]] -> mean [1, 0, 0.5], std [0, 0, 0.707], frac_zero_std 0.667,
    frac_all_right 0.333, frac_all_wrong 0.333.
    """
    r = torch.as_tensor(rewards, dtype=torch.float64)
    if r.ndim != 2 or r.shape[0] == 0 or r.shape[1] == 0:
        raise ValueError(f"rewards must have shape (n_prompts, k) with both > 0, got {tuple(r.shape)}")
    mean, std, zero = r.mean(dim=1), group_std(r), zero_spread(r)
    right_mask, wrong_mask = zero & (mean >= right), zero & (mean <= wrong)
    return {
        "mean": mean.tolist(),
        "std": std.tolist(),
        "zero_std": zero.tolist(),
        "all_right": right_mask.tolist(),
        "all_wrong": wrong_mask.tolist(),
        "mean_reward": mean.mean().item(),
        "mean_std": std.mean().item(),
        "frac_zero_std": zero.double().mean().item(),
        "frac_all_right": right_mask.double().mean().item(),
        "frac_all_wrong": wrong_mask.double().mean().item(),
    }


def group_advantages(rewards: torch.Tensor, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """GRPO advantages. rewards (n_prompts, k) -> (n_prompts, k).

    A = (r - mean_group(r)) / (std_group(r) + eps) for scale="group" (TRL's default `scale_rewards`); "batch"
    divides by the std of all rewards; "none" only centres (Dr. GRPO). A group whose rewards are all equal gets
    exactly 0 (TRL gets 0 up to the rounding of the mean, which is exact for 0/1 rewards).

    Example: [[1, 0, 0, 0]] -> [[1.4997, -0.4999, -0.4999, -0.4999]]   (0.75 / 0.5001, -0.25 / 0.5001)
    """
    if scale not in {"group", "batch", "none"}:
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    centred = torch.where(zero_spread(rewards)[:, None], torch.zeros_like(centred), centred)
    if scale == "group":
        return centred / (group_std(rewards)[:, None] + eps)
    if scale == "batch":
        return centred / (rewards.std() + eps)
    return centred


def policy_gradient_loss(logps: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """The GRPO objective of one group at the sampling policy, as a loss to minimize.

    logps: (k, T) log-probs of the sampled completion tokens; mask: (k, T) 1 on real tokens; advantages: (k,).
    loss = -sum_i A_i * sum_t logp_it / n_tokens (DAPO's token normalization, TRL's default `loss_type`). At the
    sampling policy the importance ratio is 1 and its gradient is the gradient of logp, so this has the same gradient
    as TRL's clipped surrogate. With all A_i = 0 the loss is 0 * (...) and every gradient entry is exactly 0.
    """
    return -(advantages[:, None] * logps * mask).sum() / mask.sum().clamp(min=1)


# --------------------------------------------------------------------------------------- reward checking


def prompt_text(prompt) -> str:
    """The last user turn of a chat prompt (or the prompt string itself), for messages."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict):
        return str(prompt[-1].get("content", ""))
    return str(prompt)


def check_rewards(
    values, n_completions: int, name: str, prompts=None, completions=None
) -> list[float | None]:
    """Validate one reward function's output for one batch; returns it as floats (None kept: TRL's "no score").

    Raises RewardError naming the function and the offending prompt for: not a list, wrong length, NaN or
    infinity, or a value that is not a number.
    """

    def where(i: int) -> str:
        out = ""
        if prompts is not None and i < len(prompts):
            out += f" for prompt {prompt_text(prompts[i])[:80]!r}"
        if completions is not None and i < len(completions):
            out += f" (completion {completion_text(completions[i])[:60]!r})"
        return out

    if isinstance(values, torch.Tensor):
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise RewardError(
            f"reward function {name!r} returned {type(values).__name__}, not a list; it must return one "
            f"reward per completion ({n_completions} here){where(0)}"
        )
    if len(values) != n_completions:
        first = prompt_text(prompts[0])[:80] if prompts else "?"
        raise RewardError(
            f"reward function {name!r} returned {len(values)} rewards for {n_completions} completions (first "
            f"prompt {first!r}); it must return exactly one reward per completion, in order"
        )
    out: list[float | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
            v = v.item()
        if not isinstance(v, (int, float)):  # bool is an int: True counts as 1.0
            raise RewardError(
                f"reward function {name!r} returned {v!r} ({type(v).__name__}) at position {i}{where(i)}; "
                f"rewards must be numbers (or None to skip a completion)"
            )
        v = float(v)
        if not math.isfinite(v):
            raise RewardError(
                f"reward function {name!r} returned {v} at position {i}{where(i)}; rewards must be finite numbers "
                f"(return None to skip a completion on purpose)"
            )
        out.append(v)
    return out


def checked_reward(fn, name: str | None = None):
    """Wrap a TRL-signature reward function `fn(completions, **kwargs) -> list[float]` so that bad output fails at
    once with a clear message (see `check_rewards`) instead of deep inside TRL's tensor code."""
    name = name or getattr(fn, "__name__", type(fn).__name__)

    def reward(completions, prompts=None, **kwargs):
        values = fn(completions=completions, prompts=prompts, **kwargs)
        return check_rewards(values, len(completions), name, prompts, completions)

    reward.__name__ = name
    reward.__doc__ = fn.__doc__
    return reward


# --------------------------------------------------------------------------------------------------- probes


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
    model, prompt_ids: list[int], completion_ids: list[list[int]], rewards, scale: str = "group"
) -> float:
    """L2 norm of d(GRPO objective of one prompt's group)/d(trainable parameters).

    prompt_ids: the prompt's tokens; completion_ids: k sampled completions (token lists); rewards: (k,).
    """
    device = next(model.parameters()).device
    adv = group_advantages(torch.tensor([rewards], dtype=torch.float32), scale=scale)[0].to(device)
    width = max(1, max(len(c) for c in completion_ids))
    pad = 0
    ids = torch.full((len(completion_ids), len(prompt_ids) + width), pad, dtype=torch.long)
    attn = torch.zeros_like(ids)
    mask = torch.zeros(len(completion_ids), width)
    for i, c in enumerate(completion_ids):
        row = prompt_ids + c
        ids[i, : len(row)] = torch.tensor(row)
        attn[i, : len(row)] = 1
        mask[i, : len(c)] = 1
    ids, attn, mask = ids.to(device), attn.to(device), mask.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids, attention_mask=attn).logits[:, len(prompt_ids) - 1 : -1].float()
    logps = logits.log_softmax(-1).gather(2, ids[:, len(prompt_ids) :, None]).squeeze(-1)
    loss = policy_gradient_loss(logps, mask, adv)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    sq = sum(float(g.double().pow(2).sum()) for g in grads if g is not None)
    return math.sqrt(sq)


def prompt_gradient_norms(
    model, p: Probe, n: int | None = None, scale: str = "group", progress: bool = True
) -> list[float]:
    """Per-prompt gradient norms for the first `n` prompts of a probe (all by default). (n_prompts,)."""
    from tqdm.auto import tqdm

    n = len(p.rewards) if n is None else min(n, len(p.rewards))
    was_training = model.training
    model.eval()  # no dropout: the gradient of the objective itself
    try:
        return [
            prompt_gradient_norm(model, p.prompt_ids[i], p.completion_ids[i], p.rewards[i], scale)
            for i in tqdm(range(n), desc="grad norms", disable=not progress, leave=False)
        ]
    finally:
        model.train(was_training)


class ProbeCallback(TrainerCallback):
    """Probes the policy on a fixed prompt set at the start of training and every `every` steps (and at the end),
    logging scalars and per-prompt lists to a registry run; at the start it can also measure per-prompt gradient
    norms on the first `grad_prompts` prompts, under scale_rewards "group" and "none" (same samples, same policy)."""

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
        self.seconds = 0.0  # time spent probing and measuring gradients

    def _probe(self, model, step: int, grads: bool = False) -> None:
        start = time.perf_counter()
        p = probe(
            model, self.tokenizer, self.task, self.examples, self.k, self.max_new_tokens, **self.probe_kw
        )
        row = p.log_row()
        if grads and self.grad_prompts:
            # the same samples under both advantage scalings (nbkit.signal_map.plot_scaling); "batch" as "group"
            progress = self.probe_kw.get("progress", True)
            for scale in ("group", "none"):
                row[f"probe/grad_norm_{scale}"] = prompt_gradient_norms(
                    model, p, self.grad_prompts, scale, progress
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


# ------------------------------------------------------------------------------------- reading runs, claims


def run_tables(run):
    """(train, probes, groups) DataFrames from a finished RFT run in the registry, each indexed by step.

    train: one row per RFT step with TRL's scalars (reward, reward_std, frac_reward_zero_std, grad_norm, ...) and
    ours (frac_reward_zero_std_all_right / _all_wrong, filter/...). probes: one row per probe with the scalars and the
    per-prompt lists probe/prompt_mean, probe/prompt_std (and probe/grad_norm at step 0). groups: one row per step
    with the per-prompt lists groups/prompt_mean, groups/prompt_std of the groups GRPO generated at that step.
    """
    import pandas as pd

    rows = run.metrics()
    frames = [
        pd.DataFrame([r for r in rows if key in r])
        for key in ("reward_std", "probe/prompt_std", "groups/prompt_std")
    ]
    return tuple(f.set_index("step") if not f.empty else f for f in frames)


def claim_zero_std_zero_gradient(stds, grad_norms) -> str:
    """Razin et al. / GRPO: prompts whose k rewards are all equal get exactly zero gradient; the others do not.
    An identity checked on every measured prompt, not an estimate, so it needs no interval.

    Example: stds [0, 0.5], grad_norms [0.0, 3.1] -> "AGREES (exact, on every prompt): ..."
    """
    zero = [g for s, g in zip(stds, grad_norms) if s == 0]
    spread = [g for s, g in zip(stds, grad_norms) if s > 0]
    if not zero:
        return "NOT CHECKED: no zero-std prompt was measured"
    detail = f"{len(zero)} zero-std prompts, largest gradient norm {max(zero):.3g}"
    if spread:
        detail += f"; {len(spread)} prompts with spread, smallest gradient norm {min(spread):.3g}"
    ok = max(zero) == 0.0 and all(g > 0 for g in spread)
    return f"{'AGREES' if ok else 'DEPARTS'} (exact, on every prompt): {detail}"


def _first_last(probes):
    """(start means, start stds, end means) per probe prompt: the first and the last probe of a run."""
    first, last = probes.iloc[0], probes.iloc[-1]
    return list(first["probe/prompt_mean"]), list(first["probe/prompt_std"]), list(last["probe/prompt_mean"])


def claim_rl_raises_reward(probes, label: str = "RL"):
    """The held-out probe reward rises during RL: per probe prompt, mean reward at the last probe minus at the first
    (step 0, after any warm-start), with a bootstrap 95% interval over the prompts. probes: run_tables(run)[1].
    -> nbkit.claims.Claim"""
    from nbkit.claims import paired

    m0, _, m1 = _first_last(probes)
    return paired(m1, m0, f"{label}: probe reward, step {probes.index[-1]} minus step {probes.index[0]}")


def claim_low_std_slow_growth(start_means, start_stds, end_means):
    """Razin et al.: an input whose reward std is small under the model gains reward slowly, even when its reward is
    far from the best. Mean reward gain of prompts that started with spread (std > 0) minus that of prompts that
    started all wrong (std 0, reward 0), unpaired bootstrap over prompts. -> Claim (or a NOT CHECKED line)

    Example: start_means [0, 0, 0.5], start_stds [0, 0, 0.5], end_means [0, 0.25, 1] -> effect 0.5 - 0.125
    """
    from nbkit.claims import unpaired

    low = [e - m for m, s, e in zip(start_means, start_stds, end_means) if s == 0 and m == 0]
    high = [e - m for m, s, e in zip(start_means, start_stds, end_means) if s > 0]
    if not low or not high:
        return (
            f"NOT CHECKED: need prompts of both kinds ({len(low)} started all wrong, {len(high)} with spread)"
        )
    return unpaired(
        high, low, f"reward gain of {len(high)} prompts that started with spread minus {len(low)} that started "
        f"all wrong"
    )  # fmt: skip


def claim_warmstart_helps(alone, warm) -> list:
    """Razin et al.: a short SFT warm-start lowers the share of zero-std inputs, after which RL gains more. alone,
    warm: the probes of two runs with the same RFT budget and probe prompts (run_tables(run)[1]). Three paired
    claims over probe prompts: zero std at the start (alone minus warm), RL's own gain (warm's minus alone's) and the
    reward at the end (warm minus alone). -> [Claim, Claim, Claim]"""
    from nbkit.claims import paired

    a0, a_std, a1 = _first_last(alone)
    w0, w_std, w1 = _first_last(warm)
    zero_a, zero_w = [float(s == 0) for s in a_std], [float(s == 0) for s in w_std]
    gain_a = [e - m for m, e in zip(a0, a1)]
    gain_w = [e - m for m, e in zip(w0, w1)]
    return [
        paired(
            zero_a, zero_w, "zero-std share of probe prompts at the start of RL, alone minus warm-started"
        ),
        paired(gain_w, gain_a, "reward gain during RL, warm-started minus alone"),
        paired(w1, a1, "probe reward after RL, warm-started minus alone"),
    ]
