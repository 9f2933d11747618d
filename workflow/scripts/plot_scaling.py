"""Rule `plot_scaling`: forgetting against steps per N with the fitted curves, forgetting against the
fine-tuning loss with the line, observed against predicted, and the learning-vs-forgetting curves with the
Pareto front — from the scaling and fit tables alone.

    snakemake --cores 1 results/default/figures/scaling_steps.png
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    import pandas as pd

    from forgetbench.scaling.report import (
        plot_forgetting_vs_ft_loss,
        plot_forgetting_vs_steps,
        plot_learning_vs_forgetting,
        plot_observed_vs_predicted,
    )

    table = pd.read_csv(snakemake.input.table)
    fits = pd.read_csv(snakemake.input.fits)
    out = snakemake.output
    plot_forgetting_vs_steps(table, fits, out.steps)
    plot_forgetting_vs_ft_loss(table, fits, out.ft_loss)
    plot_observed_vs_predicted(table, fits, out.predicted)
    # Without a domain score (a domain measured by its loss only) the domain axis is the domain test loss; without
    # general benchmarks at the checkpoints the general axis is the negated forgetting.
    plot_learning_vs_forgetting(table, out.curves)
