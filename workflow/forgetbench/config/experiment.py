"""The entry point: every parse-time check of a config, once and in order, and what the rules need from it.

    experiment = load_experiment(config, schema="workflow/schemas/config.schema.yaml",
                                 config_files=["configs/x.yaml"], overrides={}, use_conda=False)
    experiment.cells, experiment.families, experiment.resources.mem_mb("train"), ...

The order is the order in which a new user's mistakes are best explained: the file as written (duplicate keys,
unknown keys with a suggestion, NaN, contradicting settings), the schema's first error, then the values, then
what exists on disk (data, models, tasks, lengths), then the plans (evaluation GPUs, the vLLM environment, the
memory check and each job's resources).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forgetbench.config.checks import check_values
from forgetbench.config.file import check_duplicate_keys, check_raw_config, resolve_paths
from forgetbench.config.inputs import check_inputs
from forgetbench.config.lengths import check_lengths
from forgetbench.config.parallel import EvaluationPlan, evaluation_plans
from forgetbench.config.resources import ResourcePlan, plan_resources
from forgetbench.config.schema import check_schema, fill_defaults, find_unknown_keys, load_schema
from forgetbench.config.sweep import (Cell, ScalingRun, cell_record, cells, job_gpus, job_nodes, method_folders,
                                      registry_name, scaling_runs, training_processes)
from forgetbench.config.tasks import check_lm_eval_tasks, check_scaling_tasks, tasks_stamp
from forgetbench.config.vllm import check_vllm_environment
from forgetbench.errors import ConfigError
from forgetbench.evaluation.tasks import config_tasks, domain_score_tasks, include_paths
from forgetbench.methods import get_method


@dataclass
class Experiment:
    """A checked config and what it fans out into. `config` is Snakemake's own dict, validated and filled in."""

    config: dict
    config_file: str  # the file the config came from (the last --configfile), named in every refusal
    results: str  # results/<experiment>
    cells: list[Cell]
    method_folders: dict[str, tuple[str, str]]  # folder -> (methods key, variant)
    trained: list[str]  # methods keys whose cells train
    posthoc: list[str]  # folders of post-hoc methods' variants
    families: dict[str, list[str]]  # evaluation family -> its tasks
    task_stamps: dict[str, str]  # family -> hash of its task files
    scaling_runs: dict[tuple[str, str], ScalingRun]  # (model, run folder) -> run
    domain_score: list[str]  # the tasks whose mean is the domain score (may be none)
    scaling_tasks: dict[str, dict]  # what each scaling checkpoint evaluates
    evaluation: dict[str, EvaluationPlan]  # model -> backend, GPUs, tensor-parallel size
    resources: ResourcePlan
    published: str | None  # a paper's published numbers (`published:`), checked

    @property
    def domain(self) -> str:
        return self.config["domain"]["name"]

    def cell_config(self, model: str, folder: str, lr: str, seed: str) -> dict:
        """The record of a trained cell or scaling run, as its training job writes it to run.json."""
        return cell_record(self.config, model, folder, lr, seed, self.method_folders, self.scaling_runs)

    def method_class(self, folder: str):
        """The registered method class behind a method folder."""
        return get_method(registry_name(self.config, self.method_folders[folder][0]))

    def training_gpus(self, model: str) -> int:
        """GPUs per node of a model's training jobs (and of score_base)."""
        return job_gpus(self.config, model)

    def nodes(self, model: str) -> int:
        return job_nodes(self.config, model)

    def processes(self, model: str) -> int:
        return training_processes(self.config, model)


def check_config_file(config: dict, schema: str, config_file: str, overrides: dict) -> None:
    """The config as written, then the schema; fills in the schema's defaults and resolves relative paths."""
    find_unknown_keys(config, load_schema(schema), config_file, overrides)  # first: a misspelt key gets a suggestion
    check_raw_config(config, config_file, overrides)  # what the defaults would hide
    check_schema(config, load_schema(schema), config_file, overrides)  # one line; fill_defaults' error is a dump
    fill_defaults(config, schema)
    resolve_paths(config, config_file)


def load_experiment(config: dict, schema: str, config_files: list[str], overrides: dict | None = None,
                    use_conda: bool = False, checked_files: tuple[str, ...] = ()) -> Experiment:
    """Check `config` (Snakemake's, read from `config_files`; `overrides`: what --config set) and plan its jobs.
    Raises ConfigError in one line naming the file or the command line, and the key. `checked_files`: those
    whose duplicate keys the Snakefile checked before Snakemake read them."""
    config_file = (config_files or ["config"])[-1]
    overrides = overrides or {}
    checked = {Path(path).resolve() for path in checked_files}
    for path in config_files:
        if Path(path).resolve() not in checked:
            check_duplicate_keys(path)
    check_config_file(config, schema, config_file, overrides)
    families = check_values(config, config_file)
    results = f"results/{config['experiment']}"
    check_inputs(config, config_file, results)
    check_lm_eval_tasks(config["evaluation"], config["domain"], config_file)
    check_lengths(config, config_file, results)  # where the tokenizers exist: a refused length costs no job
    runs = {(r.model, r.method): r for r in scaling_runs(config)}
    domain_score = domain_score_tasks(config)
    scaling_tasks = _scaling_tasks(config, domain_score)
    if runs:
        check_scaling_tasks(scaling_tasks, include_paths(config["evaluation"]), config_file)
    plans = evaluation_plans(config, config_file, results)
    vllm_models = [m for m, plan in plans.items() if plan.backend == "vllm"]
    if vllm_models and not use_conda:  # under --use-conda Snakemake builds the environment itself
        check_vllm_environment(config_file, vllm_models)
    folders = method_folders(config)
    return Experiment(
        config=config, config_file=config_file, results=results, cells=cells(config, folders), method_folders=folders,
        trained=[m for m in config["methods"] if get_method(registry_name(config, m)).kind == "train"],
        posthoc=[f for f, (name, _) in folders.items() if get_method(registry_name(config, name)).kind == "posthoc"],
        families=families,
        task_stamps={family: tasks_stamp(tasks, include_paths(config["evaluation"])) for family, tasks in families.items()},
        scaling_runs=runs, domain_score=domain_score, scaling_tasks=scaling_tasks, evaluation=plans,
        # the memory check (refuses a config that cannot fit, before any job) and each job's mem_mb and runtime
        resources=plan_resources(config, config_file, results, runs.values()),
        published=_published(config, config_file),
    )


def _scaling_tasks(config: dict, domain_score: list[str]) -> dict[str, dict]:
    """At each scaling checkpoint: the chosen general tasks, the domain score's tasks and the general text
    (forgetting); the domain test loss is computed beside them (evaluate_checkpoint.py)."""
    return {
        **config.get("scaling", {}).get("general", {}),
        **{key: settings for key, settings in config_tasks(config["evaluation"], config["domain"]).items()
           if key in domain_score},
        "general_text": config["evaluation"]["forgetting"],
    }


def _published(config: dict, config_file: str) -> str | None:
    """The file of a paper's published numbers, read and checked now so a malformed one fails before any job."""
    if not config.get("published"):
        return None
    # here: the comparison's module reads the file with pandas, which a config without `published:` never needs
    from forgetbench.aggregation.paper_comparison import load_published, published_path

    path = str(published_path(config["published"], config_file))
    try:
        load_published(path)
    except ConfigError as error:
        raise ConfigError(f"{config_file}: {error}") from None
    return path
