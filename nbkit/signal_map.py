"""TRANSITIONAL: moved to nbkit.experiments.rft.signal_map. These names are re-exported so that code not yet updated
keeps working; import them from nbkit.experiments.rft. To be deleted."""

from nbkit.experiments.rft.signal_map import (
    SOLVED,
    STUCK,
    plot_gain_vs_std,
    plot_scaling,
    plot_signal_map,
    scaling_table,
    signal_table,
)

__all__ = [
    "SOLVED",
    "STUCK",
    "plot_gain_vs_std",
    "plot_scaling",
    "plot_signal_map",
    "scaling_table",
    "signal_table",
]
