"""Rule `evaluate`: the general suite, the domain test set and the general-text loss of one model or cell,
through lm-evaluation-harness.

    snakemake --cores 2 results/default/smollm2-135m/base/eval/metrics.json
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    import json
    from pathlib import Path

    import torch

    from forgetbench.atomic import write_json
    from forgetbench.evaluation.runner import evaluate
    from forgetbench.provenance import provenance

    torch.set_num_threads(snakemake.threads)  # noqa: F821
    inputs, params = snakemake.input, snakemake.params  # noqa: F821
    settings = params.evaluation
    tasks = {**settings["general"], "domain": settings["domain"], "general_text": settings["forgetting"]}
    # A LoRA cell holds only its adapter, evaluated on top of the base model; a full fine-tune holds all weights.
    model_dir, adapter_dir = inputs.base, None
    if "tuned" in inputs.keys():
        tuned = Path(inputs.tuned)
        model_dir, adapter_dir = (inputs.base, str(tuned)) if (tuned / "adapter_config.json").exists() else (str(tuned), None)
    extra = {"cell": params.identity, **provenance({**params.identity, "evaluation": settings})}
    status = json.loads(Path(inputs.run).read_text())["status"] if "run" in inputs.keys() else "finished"
    if status == "diverged":
        # Nothing to measure on NaN weights; the tables show the cell as diverged and the sweep goes on.
        write_json(snakemake.output[0], {"status": "diverged", "metrics": {t: {"score": None} for t in tasks}, **extra})  # noqa: F821
        print("the cell diverged in training: not evaluated", flush=True)
    else:
        evaluate(
            model_dir,
            snakemake.output[0],  # noqa: F821
            tasks,
            adapter_dir=adapter_dir,
            backend=settings["backend"],
            batch_size=settings["batch_size"],
            seed=settings["seed"],
            domain_test_path=inputs.domain_test,
            domain_format=params.domain_format,
            chat_template=params.chat_template,
            extra=extra,
        )
