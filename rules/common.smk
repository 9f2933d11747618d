# The input, params and resources helpers of every rule, read from the checked experiment (EXPERIMENT, made
# once by the Snakefile: forgetbench.config).
import os
import re

from forgetbench.evaluation.tasks import DOMAIN_TASKS
from forgetbench.provenance import code_stamp

RESULTS = EXPERIMENT.results
RESOURCES = EXPERIMENT.resources
DOMAIN = EXPERIMENT.domain
CONFIG_FILE = EXPERIMENT.config_file
# domain.assistant_turns (messages only) as a params entry where it is set: absent, the params of the jobs that
# encode the domain data are those of a config without it, so existing results are not rerun.
DOMAIN_TURNS = {"assistant_turns": config["domain"]["assistant_turns"]} if "assistant_turns" in config["domain"] else {}
CELLS = EXPERIMENT.cells
METHOD_FOLDERS = EXPERIMENT.method_folders
TRAINED = EXPERIMENT.trained
POSTHOC = EXPERIMENT.posthoc
EVAL_FAMILIES = EXPERIMENT.families
SCALING_RUNS = EXPERIMENT.scaling_runs
ENV = "../envs/forgetbench.yaml"
CUDA_ENV = "../envs/forgetbench-cuda.yaml"


def model_gpus(wildcards):
    """GPUs per training job of a model (and of score_base): its own `gpus` in config, else `resources.gpu`."""
    return EXPERIMENT.training_gpus(wildcards.model)


def eval_gpus(wildcards):
    """GPUs per evaluation job of a model: evaluation's own, at most what vLLM's tensor parallelism can use."""
    return EXPERIMENT.evaluation[wildcards.model].gpus


def eval_backend(wildcards):
    """hf or vllm: fixed at parse time (forgetbench.config.parallel), a login node having no GPUs to look at."""
    return EXPERIMENT.evaluation[wildcards.model].backend


def model_nodes(wildcards):
    """Nodes of a training job (models.<name>.nodes): the slurm plugin's `nodes` resource, one task per node."""
    return EXPERIMENT.nodes(wildcards.model)


def train_gpus(wildcards):
    """GPUs of a training job over all its nodes (the slurm plugin's --gpus counts the whole job's)."""
    return EXPERIMENT.training_gpus(wildcards.model) * EXPERIMENT.nodes(wildcards.model)


def train_processes(wildcards):
    """Processes of a training job: one per GPU under torchrun (training.processes overrides)."""
    return EXPERIMENT.processes(wildcards.model)


def train_env(wildcards):
    """The environment of a model's training jobs: CUDA torch when they have GPUs (the main one is CPU-only)."""
    return CUDA_ENV if model_gpus(wildcards) > 0 else ENV


def eval_env(wildcards):
    """The environment of a model's evaluation jobs: vLLM's own (its CUDA build on GPUs, its CPU build
    without) or the main one."""
    gpus = eval_gpus(wildcards) > 0
    if eval_backend(wildcards) == "hf":
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
    """The config of one trained cell or scaling run, as recorded in its run.json and metrics."""
    folder = wildcards.method if "method" in wildcards.keys() else wildcards.run
    return EXPERIMENT.cell_config(wildcards.model, folder, wildcards.lr, wildcards.seed)


def run_folder(wildcards, folder):
    """A cell's or scaling run's folder: the {model}, {lr} and {seed} wildcards with this method folder."""
    return f"{RESULTS}/{wildcards.model}/{folder}/lr~{wildcards.lr}/seed~{wildcards.seed}"


# No ordering-only inputs (ancient() files a job waits for without reading): Snakemake 9 skips the params, code
# and input checks of every job downstream of a job that reruns and then, where the link is ancient, does not rerun
# it either (dag.update_needrun's masking), so a changed setting would silently leave trained and evaluated cells
# as they were. A training job waits for its model's base evaluation through the base_checked checkpoint instead:
# asked for here, it holds the job back until it has run once, and is no input of it.
def wait_for_base_checked(wildcards, folder):
    """Only a job that has not trained yet waits. Snakemake 9 skips the rerun checks of a job that waits for a
    checkpoint until the checkpoint has run, and then reruns everything downstream of it (its first pass marked
    them), so a trained cell must not wait: results made before the checkpoint existed would be re-evaluated, or,
    where nothing asks for the checkpoint, a changed setting would leave them as they were (both tested)."""
    if not os.path.exists(f"{run_folder(wildcards, folder)}/run.json"):
        checkpoints.base_checked.get(model=wildcards.model)


def get_train_inputs(wildcards):
    wait_for_base_checked(wildcards, wildcards.method)
    inputs = {
        "model": f"{RESULTS}/{wildcards.model}/base/model",
        "train": f"{RESULTS}/data/{DOMAIN}/train.jsonl",
    }
    if EXPERIMENT.method_class(wildcards.method).needs_base_scores:
        inputs["base_losses"] = f"{RESULTS}/{wildcards.model}/base/train_scores/sample_losses.jsonl"
    return inputs


def get_scaling_train_inputs(wildcards):
    wait_for_base_checked(wildcards, wildcards.run)
    return {"model": f"{RESULTS}/{wildcards.model}/base/model", "train": f"{RESULTS}/data/{DOMAIN}/train.jsonl"}


def get_posthoc_inputs(wildcards):
    source = EXPERIMENT.method_class(wildcards.method).source_method
    cell = run_folder(wildcards, source)
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
        "backend": eval_backend(wildcards),
        "tasks_code": EXPERIMENT.task_stamps[wildcards.family],
        # only where configured: the default's params (and so its results) stay as they were
        **({"domain_eval": config["domain"]["eval"]} if config["domain"].get("eval") else {}),
        **({"domain_max_seq_len": config["training"]["max_seq_len"]} if config["domain"]["format"] == "text" else {}),
    }


def get_eval_inputs(wildcards):
    inputs = {"base": f"{RESULTS}/{wildcards.model}/base/model"}
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


def get_checkpoint_inputs(wildcards):
    """The base model and, for a run's checkpoint, the run's checkpoints folder (step 0 is the base model)."""
    inputs = {
        "base": f"{RESULTS}/{wildcards.model}/base/model",
        "domain_test": f"{RESULTS}/data/{DOMAIN}/test.jsonl",
    }
    if "run" in wildcards.keys():
        run = run_folder(wildcards, wildcards.run)
        inputs.update(checkpoints=f"{run}/checkpoints", run=f"{run}/run.json")
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
