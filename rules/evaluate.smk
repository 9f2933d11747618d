# Evaluation: one job per model × cell × task family, so a failed or preempted family reruns alone; lm-eval's
# response cache (under eval/cache/) lets a killed job resume without recomputing the answered requests.
localrules:
    merge_evaluations,


rule evaluate:
    input:
        unpack(get_eval_inputs),
    output:
        json=f"{RESULTS}/{{model}}/{{cell}}/eval/{{family}}.json",
        per_item=f"{RESULTS}/{{model}}/{{cell}}/eval/{{family}}.items.jsonl",
    params:
        job=eval_job,
        evaluation=config["evaluation"],
        domain_format=config["domain"]["format"],
    log:
        f"{RESULTS}/logs/evaluate/{{model}}/{{cell}}/{{family}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}/{{cell}}/{{family}}.tsv"
    conda:
        eval_env
    threads: config["resources"]["eval_threads"]
    resources:
        mem_mb=RESOURCES.mem_mb("evaluate"),
        runtime=RESOURCES.runtime("evaluate"),
        gpu=eval_gpus,
    script:
        "../workflow/scripts/evaluate.py"


rule merge_evaluations:
    input:
        unpack(get_family_results),
    output:
        json=f"{RESULTS}/{{model}}/{{cell}}/eval/metrics.json",
        per_item=f"{RESULTS}/{{model}}/{{cell}}/eval/items.jsonl",
    log:
        f"{RESULTS}/logs/merge_evaluations/{{model}}/{{cell}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge_evaluations/{{model}}/{{cell}}.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../workflow/scripts/merge_evaluations.py"
