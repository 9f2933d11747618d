"""Rule `aggregate`: every evaluation and its items → the tidy trade-off table with paired bootstrap intervals
(CSV, Parquet), the same per method × LR with seeds pooled (grouped CSV), and their Markdown/LaTeX/HTML views.

    snakemake --cores 2 results/default/tables/tradeoff.md
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    import time

    from forgetbench.aggregation.table import build_tables, paper_table, to_html, to_latex, to_markdown
    from forgetbench.atomic import atomic_path, write_text

    general, settings = snakemake.params.general, snakemake.params.aggregation
    domain = snakemake.params.domain  # the tasks whose mean is the domain score; may be none
    out, inputs = snakemake.output, snakemake.input
    start = time.time()
    tidy, grouped = build_tables(inputs.metrics, inputs.per_item, general, n_resamples=settings["n_resamples"],
                                 seed=settings["seed"], domain_tasks=domain)
    print(f"bootstrap: {settings['n_resamples']} resamples of {len(tidy)} evaluations in {time.time() - start:.1f} s")
    for frame, csv in ((tidy, out.csv), (grouped, out.grouped)):
        with atomic_path(csv) as tmp:
            frame.to_csv(tmp, index=False)
    with atomic_path(out.parquet) as tmp:
        tidy.to_parquet(tmp, index=False)
    correction = None if settings["correction"] == "none" else settings["correction"]
    experiment = snakemake.config["experiment"]
    paper = paper_table(grouped, general, correction, domain_tasks=domain)
    write_text(out.md, to_markdown(paper, f"Domain vs general trade-off ({experiment})"))
    write_text(out.html, to_html(paper, f"Domain vs general trade-off ({experiment})"))
    write_text(out.tex, to_latex(paper_table(grouped, general, correction, latex=True, domain_tasks=domain),
                                 f"Domain score vs general capability per method and learning rate ({experiment})"))
    print(paper.frame.to_string(index=False))
