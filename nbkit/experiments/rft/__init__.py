"""RFT: GRPO (through TRL) with the per-prompt reward-variance diagnostics of Razin et al., "Vanishing Gradients in
Reinforcement Finetuning of Language Models" (ICLR 2024): why RFT stalls, and the fix (an SFT warm-start).

    config.py      RftConfig (fields with their --help), PROFILES (smoke, cpu, gpu), run_name
    data.py        the task, GRPO's prompt rows and the warm-start's SFT rows
    run.py         run(cfg, registry) -> RftResult: the stages warm_start (SFT) and grpo, each a registry run
    trainer.py     RftTrainer (GRPOTrainer + per-prompt reward records + zero-std filter), make_trainer
    probe.py       probe (k samples per held-out prompt), per-prompt gradient norms, ProbeCallback
    rewards.py     the group maths (reward std, GRPO advantages, zero spread) and reward-function checks
    result.py      RftResult (tables, frame, plots, claims, say of one arm), the paper's claims, tables of several arms
    signal_map.py  the signal map's tables (reward std per prompt and step) and the advantage-scaling table
    plots.py       every figure: one arm's (also RftResult methods) and several arms' side by side

    from nbkit.experiments.rft import RftConfig, run
    result = run(RftConfig.for_profile("smoke", name="try"), registry)
    print(result.say()); result.frame()

Only what notebook 02, the CLI and the workshop exercises use is exported here; the rest is imported from its
module, e.g. `from nbkit.experiments.rft.trainer import make_trainer`.
"""

from nbkit.experiments.rft.config import PROFILES, RftConfig
from nbkit.experiments.rft.plots import (
    plot_reward_curves,
    plot_signal_maps,
    plot_std_histograms,
    plot_zero_std_share,
)
from nbkit.experiments.rft.result import (
    RftResult,
    claim_low_std_slow_growth,
    claim_warmstart_helps,
    probe_reward_table,
    start_and_end,
    summary_table,
)
from nbkit.experiments.rft.rewards import group_advantages, zero_spread
from nbkit.experiments.rft.run import dry_run, run

Config = RftConfig  # the names `nbkit.experiments.command` uses: Config, PROFILES, run

__all__ = [
    "Config",
    "PROFILES",
    "RftConfig",
    "RftResult",
    "claim_low_std_slow_growth",
    "claim_warmstart_helps",
    "dry_run",
    "group_advantages",
    "plot_reward_curves",
    "plot_signal_maps",
    "plot_std_histograms",
    "plot_zero_std_share",
    "probe_reward_table",
    "run",
    "start_and_end",
    "summary_table",
    "zero_spread",
]
