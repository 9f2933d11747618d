# Evaluation: one job per model × cell × task family, so a failed or preempted family reruns alone; lm-eval's
# response cache (under eval/cache/) lets a killed job resume without recomputing the answered requests.
# Under `--profile slurm` the families of a cell run in one submission (the profile's `groups`): a failed family
# fails its submission, Snakemake removes the outputs of the cell's families that had finished in it, and the
# rerun redoes them with their answers read back from that cache (slurm/config.yaml, `group-components`).
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
        # The one evaluation slot of a SLURM submission (the profile sets its limit, 1, and its scope, local):
        # a submission holding several families of a cell (the profile's `groups`) then asks one family's GPUs,
        # memory and threads and the sum of their runtimes, which is how the job step runs them: one after
        # another. Without that limit (local runs) the resource limits nothing.
        eval_slot=1,
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
