"""Rule `aggregate_token_stats`: the pre-trained models' token-probability statistics as one table.

    snakemake --cores 1 results/default/tables/token_stats.md
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    from forgetbench.aggregation.token_stats import to_html, to_markdown, token_stats_table
    from forgetbench.atomic import atomic_path, write_text

    table = token_stats_table(snakemake.input, snakemake.params.models)
    with atomic_path(snakemake.output.csv) as tmp:
        table.to_csv(tmp, index=False)
    write_text(snakemake.output.md, to_markdown(table))
    write_text(snakemake.output.html, to_html(table))
