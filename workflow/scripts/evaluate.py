"""Rule `evaluate`: one family of tasks (one or more of the general suite, the domain test set, the general
text) on the base model or one cell, through lm-evaluation-harness, with lm-eval's response cache on. With
the vLLM backend the evaluation runs in the vLLM environment's interpreter (forgetbench.evaluation.job).

    snakemake --cores 2 results/default/smollm2-135m/base/eval/general.json
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    import json
    from pathlib import Path

    from forgetbench.atomic import write_json, write_text
    from forgetbench.evaluation.cache import response_cache
    from forgetbench.evaluation.job import run
    from forgetbench.evaluation.tasks import config_tasks
    from forgetbench.evaluation.vllm_env import vllm_settings

    inputs, params, wildcards = snakemake.input, snakemake.params, snakemake.wildcards
    settings, job = params.evaluation, params.job
    every_task = config_tasks(settings, {"format": params.domain_format, "eval": job.get("domain_eval")})
    vllm = vllm_settings(settings["vllm"], job["gpus"])
    tasks = {name: every_task[name] for name in job["tasks"]}
    # A LoRA cell holds only its adapter, evaluated on top of the base model; a full fine-tune holds all weights.
    model_dir, adapter_dir = inputs.base, None
    if "tuned" in inputs.keys():
        tuned = Path(inputs.tuned)
        model_dir, adapter_dir = (inputs.base, str(tuned)) if (tuned / "adapter_config.json").exists() else (str(tuned), None)
    domain_test = inputs.domain_test if "domain_test" in inputs.keys() else None
    trained = json.loads(Path(inputs.run).read_text()) if "run" in inputs.keys() else {}
    status = trained.get("status", "finished")
    extra = {"cell": job["identity"], "family": wildcards.family}
    # what max_seq_len cut of the training data: a column of the trade-off table
    facts = {key: trained[key] for key in ("examples", "truncated_responses", "truncated_share") if key in trained}
    if facts:
        extra["training"] = facts
    cell = {**job["identity"], "evaluation": settings, "family": wildcards.family}
    if status == "diverged":
        from forgetbench.provenance import provenance

        # Nothing to measure on NaN weights; the tables show the cell as diverged and the sweep goes on.
        write_json(snakemake.output[0], {"status": "diverged", "metrics": {t: {"score": None} for t in tasks},
                                         **extra, **provenance(cell)})
        write_text(snakemake.output.per_item, "")
        print("the cell diverged in training: not evaluated", flush=True)
    else:
        options = dict(backend=job["backend"], batch_size=settings["batch_size"], seed=settings["seed"],
                       dtype=settings["dtype"], max_length=settings["max_length"], vllm=vllm,
                       domain_format=params.domain_format, chat_template=job["chat_template"])
        if settings.get("include_path"):
            options["include_path"] = settings["include_path"]
        if job.get("domain_max_seq_len"):  # a text domain's loss scores each document's first training window
            options["domain_max_seq_len"] = job["domain_max_seq_len"]
        cache = response_cache(Path(snakemake.output[0]).parent / "cache", wildcards.family, model_dir, adapter_dir,
                               data_files=[domain_test], tasks=tasks, **options)
        kwargs = dict(model_dir=str(model_dir), out_json=str(snakemake.output[0]), tasks=tasks, adapter_dir=adapter_dir,
                      domain_test_path=domain_test, cache=str(cache), items_out=str(snakemake.output.per_item),
                      **options)
        run({"kwargs": kwargs, "extra": extra, "provenance": cell}, job["backend"], snakemake.threads, job["gpus"],
            job=f"rule evaluate ({snakemake.output[0]})")
