# forgetbench: what domain fine-tuning costs a language model in general capability.
#   snakemake --cores 2                 the experiment in config.yaml, end to end
#   snakemake --profile slurm           the same on a SLURM cluster
#   snakemake --report report.html      tables and figures as one HTML report
from snakemake.utils import min_version
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from forgetbench.config import load_experiment
from forgetbench.config.file import check_duplicate_keys

min_version("9.0")


# A --configfile replaces the default experiment instead of being merged into it (Snakemake merges by default).
if not workflow.overwrite_configfiles:
    check_duplicate_keys("config.yaml")  # first: Snakemake's own YAML error names neither the file nor the line

    configfile: "config.yaml"


# Every parse-time check, once, and everything the rules need from the config (forgetbench.config).
EXPERIMENT = load_experiment(
    config,
    schema=f"{workflow.basedir}/workflow/schemas/config.schema.yaml",
    config_files=[str(f) for f in (workflow.overwrite_configfiles or workflow.configfiles)],
    overrides=dict(workflow.config_settings.config),  # --config key=value: an error there names the command line
    use_conda=DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method,
    checked_files=() if workflow.overwrite_configfiles else ("config.yaml",),
)


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
