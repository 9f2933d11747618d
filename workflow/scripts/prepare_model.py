"""Rule `prepare_model`: one model source → a safetensors HF directory.

    snakemake --cores 2 results/default/smollm2-135m/base/model
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    import torch

    from forgetbench.models.prepare import prepare_model

    torch.set_num_threads(snakemake.threads)
    name = snakemake.wildcards.model
    prepare_model(name, snakemake.config["models"][name], snakemake.output[0])
