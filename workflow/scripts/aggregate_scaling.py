"""Rule `aggregate_scaling`: the table of every checkpoint of the scaling study, and the fitted laws (linear in
the fine-tuning loss; shifted power law in N and t) with bootstrap CIs, as CSV, Markdown, LaTeX and HTML (the
report's view).

    snakemake --cores 1 results/default/tables/scaling_fits.md
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    from forgetbench.atomic import atomic_path
    from forgetbench.scaling.report import fit_table, write_fit_table
    from forgetbench.scaling.table import build_scaling_table

    out, params = snakemake.output, snakemake.params
    # params.domain: the tasks whose mean is the domain score (none: the domain test loss is then its measure)
    table = build_scaling_table(snakemake.input.metrics, params.general, params.domain)
    with atomic_path(out.table) as tmp:
        table.to_csv(tmp, index=False)
    fits = fit_table(table, by=("model",), n_boot=params.n_boot, seed=0)
    for path in (out.fits, out.md, out.tex, out.html):
        write_fit_table(fits, path)
    print(fits.to_string(index=False))
