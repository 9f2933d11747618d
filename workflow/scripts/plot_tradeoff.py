"""Rule `plot_tradeoff`: the trade-off figure, from the aggregated table only.

    snakemake --cores 1 results/default/figures/tradeoff.png
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    import pandas as pd

    from forgetbench.aggregation.plots import tradeoff_plot

    tradeoff_plot(pd.read_csv(snakemake.input[0]), snakemake.output[0])  # noqa: F821
