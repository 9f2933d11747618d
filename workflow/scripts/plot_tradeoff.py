"""Rule `plot_tradeoff`: the trade-off figure and the domain-loss-vs-forgetting figure, from the aggregated
table only.

    snakemake --cores 1 results/default/figures/tradeoff.png
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    import pandas as pd

    from forgetbench.aggregation.plots import loss_forgetting_plot, tradeoff_plot

    table = pd.read_csv(snakemake.input[0])
    tradeoff_plot(table, snakemake.output.tradeoff)
    loss_forgetting_plot(table, snakemake.output.loss)
