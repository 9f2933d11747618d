"""Rule `aggregate`: every evaluation → the tidy trade-off table (CSV, Parquet) and its Markdown/LaTeX views.

    snakemake --cores 2 results/default/tables/tradeoff.md
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from forgetbench.aggregation.table import build_table, paper_table, to_latex, to_markdown
    from forgetbench.atomic import atomic_path, write_text

    general = snakemake.params.general  # noqa: F821
    out = snakemake.output  # noqa: F821
    table = build_table(snakemake.input, general)  # noqa: F821
    with atomic_path(out.csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out.parquet) as tmp:
        table.to_parquet(tmp, index=False)
    paper = paper_table(table, general)
    experiment = snakemake.config["experiment"]  # noqa: F821
    write_text(out.md, to_markdown(paper, f"Domain vs general trade-off ({experiment})"))
    write_text(out.tex, to_latex(paper, f"Domain score vs general capability per method and learning rate ({experiment})."))
    print(paper.to_string(index=False))
