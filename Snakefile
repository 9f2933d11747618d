# forgetbench: what domain fine-tuning costs a language model in general capability.
#   snakemake --cores 2                 the experiment in config.yaml, end to end
#   snakemake --profile slurm           the same on a SLURM cluster
#   snakemake --report report.html      tables and figures as one HTML report
from snakemake.utils import min_version, validate

from forgetbench.config import check_raw_config, find_unknown_keys, load_schema
from forgetbench.config_file import check_duplicate_keys, check_schema, resolve_paths

min_version("9.0")


# A --configfile replaces the default experiment instead of being merged into it (Snakemake merges by default).
if not workflow.overwrite_configfiles:
    check_duplicate_keys("config.yaml")  # first: Snakemake's own YAML error names neither the file nor the line

    configfile: "config.yaml"


SCHEMA = f"{workflow.basedir}/workflow/schemas/config.schema.yaml"
CONFIG_FILES = [str(f) for f in (workflow.overwrite_configfiles or workflow.configfiles)]
CONFIG_FILE = (CONFIG_FILES or ["config"])[-1]
OVERRIDES = dict(workflow.config_settings.config)  # --config key=value: an error there names the command line
for path in CONFIG_FILES:
    check_duplicate_keys(path)
find_unknown_keys(config, load_schema(SCHEMA), CONFIG_FILE, OVERRIDES)  # first: a misspelt key gets a suggestion
check_raw_config(config, CONFIG_FILE, OVERRIDES)  # what the defaults would hide
check_schema(config, load_schema(SCHEMA), CONFIG_FILE, OVERRIDES)  # one line; validate() below fills the defaults
validate(config, SCHEMA)
resolve_paths(config, CONFIG_FILE)


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
