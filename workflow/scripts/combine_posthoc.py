"""Rule `combine_posthoc`: a WiSE-FT or LiNeS model from the base model and the SFT checkpoint, no training.

    snakemake --cores 2 results/default/smollm2-135m/wise-0.5/lr~2e-05/seed~0/run.json
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    from forgetbench.training.posthoc import combine_checkpoints

    combine_checkpoints(snakemake.input.base, snakemake.input.tuned, snakemake.output.model,
                        snakemake.output.run, snakemake.params.cell, tuned_run=snakemake.input.tuned_run)
