"""TRANSITIONAL: moved to nbkit.experiments.rft (rewards.py, probe.py, result.py). These names are re-exported so
that code not yet updated keeps working; import them from nbkit.experiments.rft. To be deleted."""

from nbkit.experiments.rft.probe import (
    Probe,
    ProbeCallback,
    probe,
    prompt_gradient_norm,
    prompt_gradient_norms,
)
from nbkit.experiments.rft.result import (
    claim_low_std_slow_growth,
    claim_rl_raises_reward,
    claim_warmstart_helps,
    claim_zero_std_zero_gradient,
    run_tables,
)
from nbkit.experiments.rft.rewards import (
    RewardError,
    check_rewards,
    checked_reward,
    group_advantages,
    group_reward_stats,
    group_std,
    policy_gradient_loss,
    prompt_text,
    zero_spread,
)

__all__ = [
    "Probe",
    "ProbeCallback",
    "RewardError",
    "check_rewards",
    "checked_reward",
    "claim_low_std_slow_growth",
    "claim_rl_raises_reward",
    "claim_warmstart_helps",
    "claim_zero_std_zero_gradient",
    "group_advantages",
    "group_reward_stats",
    "group_std",
    "policy_gradient_loss",
    "probe",
    "prompt_gradient_norm",
    "prompt_gradient_norms",
    "prompt_text",
    "run_tables",
    "zero_spread",
]
