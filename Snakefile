# forgetbench: what domain fine-tuning costs a language model in general capability.
#   snakemake --cores 2                 the experiment in config.yaml, end to end
#   snakemake --profile slurm           the same on a SLURM cluster
#   snakemake --report report.html      tables and figures as one HTML report
from snakemake.utils import min_version, validate

from forgetbench.config import find_unknown_keys, load_schema

min_version("9.0")


# A --configfile replaces the default experiment instead of being merged into it (Snakemake merges by default).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


SCHEMA = f"{workflow.basedir}/workflow/schemas/config.schema.yaml"
CONFIG_FILE = str((workflow.overwrite_configfiles or workflow.configfiles or ["config"])[-1])
find_unknown_keys(config, load_schema(SCHEMA), CONFIG_FILE)  # first: a misspelt key gets a suggestion
validate(config, SCHEMA)


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/scaling.smk"
include: "rules/aggregate.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True
