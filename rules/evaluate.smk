rule evaluate:
    input:
        unpack(get_eval_inputs),
    output:
        f"{RESULTS}/{{model}}/{{cell}}/eval/metrics.json",
    params:
        identity=eval_identity,
        evaluation=config["evaluation"],
        domain_format=config["domain"]["format"],
        chat_template=lambda wc: config["models"][wc.model]["chat_template"],
    log:
        f"{RESULTS}/logs/evaluate/{{model}}/{{cell}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}/{{cell}}.tsv"
    conda:
        ENV
    threads: config["resources"]["eval_threads"]
    resources:
        mem_mb=lambda wc, attempt: 12000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
        gpu=config["resources"]["gpu"],
    script:
        "../workflow/scripts/evaluate.py"
