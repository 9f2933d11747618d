from forgetbench.evaluation.tasks import domain_score_tasks


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
        domain=domain_score_tasks(config),
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
