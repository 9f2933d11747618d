"""Rule `plot_token_probs`: the histogram of the pre-trained model's token probabilities, from the table only.

    snakemake --cores 1 results/default/figures/token_probs.png
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    import pandas as pd

    from forgetbench.aggregation.plots import token_probability_plot
    from forgetbench.aggregation.token_stats import histogram_long

    token_probability_plot(histogram_long(pd.read_csv(snakemake.input[0])), snakemake.output[0])
