"""SFT or DPO under a fixed annotation budget ("Balancing the Budget", 2025): a sweep of budget x SFT share.

The paper asks: with B units of annotation money, how much should buy SFT demonstrations and how much preference
pairs? Its answers: SFT alone wins at small budgets; larger budgets favour SFT + preference tuning; and DPO started
from the base model has a "cold start" on maths that a small SFT share (< 10% of the budget) fixes.

    config.py   BudgetConfig, PROFILES; the cost model: split_budget(B, f, sft_cost, pair_cost), plan_grid, Cell
    data.py     the task, the SFT and preference pools, preference pairs (the model's own wrong answers, or a file)
    run.py      run(cfg, registry) -> BudgetResult: per cell SFT -> DPO -> greedy evaluation, each a registry run
                (base -> SFT -> DPO lineage, reused by name); stages draw_pairs, train_sft, train_dpo, evaluate
    result.py   BudgetResult: frame() (one row per cell), plot_heatmap/plot_lines/plot_cold_start, cold_start,
                side_by_side, claims() (paired intervals and exact tests, `nbkit.claims`), say()

Simplifications against the paper (7-8B models, budgets of 100-20k examples, GPUs): a 135M model, budgets of tens
to hundreds of examples, two-digit addition answered directly (GSM8K-format in the gpu profile); the rejected
answers are drawn once from the *base* model and shared by every cell (the paper uses fixed preference data too),
so for cells that first do SFT they are slightly off-policy; one seed per cell; full DPO by default (LoRA DPO was
up to 2x faster per step here but learned far less in the few steps a laptop budget allows).

Only what notebook 03, the CLI and the workshop exercises use is exported here; the rest is imported from its
module, e.g. `from nbkit.experiments.budget.data import preference_pairs`.

Run it:
    nbkit budget --config configs/budget_cpu.yaml           # the notebook's sweep as a script
    torchrun --nproc_per_node 2 -m nbkit.cli budget --config configs/budget_cpu.yaml    # 2 CPU processes
    accelerate launch --num_processes 4 -m nbkit.cli budget --config configs/budget_gpu.yaml  # 4 GPUs
"""

from nbkit.experiments.budget.config import PROFILES, BudgetConfig, BudgetError, plan_grid, split_budget
from nbkit.experiments.budget.result import BudgetResult
from nbkit.experiments.budget.run import dry_run, ensure_pairs, plan, run

Config = BudgetConfig  # what `nbkit budget` parses

__all__ = [
    "BudgetConfig",
    "BudgetError",
    "BudgetResult",
    "Config",
    "PROFILES",
    "dry_run",
    "ensure_pairs",
    "plan",
    "plan_grid",
    "run",
    "split_budget",
]
