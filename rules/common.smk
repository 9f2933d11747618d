# Config checks that a schema cannot express, the cells of the sweep, and the input helpers of every rule.
import re

from forgetbench.config import cells, check_config, format_lr

check_config(config, load_schema(SCHEMA), CONFIG_FILE)

RESULTS = f"results/{config['experiment']}"
DOMAIN = config["domain"]["name"]
CELLS = cells(config)
ENV = "../envs/forgetbench.yaml"


wildcard_constraints:
    model="|".join(re.escape(m) for m in config["models"]),
    method="|".join(re.escape(m) for m in config["methods"]),
    lr=r"[0-9][0-9.e+-]*",
    seed=r"\d+",
    cell=r"base|[^/]+/lr~[0-9][0-9.e+-]*/seed~\d+",


def cell_config(wildcards):
    """The config of one training cell, as recorded in its run.json and metrics."""
    lr = next(l for l in config["learning_rates"] if format_lr(l) == wildcards.lr)
    return {
        "experiment": config["experiment"],
        "model": wildcards.model,
        "model_source": config["models"][wildcards.model],
        "chat_template": config["models"][wildcards.model]["chat_template"],
        "method": wildcards.method,
        "hparams": config["methods"][wildcards.method],
        "lr": float(lr),
        "seed": int(wildcards.seed),
        "training": config["training"],
        "domain": config["domain"],
    }


def eval_identity(wildcards):
    """Who an evaluation belongs to: the base model or a cell, parsed from the {cell} wildcard."""
    if wildcards.cell == "base":
        return {"model": wildcards.model, "method": "base", "lr": None, "seed": None}
    method, lr, seed = re.fullmatch(r"([^/]+)/lr~([^/]+)/seed~(\d+)", wildcards.cell).groups()
    return {"model": wildcards.model, "method": method, "lr": float(lr), "seed": int(seed)}


def get_eval_inputs(wildcards):
    inputs = {
        "base": f"{RESULTS}/{wildcards.model}/base/model",
        "domain_test": f"{RESULTS}/data/{DOMAIN}/test.jsonl",
    }
    if wildcards.cell != "base":
        inputs["tuned"] = f"{RESULTS}/{wildcards.model}/{wildcards.cell}/model"
        inputs["run"] = f"{RESULTS}/{wildcards.model}/{wildcards.cell}/run.json"
    return inputs


def get_all_metrics():
    """Every evaluation: the base model once per model, then every cell."""
    base = [f"{RESULTS}/{m}/base/eval/metrics.json" for m in config["models"]]
    return base + [f"{RESULTS}/{c.path}/eval/metrics.json" for c in CELLS]


def get_final_outputs():
    tables = [f"{RESULTS}/tables/tradeoff.{ext}" for ext in ("csv", "parquet", "md", "tex")]
    return tables + [f"{RESULTS}/figures/tradeoff.png"]
