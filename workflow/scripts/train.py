"""Rules `train` and `train_scaling`: fine-tune one cell with transformers' Trainer and the method's loss
(`train_scaling` also keeps checkpoints at the configured steps), in one process or, with several GPUs (or
training.processes), in one process per GPU under torchrun (forgetbench.training.launch).

    snakemake --cores 2 results/default/smollm2-135m/sft/lr~2e-05/seed~0/run.json
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    from forgetbench.training.launch import run

    spec = dict(
        base_model=snakemake.input.model,
        train_jsonl=snakemake.input.train,
        out_model=snakemake.output.model,
        out_log=snakemake.output.log,
        out_run=snakemake.output.run,
        cell=snakemake.params.cell,
        base_losses=snakemake.input.get("base_losses"),
        checkpoint_steps=snakemake.params.get("checkpoint_steps"),
    )
    job = f"rule {snakemake.rule} ({snakemake.output.run})"
    nodes = snakemake.resources.get("nodes", 1)
    # the job's GPUs are over all its nodes; each node's torchrun sees its own
    run(spec, snakemake.params.processes, snakemake.threads, gpus=snakemake.resources.get("gpu", 0) // nodes,
        job=job, nodes=nodes)
