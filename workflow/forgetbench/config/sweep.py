"""What the config fans out into: the cells of the sweep (model × method folder × learning rate × seed), the
scaling study's runs, the method folders, and the GPUs, nodes and processes of each model's jobs; and the record
of a cell that its training job is given (`cell_record`).
"""

from __future__ import annotations

from dataclasses import dataclass

from forgetbench.methods import get_method
from forgetbench.provenance import method_version


class RunFolder:
    """The folder of a cell or a scaling run below results/<experiment>/: <model>/<method>/lr~<lr>/seed~<seed>."""

    @property
    def path(self) -> str:
        return f"{self.model}/{self.method}/lr~{format_lr(self.lr)}/seed~{self.seed}"


@dataclass(frozen=True)
class Cell(RunFolder):
    """One evaluated model of the sweep: a model × method × learning rate × seed. `method` is the folder name:
    the registry name, or for a post-hoc method's variant `<name>-<variant>` (e.g. wise-0.25)."""

    model: str
    method: str
    lr: float
    seed: int
    registry_name: str = ""
    variant: str = ""


def format_lr(lr: float) -> str:
    """The spelling of a learning rate in paths: 2e-05, 0.0002 → '2e-05', '0.0002' (Python's shortest %g)."""
    return f"{float(lr):g}"


METHOD_KEY = "method"  # methods.<name>.method: the registered method a named instance runs (lora-r16: lora)


def registry_name(config: dict, key: str) -> str:
    """The registered method behind the config's `methods.<key>`: its `method` entry, else the key itself."""
    hparams = config["methods"].get(key)
    return hparams.get(METHOD_KEY, key) if isinstance(hparams, dict) else key


def method_hparams(config: dict, key: str) -> dict:
    """The hyperparameters of `methods.<key>`, without the `method` entry that names its registered method."""
    return {k: v for k, v in (config["methods"].get(key) or {}).items() if k != METHOD_KEY}


def method_instance(config: dict, key: str):
    """The method object of `methods.<key>` (a registered name, or a named instance such as lora-r16)."""
    return get_method(registry_name(config, key))(**method_hparams(config, key))


def method_folders(config: dict) -> dict[str, tuple[str, str]]:
    """Folder name → (methods key, variant) of every evaluated method; post-hoc methods fan out over their
    variants (WiSE-FT's α values) from one training run. The key is the registry name or a named instance's
    name (registry_name resolves it)."""
    folders = {}
    for name in config["methods"]:
        method = method_instance(config, name)
        if method.kind == "posthoc":
            for variant in method.variants():
                folders[f"{name}-{variant}" if variant else name] = (name, variant)
        else:
            folders[name] = (name, "")
    return folders


def cells(config: dict, folders: dict[str, tuple[str, str]] | None = None) -> list[Cell]:
    """Every model x method folder x learning rate x seed the sweep evaluates. `folders`: method_folders(config),
    where the caller has it (it instantiates every method)."""
    folders = method_folders(config) if folders is None else folders
    return [
        Cell(model, folder, float(lr), int(seed), registry_name(config, name), variant)
        for model, model_cfg in config["models"].items()
        for folder, (name, variant) in folders.items()
        if name in model_cfg.get("methods", config["methods"])
        for lr in config["learning_rates"]
        for seed in config["seeds"]
    ]


@dataclass(frozen=True)
class ScalingRun(RunFolder):
    """One training run of the scaling study, checkpointed at `steps`: LoRA at a rank, or full fine-tuning."""

    model: str
    method: str  # folder name: scaling-lora-r<r> or scaling-sft
    registry_name: str
    hparams: tuple  # sorted (key, value) pairs, hashable
    lr: float
    seed: int
    steps: tuple[int, ...]


def scaling_runs(config: dict) -> list[ScalingRun]:
    scaling = config.get("scaling")
    if not scaling:
        return []
    lora = get_method("lora")
    base_lora = lora.validate_hparams(method_hparams(config, "lora"), "scaling")
    variants = [(f"scaling-lora-r{r}", "lora", {**base_lora, "r": r}) for r in scaling["lora_ranks"]]
    if scaling["full"]:
        variants.append(("scaling-sft", "sft", {}))
    steps = tuple(sorted(scaling["steps"]))
    return [
        ScalingRun(model, folder, name, tuple(sorted((k, _freeze(v)) for k, v in hp.items())),
                   float(scaling["lr"]), int(scaling["seed"]), steps)
        for model in scaling.get("models") or list(config["models"])
        for folder, name, hp in variants
    ]


def _freeze(value):
    return tuple(value) if isinstance(value, list) else value


def job_gpus(config: dict, model: str) -> int:
    """GPUs per training job of a model (and, unless evaluation_gpus says otherwise, per evaluation job): its own
    `gpus`, else `resources.gpu`."""
    return config["models"][model].get("gpus", config.get("resources", {}).get("gpu", 0))


def evaluation_gpus(config: dict, model: str) -> tuple[int, str | None]:
    """GPUs an evaluation job of a model may use, and the key that set them: models.<name>.evaluation_gpus, else
    evaluation.gpus, else (key None) training's job_gpus. A 7B trains on 4 GPUs and evaluates well on 1; vLLM's
    tensor-parallel size may lower it further (forgetbench.config.parallel)."""
    own = config["models"][model].get("evaluation_gpus")
    if own is not None:
        return own, f"models.{model}.evaluation_gpus"
    common = config.get("evaluation", {}).get("gpus")
    if common is not None:
        return common, "evaluation.gpus"
    return job_gpus(config, model), None


def job_nodes(config: dict, model: str) -> int:
    """Nodes per training job of a model (models.<name>.nodes), each with job_gpus GPUs."""
    return config["models"][model].get("nodes", 1)


def training_processes(config: dict, model: str) -> int:
    """Processes of a model's training jobs: training.processes, else one per GPU of the job (at least 1)."""
    return config.get("training", {}).get("processes") or max(1, job_gpus(config, model))



def cell_record(config: dict, model: str, folder: str, lr: str, seed: str, folders: dict, scaling: dict) -> dict:
    """The config of one trained cell or scaling run (`folder`, with `lr` and `seed` as spelled in its path), as
    its training job records it in run.json and metrics. `folders`: method_folders(config); `scaling`: (model,
    folder) -> ScalingRun."""
    run = scaling.get((model, folder))
    if run is not None:
        registry, hparams = run.registry_name, {k: list(v) if isinstance(v, tuple) else v for k, v in run.hparams}
        method_class, lr_value, seed_value = get_method(registry), run.lr, run.seed
    else:
        name, variant = folders[folder]
        registry, hparams = registry_name(config, name), method_hparams(config, name)
        method_class = get_method(registry)
        lr_value, seed_value = float(next(v for v in config["learning_rates"] if format_lr(v) == lr)), int(seed)
    record = {
        "experiment": config["experiment"],
        "model": model,
        "model_source": config["models"][model],
        "chat_template": config["models"][model]["chat_template"],
        "method": folder,
        "registry_name": registry,
        "method_version": method_version(method_class),
        "hparams": hparams,
    }
    if run is None:
        method = method_class(**hparams)
        record["variant_settings"] = method.variants()[variant] if method.kind == "posthoc" else {}
    record["lr"], record["seed"] = lr_value, seed_value
    record["training"] = config["training"] if run is None else {**config["training"], "max_steps": max(run.steps)}
    record["domain"] = config["domain"]
    if run is not None:
        record["checkpoint_steps"] = list(run.steps)
    return record
