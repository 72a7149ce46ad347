"""RFT: GRPO (through TRL) with the per-prompt reward-variance diagnostics of Razin et al., "Vanishing Gradients in
Reinforcement Finetuning of Language Models" (ICLR 2024): why RFT stalls, and the fix (an SFT warm-start).

    config.py      RftConfig (fields with their --help), PROFILES (smoke, cpu, gpu)
    run.py         run(cfg, registry) -> RftResult: the stages warm_start (SFT) and grpo, each a registry run
    trainer.py     RftTrainer (GRPOTrainer + per-prompt reward records + zero-std filter), make_trainer
    probe.py       probe (k samples per held-out prompt), per-prompt gradient norms, ProbeCallback
    rewards.py     the group maths (reward std, GRPO advantages, zero spread) and reward-function checks
    result.py      RftResult (tables, frame, say, claims of one arm), the paper's claims, tables of several arms
    signal_map.py  the signal map (reward std per prompt and step) and the advantage-scaling plots
    plots.py       the 02 notebook's figures, arms side by side

    from nbkit.experiments.rft import RftConfig, run
    result = run(RftConfig.for_profile("smoke", name="try"), registry)
    print(result.say()); result.frame()
"""

from nbkit.experiments.rft.config import FILTERS, PROFILES, RftConfig
from nbkit.experiments.rft.plots import (
    plot_gradient_scaling,
    plot_reward_curves,
    plot_signal_maps,
    plot_std_histograms,
    plot_zero_std_share,
)
from nbkit.experiments.rft.probe import (
    Probe,
    ProbeCallback,
    probe,
    prompt_gradient_norm,
    prompt_gradient_norms,
)
from nbkit.experiments.rft.result import (
    RftResult,
    claim_low_std_slow_growth,
    claim_rl_raises_reward,
    claim_warmstart_helps,
    claim_zero_std_zero_gradient,
    probe_reward_table,
    run_tables,
    start_and_end,
    summary_table,
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
from nbkit.experiments.rft.run import build_task, grpo, rl_records, run, warm_start, warmstart_records
from nbkit.experiments.rft.signal_map import (
    plot_gain_vs_std,
    plot_scaling,
    plot_signal_map,
    scaling_table,
    signal_table,
)
from nbkit.experiments.rft.trainer import GroupLogCallback, RftTrainer, make_trainer, take_groups

Config = RftConfig  # the names `nbkit.experiments.command` uses: Config, PROFILES, run

__all__ = [
    "Config",
    "FILTERS",
    "GroupLogCallback",
    "PROFILES",
    "Probe",
    "ProbeCallback",
    "RewardError",
    "RftConfig",
    "RftResult",
    "RftTrainer",
    "build_task",
    "check_rewards",
    "checked_reward",
    "claim_low_std_slow_growth",
    "claim_rl_raises_reward",
    "claim_warmstart_helps",
    "claim_zero_std_zero_gradient",
    "group_advantages",
    "group_reward_stats",
    "group_std",
    "grpo",
    "make_trainer",
    "plot_gain_vs_std",
    "plot_gradient_scaling",
    "plot_reward_curves",
    "plot_scaling",
    "plot_signal_map",
    "plot_signal_maps",
    "plot_std_histograms",
    "plot_zero_std_share",
    "policy_gradient_loss",
    "probe",
    "probe_reward_table",
    "prompt_gradient_norm",
    "prompt_gradient_norms",
    "prompt_text",
    "rl_records",
    "run",
    "run_tables",
    "scaling_table",
    "signal_table",
    "start_and_end",
    "summary_table",
    "take_groups",
    "warm_start",
    "warmstart_records",
    "zero_spread",
]
