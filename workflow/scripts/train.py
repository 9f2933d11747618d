"""Rules `train` and `train_scaling`: fine-tune one cell with transformers' Trainer and the method's loss
(`train_scaling` also keeps checkpoints at the configured steps), in one process or, with several GPUs (or
training.processes), in one process per GPU under torchrun (forgetbench.training.launch).

    snakemake --cores 2 results/default/smollm2-135m/sft/lr~2e-05/seed~0/run.json
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from forgetbench.training.launch import run

    spec = dict(
        base_model=snakemake.input.model,  # noqa: F821
        train_jsonl=snakemake.input.train,  # noqa: F821
        out_model=snakemake.output.model,  # noqa: F821
        out_log=snakemake.output.log,  # noqa: F821
        out_run=snakemake.output.run,  # noqa: F821
        cell=snakemake.params.cell,  # noqa: F821
        base_losses=snakemake.input.get("base_losses"),  # noqa: F821
        checkpoint_steps=snakemake.params.get("checkpoint_steps"),  # noqa: F821
    )
    job = f"rule {snakemake.rule} ({snakemake.output.run})"  # noqa: F821
    nodes = snakemake.resources.get("nodes", 1)  # noqa: F821
    # the job's GPUs are over all its nodes; each node's torchrun sees its own
    run(spec, snakemake.params.processes, snakemake.threads, gpus=snakemake.resources.get("gpu", 0) // nodes,  # noqa: F821
        job=job, nodes=nodes)
