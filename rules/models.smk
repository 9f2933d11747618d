rule prepare_model:
    output:
        directory(f"{RESULTS}/{{model}}/base/model"),
    log:
        f"{RESULTS}/logs/prepare_model/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_model/{{model}}.tsv"
    conda:
        ENV
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=RESOURCES.mem_mb("prepare"),
        runtime=RESOURCES.runtime("prepare"),
    script:
        "../workflow/scripts/prepare_model.py"
