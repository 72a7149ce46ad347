"""Per-prompt reward variance and GRPO's advantages (Razin et al., "Vanishing Gradients in Reinforcement Finetuning
of Language Models", ICLR 2024), and the checks that make a bad reward function fail with a clear message.

The paper's point: the expected policy gradient for an input is bounded by (a power of) the standard deviation of
the reward under the model for that input. With GRPO's group-normalized advantages the extreme case is exact: if
all k completions of a prompt get the same reward, every advantage is 0 and the prompt contributes zero gradient,
however far its reward is from the best. "Every advantage is 0" holds exactly when the float mean of the k equal
rewards is the reward itself: always for 0/1 rewards (every nbkit task), not always for others (0.7 eight times
gives TRL 1.16 advantages of 6e-4, see `group_advantages`). Whether TRL's loss really gives zero is measured, not
assumed: `probe.prompt_gradient_norm`. TRL logs only the batch scalars `reward_std` and `frac_reward_zero_std`;
these functions look at each prompt.

- `group_reward_stats(rewards)`: per-prompt mean and std of k rewards; zero-std prompts split into all-right and
  all-wrong.
- `group_advantages(rewards)`: GRPO's group-normalized advantages, as TRL 1.16 computes them (same operations).
- `checked_reward(fn)`: a TRL reward function whose output is validated (`check_rewards`).
"""

from __future__ import annotations

import math

import torch

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
    # Needed: torch's std of k equal values is not always 0 (rounding of the mean: 0.7 eight times gives 6e-8 in
    # float32), and the probes' per-prompt std is what sorts prompts into zero-std and not; equal rewards report 0.
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
    """GRPO advantages with TRL 1.16's own operations (nanmean, `trl.trainer.utils.nanstd`). rewards (n_prompts, k)
    -> (n_prompts, k).

    A = (r - mean_group(r)) / (std_group(r) + eps) for scale="group" (TRL's default `scale_rewards`); "batch"
    divides by the std of all rewards; "none" only centres (Dr. GRPO). No zero is forced: a group whose rewards are
    all equal gets exactly 0 when the float mean of its rewards is exact, as for 0/1 rewards; otherwise TRL's
    rounding of the mean is divided by eps and leaks (0.7 eight times, float32: every advantage 5.96e-4).

    Example: [[1, 0, 0, 0]] -> [[1.4997, -0.4999, -0.4999, -0.4999]]   (0.75 / 0.5001, -0.25 / 0.5001)
    """
    from trl.trainer.utils import nanstd

    if scale not in {"group", "batch", "none"}:
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    centred = rewards - torch.nanmean(rewards, dim=1, keepdim=True)
    if scale == "group":
        k = rewards.shape[1]
        std = nanstd(rewards, dim=1, keepdim=True) if k > 1 else torch.zeros_like(centred)  # TRL's k = 1 case
        return centred / (std + eps)
    if scale == "batch":
        return centred / (nanstd(rewards) + eps)
    return centred


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
