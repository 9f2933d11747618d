# Config checks that a schema cannot express, the cells of the sweep, and the input helpers of every rule.
import re

from snakemake_interface_executor_plugins.settings import DeploymentMethod

from forgetbench.config import (cells, check_config, format_lr, job_gpus, job_nodes, method_folders, method_hparams,
                               registry_name, scaling_runs, training_processes)
from forgetbench.config_inputs import check_inputs
from forgetbench.config_lengths import check_lengths
from forgetbench.evaluation.parallel import evaluation_plans
from forgetbench.evaluation.tasks import (DOMAIN_TASKS, check_scaling_tasks, config_tasks, domain_score_tasks,
                                          eval_families, include_paths, tasks_stamp)
from forgetbench.evaluation.vllm_env import check_vllm_environment
from forgetbench.job_resources import plan_resources
from forgetbench.methods import get_method
from forgetbench.provenance import code_stamp, method_version

check_config(config, load_schema(SCHEMA), CONFIG_FILE)

RESULTS = f"results/{config['experiment']}"
check_inputs(config, CONFIG_FILE, RESULTS)
check_lengths(config, CONFIG_FILE, RESULTS)  # where the tokenizers exist: a refused length costs no job
DOMAIN = config["domain"]["name"]
# domain.assistant_turns (messages only) as a params entry where it is set: absent, the params of the jobs that
# encode the domain data are those of a config without it, so existing results are not rerun.
DOMAIN_TURNS = {"assistant_turns": config["domain"]["assistant_turns"]} if "assistant_turns" in config["domain"] else {}
CELLS = cells(config)
METHOD_FOLDERS = method_folders(config)
TRAINED = [m for m in config["methods"] if get_method(registry_name(config, m)).kind == "train"]
POSTHOC = [f for f, (name, _) in METHOD_FOLDERS.items() if get_method(registry_name(config, name)).kind == "posthoc"]
EVAL_FAMILIES = eval_families(config["evaluation"], CONFIG_FILE, config["domain"])
TASK_STAMPS = {family: tasks_stamp(tasks, include_paths(config["evaluation"])) for family, tasks in EVAL_FAMILIES.items()}
SCALING_RUNS = {(r.model, r.method): r for r in scaling_runs(config)}
# At each checkpoint: the domain score (its tasks, forgetbench.evaluation.tasks.domain_score_tasks: the `domain` task,
# the domain.eval lm-eval tasks keyed "domain.<task>", or none), the general text (forgetting) and the chosen general
# tasks. The domain test loss (the fine-tuning loss) is computed beside them (evaluate_checkpoint.py).
SCALING_DOMAIN = domain_score_tasks(config)
SCALING_TASKS = {
    **config.get("scaling", {}).get("general", {}),
    **{key: settings for key, settings in config_tasks(config["evaluation"], config["domain"]).items()
       if key in SCALING_DOMAIN},
    "general_text": config["evaluation"]["forgetting"],
}
if SCALING_RUNS:
    check_scaling_tasks(SCALING_TASKS, include_paths(config["evaluation"]), CONFIG_FILE)
ENV = "../envs/forgetbench.yaml"
CUDA_ENV = "../envs/forgetbench-cuda.yaml"


def model_gpus(wildcards):
    """GPUs per training job of a model (and of score_base): its own `gpus` in config, else `resources.gpu`."""
    return job_gpus(config, wildcards.model)


def eval_gpus(wildcards):
    """GPUs per evaluation job of a model: evaluation's own, at most what vLLM's tensor parallelism can use."""
    return EVAL_PLANS[wildcards.model].gpus


def model_nodes(wildcards):
    """Nodes of a training job (models.<name>.nodes): the slurm plugin's `nodes` resource, one task per node."""
    return job_nodes(config, wildcards.model)


def train_gpus(wildcards):
    """GPUs of a training job over all its nodes (the slurm plugin's --gpus counts the whole job's)."""
    return job_gpus(config, wildcards.model) * job_nodes(config, wildcards.model)


def train_processes(wildcards):
    """Processes of a training job: one per GPU under torchrun (training.processes overrides)."""
    return training_processes(config, wildcards.model)


# The evaluation backend, GPUs and vLLM tensor-parallel size of each model, fixed here from its evaluation jobs'
# GPUs and its shape: the DAG is often built on a login node without GPUs, so `auto` cannot look at the machine
# (forgetbench.evaluation.backend), and a size vLLM would refuse inside each job is refused now
# (forgetbench.evaluation.parallel).
EVAL_PLANS = evaluation_plans(config, CONFIG_FILE, RESULTS)
EVAL_BACKEND = {m: plan.backend for m, plan in EVAL_PLANS.items()}
USE_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
VLLM_MODELS = [m for m, backend in EVAL_BACKEND.items() if backend == "vllm"]
if VLLM_MODELS and not USE_CONDA:  # under --use-conda Snakemake builds the environment itself
    check_vllm_environment(CONFIG_FILE, VLLM_MODELS)


# Per model: the training memory check (refuses a config that cannot fit, before any job) and the mem_mb and
# runtime each rule asks for, grown with the parameter count (forgetbench.job_resources).
RESOURCES = plan_resources(config, CONFIG_FILE, RESULTS, SCALING_RUNS.values())


def train_env(wildcards):
    """The environment of a model's training jobs: CUDA torch when they have GPUs (the main one is CPU-only)."""
    return CUDA_ENV if model_gpus(wildcards) > 0 else ENV


def eval_env(wildcards):
    """The environment of a model's evaluation jobs: vLLM's own (its CUDA build on GPUs, its CPU build
    without) or the main one."""
    gpus = eval_gpus(wildcards) > 0
    if EVAL_BACKEND[wildcards.model] == "hf":
        return CUDA_ENV if gpus else ENV
    return "../envs/vllm-cuda.yaml" if gpus else "../envs/vllm.yaml"


def alternatives(names):
    """A wildcard constraint that matches exactly these names."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    model=alternatives(config["models"]),
    method=alternatives(METHOD_FOLDERS),
    lr=r"[0-9][0-9.e+-]*",
    seed=r"\d+",
    cell=r"base|[^/]+/lr~[0-9][0-9.e+-]*/seed~\d+",
    run=alternatives(sorted({r.method for r in SCALING_RUNS.values()})),
    step=r"[1-9]\d*",
    family=alternatives(EVAL_FAMILIES),


def weights(path):
    """Fine-tuned weights: removed once every rule that reads them has run (`temp`), unless
    training.keep_weights; the base models are always kept."""
    return path if config["training"]["keep_weights"] else temp(path)


def cell_config(wildcards):
    """The config of one cell, as recorded in its run.json and metrics."""
    lr = next(l for l in config["learning_rates"] if format_lr(l) == wildcards.lr)
    name, variant = METHOD_FOLDERS[wildcards.method]
    method = get_method(registry_name(config, name))(**method_hparams(config, name))
    return {
        "experiment": config["experiment"],
        "model": wildcards.model,
        "model_source": config["models"][wildcards.model],
        "chat_template": config["models"][wildcards.model]["chat_template"],
        "method": wildcards.method,
        "registry_name": registry_name(config, name),
        "method_version": method_version(type(method)),
        "hparams": method_hparams(config, name),
        "variant_settings": method.variants()[variant] if method.kind == "posthoc" else {},
        "lr": float(lr),
        "seed": int(wildcards.seed),
        "training": config["training"],
        "domain": config["domain"],
    }


def lengths_checked(wildcards):
    """score_base's output, as an input of every training job and of the base models' evaluations (the cells'
    wait through their training): it refuses a dataset whose responses max_seq_len cuts
    (training.max_truncated_share) before any job trains or evaluates. ancient(): only the order matters, so a
    rerun of score_base retrains or re-evaluates nothing."""
    return ancient(f"{RESULTS}/{wildcards.model}/base/train_scores/token_stats.json")


def get_train_inputs(wildcards):
    inputs = {
        "model": f"{RESULTS}/{wildcards.model}/base/model",
        "train": f"{RESULTS}/data/{DOMAIN}/train.jsonl",
        "lengths_checked": lengths_checked(wildcards),
    }
    if get_method(registry_name(config, wildcards.method)).needs_base_scores:
        inputs["base_losses"] = f"{RESULTS}/{wildcards.model}/base/train_scores/sample_losses.jsonl"
    return inputs


def get_posthoc_inputs(wildcards):
    name, _ = METHOD_FOLDERS[wildcards.method]
    source = get_method(registry_name(config, name)).source_method
    cell = f"{RESULTS}/{wildcards.model}/{source}/lr~{wildcards.lr}/seed~{wildcards.seed}"
    return {"base": f"{RESULTS}/{wildcards.model}/base/model", "tuned": f"{cell}/model", "tuned_run": f"{cell}/run.json"}


def eval_identity(wildcards):
    """Who an evaluation belongs to: the base model or a cell, parsed from the {cell} wildcard."""
    if wildcards.cell == "base":
        return {"model": wildcards.model, "method": "base", "lr": None, "seed": None}
    method, lr, seed = re.fullmatch(r"([^/]+)/lr~([^/]+)/seed~(\d+)", wildcards.cell).groups()
    return {"model": wildcards.model, "method": method, "lr": float(lr), "seed": int(seed)}


def eval_job(wildcards):
    """What one evaluation job needs of its wildcards, in one params function: Snakemake inspects the signature
    of every params and resources function of every job (four functions here cost 0.5-1 s of a paper-scale
    dry run)."""
    return {
        "identity": eval_identity(wildcards),
        "tasks": EVAL_FAMILIES[wildcards.family],
        "chat_template": config["models"][wildcards.model]["chat_template"],
        "gpus": eval_gpus(wildcards),
        "backend": EVAL_BACKEND[wildcards.model],
        "tasks_code": TASK_STAMPS[wildcards.family],
        # only where configured: the default's params (and so its results) stay as they were
        **({"domain_eval": config["domain"]["eval"]} if config["domain"].get("eval") else {}),
        **({"domain_max_seq_len": config["training"]["max_seq_len"]} if config["domain"]["format"] == "text" else {}),
    }


def get_eval_inputs(wildcards):
    inputs = {"base": f"{RESULTS}/{wildcards.model}/base/model"}
    if wildcards.cell == "base":
        inputs["lengths_checked"] = lengths_checked(wildcards)
    if DOMAIN_TASKS & set(EVAL_FAMILIES[wildcards.family]):
        inputs["domain_test"] = f"{RESULTS}/data/{DOMAIN}/test.jsonl"
    if wildcards.cell != "base":
        inputs["tuned"] = f"{RESULTS}/{wildcards.model}/{wildcards.cell}/model"
        inputs["run"] = f"{RESULTS}/{wildcards.model}/{wildcards.cell}/run.json"
    return inputs


def get_family_results(wildcards):
    """Every task family's result and per-item scores of one model or cell, merged into its eval/metrics.json
    and eval/items.jsonl."""
    folder = f"{RESULTS}/{wildcards.model}/{wildcards.cell}/eval"
    return {"json": [f"{folder}/{family}.json" for family in EVAL_FAMILIES],
            "per_item": [f"{folder}/{family}.items.jsonl" for family in EVAL_FAMILIES]}


def scaling_cell_config(wildcards):
    run = SCALING_RUNS[(wildcards.model, wildcards.run)]
    return {
        "experiment": config["experiment"],
        "model": wildcards.model,
        "model_source": config["models"][wildcards.model],
        "chat_template": config["models"][wildcards.model]["chat_template"],
        "method": run.method,
        "registry_name": run.registry_name,
        "method_version": method_version(get_method(run.registry_name)),
        "hparams": {k: list(v) if isinstance(v, tuple) else v for k, v in run.hparams},
        "lr": run.lr,
        "seed": run.seed,
        "training": {**config["training"], "max_steps": max(run.steps)},
        "domain": config["domain"],
        "checkpoint_steps": list(run.steps),
    }


def get_checkpoint_inputs(wildcards):
    """The base model and, for a run's checkpoint, the run's checkpoints folder (step 0 is the base model)."""
    inputs = {
        "base": f"{RESULTS}/{wildcards.model}/base/model",
        "domain_test": f"{RESULTS}/data/{DOMAIN}/test.jsonl",
    }
    if "run" in wildcards.keys():
        run = f"{RESULTS}/{wildcards.model}/{wildcards.run}/lr~{wildcards.lr}/seed~{wildcards.seed}"
        inputs.update(checkpoints=f"{run}/checkpoints", run=f"{run}/run.json")
    else:
        inputs["lengths_checked"] = lengths_checked(wildcards)
    return inputs


def checkpoint_identity(wildcards):
    run = SCALING_RUNS[(wildcards.model, wildcards.run)]
    return {"model": wildcards.model, "method": run.method, "registry_name": run.registry_name,
            "lr": run.lr, "seed": run.seed, "step": int(wildcards.step)}


def get_scaling_metrics():
    base = [f"{RESULTS}/{model}/base/step~0/metrics.json" for model in sorted({r.model for r in SCALING_RUNS.values()})]
    return base + [f"{RESULTS}/{run.path}/step~{step}/metrics.json" for run in SCALING_RUNS.values() for step in run.steps]


def get_token_stats():
    return [f"{RESULTS}/{m}/base/train_scores/token_stats.json" for m in config["models"]]


def get_all_metrics():
    """Every evaluation's metrics and per-item scores: the base model once per model, then every cell."""
    folders = [f"{RESULTS}/{m}/base/eval" for m in config["models"]] + [f"{RESULTS}/{c.path}/eval" for c in CELLS]
    return {"metrics": [f"{f}/metrics.json" for f in folders], "per_item": [f"{f}/items.jsonl" for f in folders]}


def get_final_outputs():
    tables = [f"{RESULTS}/tables/tradeoff.{ext}" for ext in ("csv", "parquet", "md", "tex", "html")]
    tables.append(f"{RESULTS}/tables/tradeoff_grouped.csv")
    tables += [f"{RESULTS}/tables/token_stats.{ext}" for ext in ("csv", "md", "html")]
    outputs = tables + [f"{RESULTS}/figures/{name}.png" for name in ("tradeoff", "loss_vs_forgetting", "token_probs")]
    if SCALING_RUNS:
        outputs += [f"{RESULTS}/tables/scaling_fits.{ext}" for ext in ("csv", "md", "tex", "html")]
        outputs += [f"{RESULTS}/figures/{name}.png" for name in
                    ("scaling_steps", "scaling_ft_loss", "scaling_predicted", "learning_vs_forgetting")]
    return outputs
