"""Rule `prepare_domain`: the domain's train and test splits as canonical JSONL records.

    snakemake --cores 2 results/default/data/medcalc-synth/train.jsonl
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    from forgetbench.data.sources import write_domain

    write_domain(snakemake.config["domain"], snakemake.output.train, snakemake.output.test)
