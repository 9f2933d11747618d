localrules:
    aggregate,
    plot_tradeoff,


rule aggregate:
    input:
        get_all_metrics(),
    output:
        csv=f"{RESULTS}/tables/tradeoff.csv",
        parquet=f"{RESULTS}/tables/tradeoff.parquet",
        md=report(f"{RESULTS}/tables/tradeoff.md", caption="../workflow/report/tradeoff_table.rst", category="Tables"),
        tex=f"{RESULTS}/tables/tradeoff.tex",
    params:
        general=list(config["evaluation"]["general"]),
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
        report(f"{RESULTS}/figures/tradeoff.png", caption="../workflow/report/tradeoff_plot.rst", category="Figures"),
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
