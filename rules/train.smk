rule train:
    input:
        model=f"{RESULTS}/{{model}}/base/model",
        train=f"{RESULTS}/data/{DOMAIN}/train.jsonl",
    output:
        model=directory(f"{RESULTS}/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}/model"),
        log=f"{RESULTS}/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}/train_log.jsonl",
        run=f"{RESULTS}/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}/run.json",
    params:
        cell=cell_config,
    log:
        f"{RESULTS}/logs/train/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}.tsv"
    conda:
        ENV
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
        gpu=config["resources"]["gpu"],
    script:
        "../workflow/scripts/train.py"
