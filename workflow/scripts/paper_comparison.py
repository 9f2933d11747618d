"""Rule `paper_comparison`: a paper's published numbers (the config's `published:` file) beside ours from the
grouped trade-off table, with our intervals, item counts and whether each published value lies inside.

    snakemake --cores 1 --configfile configs/<paper>.yaml results/<experiment>/tables/paper_comparison.md
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    from forgetbench.aggregation.paper_comparison import build
    from forgetbench.atomic import atomic_path, write_text

    params, out = snakemake.params, snakemake.output
    table, markdown = build(snakemake.input.grouped, snakemake.input.published, params.domain,
                            params.general, snakemake.config["experiment"])
    with atomic_path(out.csv) as tmp:
        table.to_csv(tmp, index=False)
    write_text(out.md, markdown)
    print(markdown)
