# The forgetting scaling study (Kalajdzievski, 2024): one run per LoRA rank (and full fine-tuning), its
# checkpoints evaluated without retraining, then the laws fitted on the table of all checkpoints.


rule train_scaling:
    input:
        unpack(get_scaling_train_inputs),
    output:
        model=weights(directory(f"{RESULTS}/{{model}}/{{run}}/lr~{{lr}}/seed~{{seed}}/checkpoints")),
        log=f"{RESULTS}/{{model}}/{{run}}/lr~{{lr}}/seed~{{seed}}/train_log.jsonl",
        run=f"{RESULTS}/{{model}}/{{run}}/lr~{{lr}}/seed~{{seed}}/run.json",
    params:
        cell=cell_config,
        checkpoint_steps=lambda wc: list(SCALING_RUNS[(wc.model, wc.run)].steps),
        processes=train_processes,
    log:
        f"{RESULTS}/logs/train_scaling/{{model}}/{{run}}/lr~{{lr}}/seed~{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_scaling/{{model}}/{{run}}/lr~{{lr}}/seed~{{seed}}.tsv"
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


rule evaluate_checkpoint:
    input:
        unpack(get_checkpoint_inputs),
    output:
        f"{RESULTS}/{{model}}/{{run}}/lr~{{lr}}/seed~{{seed}}/step~{{step}}/metrics.json",
    params:
        identity=checkpoint_identity,
        tasks=EXPERIMENT.scaling_tasks,
        evaluation=config["evaluation"],
        domain_format=config["domain"]["format"],
        **DOMAIN_TURNS,
        max_len=config["training"]["max_seq_len"],
        chat_template=lambda wc: config["models"][wc.model]["chat_template"],
        backend=eval_backend,
        gpus=eval_gpus,
    log:
        f"{RESULTS}/logs/evaluate_checkpoint/{{model}}/{{run}}/lr~{{lr}}/seed~{{seed}}/step~{{step}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_checkpoint/{{model}}/{{run}}/lr~{{lr}}/seed~{{seed}}/step~{{step}}.tsv"
    conda:
        eval_env
    threads: config["resources"]["eval_threads"]
    resources:
        mem_mb=RESOURCES.mem_mb("evaluate"),
        runtime=RESOURCES.runtime("evaluate"),
        gpu=eval_gpus,
    script:
        "../workflow/scripts/evaluate_checkpoint.py"


# Step 0 of every run is the base model, evaluated once per model.
rule evaluate_base_checkpoint:
    input:
        unpack(get_checkpoint_inputs),
    output:
        f"{RESULTS}/{{model}}/base/step~0/metrics.json",
    params:
        identity=lambda wc: {"model": wc.model, "method": "base", "registry_name": "base", "lr": None, "seed": None, "step": 0},
        tasks=EXPERIMENT.scaling_tasks,
        evaluation=config["evaluation"],
        domain_format=config["domain"]["format"],
        **DOMAIN_TURNS,
        max_len=config["training"]["max_seq_len"],
        chat_template=lambda wc: config["models"][wc.model]["chat_template"],
        backend=eval_backend,
        gpus=eval_gpus,
    log:
        f"{RESULTS}/logs/evaluate_checkpoint/{{model}}/base/step~0.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_checkpoint/{{model}}/base/step~0.tsv"
    conda:
        eval_env
    threads: config["resources"]["eval_threads"]
    resources:
        mem_mb=RESOURCES.mem_mb("evaluate"),
        runtime=RESOURCES.runtime("evaluate"),
        gpu=eval_gpus,
    script:
        "../workflow/scripts/evaluate_checkpoint.py"


rule aggregate_scaling:
    input:
        metrics=get_scaling_metrics(),
    output:
        table=f"{RESULTS}/tables/scaling.csv",
        fits=report(f"{RESULTS}/tables/scaling_fits.csv", caption="../workflow/report/scaling_fits.rst", category="Scaling"),
        md=f"{RESULTS}/tables/scaling_fits.md",
        html=report(f"{RESULTS}/tables/scaling_fits.html", caption="../workflow/report/scaling_fits.rst",
                    category="Scaling"),
        tex=report(f"{RESULTS}/tables/scaling_fits.tex", caption="../workflow/report/scaling_fits.rst", category="Scaling"),
    params:
        code=code_stamp("forgetbench.scaling.table", "forgetbench.scaling.fits", "forgetbench.scaling.report",
                        "forgetbench.aggregation.table", "forgetbench.aggregation.html"),
        general=list(config.get("scaling", {}).get("general", {})),
        domain=EXPERIMENT.domain_score,  # the tasks whose mean is the domain score; none: the domain test loss measures it
        n_boot=config.get("scaling", {}).get("n_boot", 200),
    log:
        f"{RESULTS}/logs/aggregate_scaling.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate_scaling.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=20,
    script:
        "../workflow/scripts/aggregate_scaling.py"


rule plot_scaling:
    input:
        table=f"{RESULTS}/tables/scaling.csv",
        fits=f"{RESULTS}/tables/scaling_fits.csv",
    output:
        steps=report(f"{RESULTS}/figures/scaling_steps.png", caption="../workflow/report/scaling_plots.rst", category="Scaling"),
        ft_loss=report(f"{RESULTS}/figures/scaling_ft_loss.png", caption="../workflow/report/scaling_plots.rst", category="Scaling"),
        predicted=report(f"{RESULTS}/figures/scaling_predicted.png", caption="../workflow/report/scaling_plots.rst", category="Scaling"),
        curves=report(f"{RESULTS}/figures/learning_vs_forgetting.png", caption="../workflow/report/scaling_plots.rst", category="Scaling"),
    params:
        code=code_stamp("forgetbench.scaling.report", "forgetbench.aggregation.plots"),
    log:
        f"{RESULTS}/logs/plot_scaling.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_scaling.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow/scripts/plot_scaling.py"
