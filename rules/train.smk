rule score_base:
    input:
        model=f"{RESULTS}/{{model}}/base/model",
        train=f"{RESULTS}/data/{DOMAIN}/train.jsonl",
    output:
        losses=f"{RESULTS}/{{model}}/base/train_scores/sample_losses.jsonl",
        stats=f"{RESULTS}/{{model}}/base/train_scores/token_stats.json",
    params:
        fmt=config["domain"]["format"],
        **DOMAIN_TURNS,
        max_len=config["training"]["max_seq_len"],
        max_truncated_share=config["training"]["max_truncated_share"],
        chat_template=lambda wc: config["models"][wc.model]["chat_template"],
        batch_size=config["evaluation"]["batch_size"],
    log:
        f"{RESULTS}/logs/score_base/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/score_base/{{model}}.tsv"
    conda:
        train_env
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=RESOURCES.mem_mb("score"),
        runtime=RESOURCES.runtime("score"),
        gpu=model_gpus,
    script:
        "../workflow/scripts/score_base.py"


rule train:
    input:
        unpack(get_train_inputs),
    output:
        model=weights(directory(f"{RESULTS}/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}/model")),
        log=f"{RESULTS}/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}/train_log.jsonl",
        run=f"{RESULTS}/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}/run.json",
    wildcard_constraints:
        method=alternatives(TRAINED),
    params:
        cell=cell_config,
        processes=train_processes,
    log:
        f"{RESULTS}/logs/train/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}.tsv"
    conda:
        train_env
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=RESOURCES.mem_mb("train"),
        runtime=RESOURCES.runtime("train"),
        gpu=train_gpus,
        nodes=model_nodes,
    script:
        "../workflow/scripts/train.py"


# WiSE-FT and LiNeS: one SFT run of the same model, LR and seed feeds every variant, without retraining.
rule combine_posthoc:
    input:
        unpack(get_posthoc_inputs),
    output:
        model=weights(directory(f"{RESULTS}/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}/model")),
        run=f"{RESULTS}/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}/run.json",
    wildcard_constraints:
        method=alternatives(POSTHOC),
    params:
        cell=cell_config,
    log:
        f"{RESULTS}/logs/combine_posthoc/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/combine_posthoc/{{model}}/{{method}}/lr~{{lr}}/seed~{{seed}}.tsv"
    conda:
        ENV
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 20 * attempt,
    script:
        "../workflow/scripts/combine_posthoc.py"
