"""Checks of the config against what exists before any job runs: the domain's files and keys, the models'
packages, caches and config.json, and the evaluation data's sizes, few-shot pools and task versions.

The rule: a value that can be checked without running a job is checked when the config is parsed, and a value
that contradicts the model or the data is refused in one line naming the key. Nothing here imports torch,
transformers or lm-eval (a dry run stays fast); files are read once and cached.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from functools import lru_cache
from pathlib import Path

from forgetbench.config.data import check_domain_data
from forgetbench.config.gguf import gguf_model_config
from forgetbench.config.hub import check_hub_datasets
from forgetbench.config.sweep import registry_name
from forgetbench.data.sources import check_domain_keys, hub_dataset_ids, missing_file
from forgetbench.errors import ConfigError
from forgetbench.evaluation.general_data import COUNTS, load
from forgetbench.evaluation.tasks import OFFLINE, SPECS, TASKS_DIR, base_name, config_key, config_tasks
from forgetbench.hub_cache import dataset_cached, offline_env
from forgetbench.training.memory import read_model_config

# The linear layers of common decoder architectures by config.json `model_type`: what LoRA's target_modules can
# name (peft matches a listed name against the last part of each module's name).
LINEAR_MODULES = {
    **dict.fromkeys(("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text",
                     "olmo", "olmo2", "granite"),
                    ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")),
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head"),
    "gpt2": ("c_attn", "c_proj", "c_fc", "lm_head"),
}
# few-shot exemplars of offline tasks whose pool is an official split (the others draw from the records left
# out of the evaluated subset)
FEWSHOT_POOLS = {name: spec.fewshot_pool for name, spec in SPECS.items() if spec.fewshot_pool != "rest"}
VERSION = re.compile(r"^metadata:\s*\n(?:\s+.*\n)*?\s+version:\s*(\S+)", re.M)


def check_inputs(config: dict, where: str, results_dir: str | Path) -> None:
    check_distinct_models(config, where)
    check_model_inputs(config, where)
    check_model_shapes(config, where, results_dir)
    check_domain_inputs(config, where)
    check_hub_datasets(config, where)
    check_task_data(config, where)


def _model_identity(cfg: dict):
    """What makes two model entries the same evaluated model: the weights, and how prompts reach them (the
    same weights with and without their chat template are two models, as the smoke experiment uses them)."""
    source, template = cfg["source"], f"chat_template {cfg.get('chat_template', 'auto')}"
    if source == "local":
        return source, str(Path(cfg["path"]).resolve()), template
    if source == "hub":
        return source, cfg["id"], cfg.get("revision", "main"), template
    return source, cfg["package"], cfg.get("file"), template


def check_distinct_models(config: dict, where: str) -> None:
    """The same weights under two names would be trained and evaluated twice and read as two models."""
    seen = {}
    for name, cfg in config["models"].items():
        identity = _model_identity(cfg)
        if identity in seen:
            raise ConfigError(f"{where}: models.{name} is the same model as models.{seen[identity]} "
                              f"({', '.join(map(str, identity))}): give each model one name")
        seen[identity] = name


def _hub_model_cached(model_id: str, revision: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model_id, "config.json", revision=revision), str)


def check_model_inputs(config: dict, where: str) -> None:
    for name, cfg in config["models"].items():
        key = f"{where}: models.{name}"
        if cfg["source"] == "gguf_package" and cfg.get("file"):
            spec = importlib.util.find_spec(cfg["package"])
            root = Path(spec.origin).parent if spec and spec.origin else None
            # A split package assembles its file on first use: only a plain package must hold it already.
            split = root is not None and "def assemble" in (root / "__init__.py").read_text(errors="replace")
            if root is not None and not split and not any(root.rglob(cfg["file"])):
                found = sorted(p.name for p in root.rglob("*.gguf"))
                raise ConfigError(f"{key}.file: no file matching '{cfg['file']}' in package '{cfg['package']}' "
                                  f"({root}); it holds: {', '.join(found) or 'no .gguf file'}")
        if cfg["source"] == "hub" and offline_env() and not _hub_model_cached(cfg["id"], cfg.get("revision", "main")):
            raise ConfigError(f"{key}: hub model '{cfg['id']}' is not in the local Hugging Face cache and "
                              f"HF_HUB_OFFLINE is set: download it once with network access "
                              f"(`huggingface-cli download {cfg['id']}`) or unset HF_HUB_OFFLINE")


def model_config(name: str, cfg: dict, results_dir: str | Path) -> tuple[dict | None, str]:
    """A model's config.json (prepared, local, cached or fetched hub), else for a GGUF package not yet prepared
    the same fields from its file's header; and where they came from."""
    found, source = read_model_config(name, cfg, Path(results_dir) / name / "base" / "model")
    if found is None and cfg["source"] == "gguf_package":
        return gguf_model_config(cfg)
    return found, source


def _lora_runs(config: dict) -> list[tuple[str, str, dict, str]]:
    """(model, methods key, hyperparameters, the key that sets the rank) of every LoRA the sweep trains: each
    methods entry whose registered method is lora (named instances too) on the models that run it, and the
    scaling study's ranks (with methods.lora's other settings)."""
    runs = [(model, key, hparams, f"methods.{key}.r") for key, hparams in config["methods"].items()
            if registry_name(config, key) == "lora"
            for model, cfg in config["models"].items() if key in cfg.get("methods", config["methods"])]
    scaling = config.get("scaling") or {}
    lora = config["methods"].get("lora") or {}
    runs += [(model, "lora", {**lora, "r": r}, "scaling.lora_ranks") for r in scaling.get("lora_ranks") or []
             for model in scaling.get("models") or config["models"]]
    return runs


def check_model_shapes(config: dict, where: str, results_dir: str | Path) -> None:
    """Settings that contradict a model's shape, read before any job (config.json or the GGUF header):
    LoRA target_modules it does not have, a LoRA rank above its hidden size, a max_seq_len beyond its positions."""
    shapes = {name: model_config(name, cfg, results_dir) for name, cfg in config["models"].items()}
    for model, key, hparams, rank_key in _lora_runs(config):
        shape, source = shapes[model]
        if shape is None:
            continue  # not at hand before the model is prepared (a hub model offline): the job checks
        _check_targets(hparams.get("target_modules", "all-linear"), shape, f"{where}: methods.{key}", model)
        hidden = shape.get("hidden_size")
        if hidden and hparams.get("r", 0) > hidden:
            raise ConfigError(f"{where}: {rank_key}: rank {hparams['r']} is above models.{model}'s hidden size "
                              f"{hidden} (from {source}): a LoRA update of a {hidden}-wide layer has rank {hidden} "
                              f"at most")
    max_len = config["training"]["max_seq_len"]
    for model, (shape, source) in shapes.items():
        positions = (shape or {}).get("max_position_embeddings")
        if positions and max_len > positions:
            raise ConfigError(f"{where}: training.max_seq_len: {max_len} is more than the {positions} positions of "
                              f"models.{model} (max_position_embeddings, from {source}): lower it to {positions}")


def _check_targets(targets, shape: dict, key: str, model: str) -> None:
    """LoRA's target_modules must each name a linear layer of the model: peft silently skips a name that matches
    nothing when another matches (fewer layers trained than configured)."""
    if not isinstance(targets, list):
        return  # "all-linear", or a regular expression peft matches against full module names
    model_type = shape.get("model_type")
    known = LINEAR_MODULES.get(model_type)
    if known is None:
        return  # an architecture this table does not know: peft checks when the job starts
    for target in targets:
        if target not in known:
            near = difflib.get_close_matches(target, known, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ConfigError(f"{key}.target_modules: '{target}' matches no module of models.{model} "
                              f"({model_type}: {', '.join(known)}){hint}")


def check_domain_inputs(config: dict, where: str) -> None:
    domain = config["domain"]
    try:
        check_domain_keys(domain)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if domain["source"] == "local":
        for key in ("path", "test_path"):
            problem = missing_file(Path(domain[key])) if domain.get(key) else None
            if problem:
                raise ConfigError(f"{where}: domain.{key}: {problem}")
    for hub_id in hub_dataset_ids(domain) if offline_env() else []:
        if not dataset_cached(hub_id):
            raise ConfigError(f"{where}: domain: hub dataset '{hub_id}' is not in the local cache and HF_HUB_OFFLINE "
                              f"is set: `python -c \"import datasets; datasets.load_dataset('{hub_id}')\"` once "
                              f"with network access")
    check_domain_data(config, where)


@lru_cache(maxsize=None)
def offline_version(task: str) -> str | None:
    """The version in an offline task's YAML metadata."""
    found = VERSION.search((TASKS_DIR / f"{task}.yaml").read_text())
    return found.group(1) if found else None


def check_task_data(config: dict, where: str) -> None:
    """Offline tasks: the limit within the data, the few-shot count within its pool, a version pin equal to the
    task's version."""
    for key_name, settings in config_tasks(config["evaluation"], config["domain"]).items():
        settings, name = settings or {}, base_name(key_name)
        if (settings.get("source") or "offline") != "offline" or name not in COUNTS:
            continue
        key = f"{where}: {config_key(key_name)}"
        limit, shots = settings.get("limit"), settings.get("num_fewshot") or 0
        if limit is not None and limit > COUNTS[name]:
            raise ConfigError(f"{key}.limit: {limit} is more than the {COUNTS[name]} items task '{name}' has")
        pool = FEWSHOT_POOLS.get(name, "rest")
        if shots and pool is not None:
            available = _pool_size(pool) if pool != "rest" else COUNTS[name] - (limit or COUNTS[name])
            if shots > available:
                raise ConfigError(f"{key}.num_fewshot: {shots} needs {shots} exemplars but task '{name}' has "
                                  f"{available} outside the evaluated items (lower num_fewshot or limit)")
        if settings.get("version") is not None and OFFLINE.get(name):
            version = offline_version(OFFLINE[name])
            if version is not None and not _same_version(version, settings["version"]):
                raise ConfigError(f"{key}.version: pinned to {settings['version']} but the offline task "
                                  f"'{OFFLINE[name]}' is version {version}: results would not be comparable; "
                                  f"update the pin knowingly")


def _same_version(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


@lru_cache(maxsize=None)
def _pool_size(pool: str) -> int:
    return len(load(pool))

