"""Forgetting scaling laws (Kalajdzievski, 2024): fits with bootstrap CIs and an extrapolation check
(fits.py), and the fit table and figures drawn from the scaling table alone (report.py)."""

from forgetbench.scaling.fits import (
    BootstrapResult,
    HoldoutResult,
    LinearFit,
    PowerLawFit,
    bootstrap,
    fit_linear,
    fit_power_law,
    holdout_check,
)
from forgetbench.scaling.report import (
    draw_pareto_front,
    fit_table,
    fit_table_latex,
    fit_table_markdown,
    learning_vs_forgetting_axes,
    pareto_front,
    plot_domain_vs_general,
    plot_forgetting_vs_ft_loss,
    plot_forgetting_vs_steps,
    plot_learning_vs_forgetting,
    plot_observed_vs_predicted,
    write_fit_table,
)

__all__ = [
    "BootstrapResult", "HoldoutResult", "LinearFit", "PowerLawFit", "bootstrap", "fit_linear", "fit_power_law",
    "holdout_check", "draw_pareto_front", "fit_table", "fit_table_latex", "fit_table_markdown",
    "learning_vs_forgetting_axes", "pareto_front", "plot_domain_vs_general", "plot_forgetting_vs_ft_loss",
    "plot_forgetting_vs_steps", "plot_learning_vs_forgetting", "plot_observed_vs_predicted", "write_fit_table",
]
