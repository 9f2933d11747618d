localrules:
    base_checked,


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


# A model's training starts after its base evaluation and its scoring of the training data, so that a task or
# dataset that cannot run (data off the hub, a task that fails on the model, a dataset max_seq_len cuts) stops the
# model's sweep before hours of training. The training jobs wait for it without reading it (common.smk,
# wait_for_base_checked, says why it is a checkpoint). Its own inputs are ancient(): written once, it stays open
# when the base model is evaluated or scored again.
checkpoint base_checked:
    input:
        evaluation=ancient(f"{RESULTS}/{{model}}/base/eval/metrics.json"),
        scores=ancient(f"{RESULTS}/{{model}}/base/train_scores/token_stats.json"),
    output:
        f"{RESULTS}/{{model}}/base/checked.json",
    log:
        f"{RESULTS}/logs/base_checked/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/base_checked/{{model}}.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../workflow/scripts/base_checked.py"


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
