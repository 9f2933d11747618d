rule prepare_domain:
    output:
        train=f"{RESULTS}/data/{DOMAIN}/train.jsonl",
        test=f"{RESULTS}/data/{DOMAIN}/test.jsonl",
    log:
        f"{RESULTS}/logs/prepare_domain/{DOMAIN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_domain/{DOMAIN}.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../workflow/scripts/prepare_domain.py"
