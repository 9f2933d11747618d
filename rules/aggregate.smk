localrules:
    aggregate,
    plot_tradeoff,
    aggregate_token_stats,
    plot_token_probs,
    aggregate_scaling,
    plot_scaling,


rule aggregate:
    input:
        **get_all_metrics(),
    output:
        csv=report(f"{RESULTS}/tables/tradeoff.csv", caption="../workflow/report/tradeoff_csv.rst", category="Tables"),
        grouped=report(f"{RESULTS}/tables/tradeoff_grouped.csv", caption="../workflow/report/tradeoff_csv.rst",
                       category="Tables"),
        parquet=f"{RESULTS}/tables/tradeoff.parquet",
        # the report shows HTML (in a frame), not Markdown: tradeoff.html is the table's view there, tradeoff.md
        # the same table for a README
        md=f"{RESULTS}/tables/tradeoff.md",
        html=report(f"{RESULTS}/tables/tradeoff.html", caption="../workflow/report/tradeoff_table.rst",
                    category="Tables"),
        tex=report(f"{RESULTS}/tables/tradeoff.tex", caption="../workflow/report/tradeoff_table.rst", category="Tables"),
    params:
        code=code_stamp("forgetbench.aggregation.table", "forgetbench.aggregation.intervals",
                        "forgetbench.aggregation.html"),
        general=list(config["evaluation"]["general"]),
        domain=EXPERIMENT.domain_score,
        aggregation=config["aggregation"],
    log:
        f"{RESULTS}/logs/aggregate.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow/scripts/aggregate.py"


rule plot_tradeoff:
    input:
        f"{RESULTS}/tables/tradeoff.csv",
    output:
        tradeoff=report(f"{RESULTS}/figures/tradeoff.png", caption="../workflow/report/tradeoff_plot.rst",
                        category="Figures"),
        loss=report(f"{RESULTS}/figures/loss_vs_forgetting.png", caption="../workflow/report/loss_plot.rst",
                    category="Figures"),
    params:
        code=code_stamp("forgetbench.aggregation.plots", "forgetbench.aggregation.table"),
    log:
        f"{RESULTS}/logs/plot_tradeoff.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_tradeoff.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow/scripts/plot_tradeoff.py"


rule aggregate_token_stats:
    input:
        get_token_stats(),
    output:
        csv=f"{RESULTS}/tables/token_stats.csv",
        md=f"{RESULTS}/tables/token_stats.md",
        html=report(f"{RESULTS}/tables/token_stats.html", caption="../workflow/report/token_stats.rst",
                    category="Tables"),
    params:
        code=code_stamp("forgetbench.aggregation.token_stats", "forgetbench.aggregation.html"),
        models=list(config["models"]),
    log:
        f"{RESULTS}/logs/aggregate_token_stats.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate_token_stats.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow/scripts/aggregate_token_stats.py"


rule plot_token_probs:
    input:
        f"{RESULTS}/tables/token_stats.csv",
    output:
        report(f"{RESULTS}/figures/token_probs.png", caption="../workflow/report/token_probs.rst", category="Figures"),
    params:
        code=code_stamp("forgetbench.aggregation.plots", "forgetbench.aggregation.token_stats"),
    log:
        f"{RESULTS}/logs/plot_token_probs.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_token_probs.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow/scripts/plot_token_probs.py"


# A paper's published numbers beside ours, only when the config names them (`published:`, configs/<paper>
# .published.yaml). The file is checked while the config is parsed (forgetbench.config.experiment), so a malformed
# one fails before any job; it is an input, so editing it reruns only this rule.
if EXPERIMENT.published:

    localrules:
        paper_comparison,

    rule paper_comparison:
        input:
            grouped=f"{RESULTS}/tables/tradeoff_grouped.csv",
            published=EXPERIMENT.published,
        output:
            csv=f"{RESULTS}/tables/paper_comparison.csv",
            md=f"{RESULTS}/tables/paper_comparison.md",
        params:
            code=code_stamp("forgetbench.aggregation.paper_comparison"),
            domain=config["domain"]["name"],
            general=list(config["evaluation"]["general"]),
        log:
            f"{RESULTS}/logs/paper_comparison.log",
        benchmark:
            f"{RESULTS}/benchmarks/paper_comparison.tsv"
        conda:
            ENV
        resources:
            mem_mb=1000,
            runtime=5,
        script:
            "../workflow/scripts/paper_comparison.py"

    # `rule all` (Snakefile, after this file) asks for get_final_outputs() (rules/common.smk): the comparison joins
    # them here, so the rest of the workflow does not need to know about published numbers.
    _outputs_without_paper_comparison = get_final_outputs
    get_final_outputs = lambda: _outputs_without_paper_comparison() + [  # noqa: E731 (a function here fails the lint)
        f"{RESULTS}/tables/paper_comparison.{ext}" for ext in ("csv", "md")]
