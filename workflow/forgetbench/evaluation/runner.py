"""One evaluation of one model: the requested tasks (one family, see evaluation.tasks) in a single
`lm_eval.simple_evaluate` call, with lm-eval's response cache so a killed evaluation resumes where it stopped.

Task names are the canonical ones of forgetbench.evaluation.tasks. Offline tasks get their per-task settings
(limit, seed, few-shot count, domain path and format) through the task metadata that lm-eval hands to their
`custom_dataset` loaders (see workflow/tasks/fb_loaders.py); hub tasks get the same fixed seeded subset through
simple_evaluate's `samples` (lm-eval's own `limit` takes the first N).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from forgetbench.atomic import write_json, write_jsonl
from forgetbench.data.formats import FORMATS, QA_FORMATS
from forgetbench.errors import ConfigError
from forgetbench.evaluation import punkt_data
from forgetbench.evaluation.backend import choose_backend
from forgetbench.evaluation.tasks import (
    DOMAIN_MAX_GEN_TOKS,
    DOMAIN_TASKS,
    LM_EVAL,
    PRIMARY,
    TASKS_DIR,
    base_name,
    check_hub_available,
    hub_error,
    lm_eval_name,
    normalize_tasks,
)


def log(message: str) -> None:
    print(f"[forgetbench.evaluate] {message}", file=sys.stderr, flush=True)


class _DropCustomKwargsHint(logging.Filter):
    """lm-eval warns on every custom_dataset task that kwargs *can* be passed via --metadata; we do pass them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed" not in record.getMessage()


logging.getLogger("lm_eval.api.task").addFilter(_DropCustomKwargsHint())


def _chat_template(tokenizer, mode: str) -> str | None:
    if mode not in ("auto", "none"):
        raise ConfigError(f"chat_template must be 'auto' or 'none', got {mode!r}")
    template = getattr(tokenizer, "chat_template", None)
    return template if template and mode == "auto" else None


def _max_gen_toks(name: str, s: dict, domain_format: str) -> int | None:
    return s["max_gen_toks"] or (DOMAIN_MAX_GEN_TOKS[domain_format] if name == "domain" else None)


def references_beyond_max_gen_toks(tokenizer, test_records: list[dict], domain_format: str, limit, seed: int,
                                   max_toks: int) -> dict:
    """How many evaluated domain items (the loader's seeded subset of `test_records`) have a reference response
    longer than max_gen_toks: a model that answers like its training targets is cut off before its answer line
    on those, and scores 0 there whatever it knows. The dry run counts the same (forgetbench.config.lengths)."""
    from forgetbench.data.prompts import build_response
    from forgetbench.evaluation.general_data import seeded_subset

    items, _ = seeded_subset(test_records, limit, seed)
    lengths = [len(tokenizer(build_response(r, domain_format), add_special_tokens=False)["input_ids"]) for r in items]
    longer = sum(n > max_toks for n in lengths)
    return {"items": longer, "of": len(lengths), "share": longer / len(lengths) if lengths else 0.0,
            "longest_tokens": max(lengths, default=0)}


@dataclass
class LoadedTasks:
    """The lm-eval objects of a job's tasks, by task key: the top task or group, its lm-eval name, its leaves'
    output types, its primary (metric, filter); and the seeded subsets (leaf -> doc indices) of the tasks whose
    data lm-eval loads (hub and lm-eval tasks; offline tasks draw theirs in their loaders)."""

    top: dict
    names: dict[str, str]
    kinds: dict[str, dict[str, str]]
    primary: dict[str, tuple[str, str]]
    samples: dict[str, list[int]]


def _first_metric(task) -> tuple[str, str]:
    """A task's own primary metric: the first of its metric_list (lm-eval's defaults for its output type without
    one) under its first filter."""
    filters = [f.name for f in getattr(task, "_filters", [])] or ["none"]
    return next(iter(task._metric_fn_list)), filters[0]


def _group_metric(group, leaves: dict) -> tuple[str, str]:
    """A group's score: the first of its aggregate_metric_list under its first filter (without a filter_list,
    lm-eval aggregates the filters its leaves report: the first leaf's first)."""
    if not group.aggregate_metric_list:
        raise ConfigError(f"lm-eval group '{group.group_name}' has no aggregate_metric_list, so lm-eval reports no "
                          f"score for it: name its tasks")
    first = group.aggregate_metric_list[0]
    filters = first.filter_list
    if isinstance(filters, str):
        filters = [filters]
    return first.metric, (filters[0] if filters else _first_metric(next(iter(leaves.values())))[1])


def _primary(name: str, s: dict, top, is_group: bool, leaves: dict) -> tuple[str, str]:
    """The (metric, filter) a task key is scored by: the configured one, else the catalogue's (PRIMARY), else the
    lm-eval task's or group's own."""
    if s["source"] != LM_EVAL:
        metric, filt = PRIMARY.get((base_name(name), s["source"]), ("acc", "none"))
        return s.get("metric", metric), s.get("filter", filt)
    if not is_group:
        metric, filt = _first_metric(top)
        return s.get("metric", metric), s.get("filter", filt)
    metric, filt = _group_metric(top, leaves)
    if "metric" in s and "filter" not in s:
        chosen = next((a for a in top.aggregate_metric_list if a.metric == s["metric"]), None)
        filters = chosen.filter_list if chosen else None
        filters = [filters] if isinstance(filters, str) else filters
        filt = filters[0] if filters else filt
    return s.get("metric", metric), s.get("filter", filt)


def _load_task(task_manager, name: str, s: dict, task_name: str):
    try:
        return task_manager.load([task_name])
    except Exception as exc:
        if s["source"] != "hub" or isinstance(exc, ConfigError):
            raise
        first_line = (str(exc).splitlines() or [""])[0]
        raise hub_error(name, f"{type(exc).__name__}: {first_line}") from None


def _check_version(name: str, s: dict, task_name: str, leaves: dict) -> None:
    if s["version"] is None:
        return
    found = {str(t.VERSION) for t in leaves.values()}
    if found != {str(s["version"])}:
        raise ConfigError(
            f"evaluation task '{name}' is pinned to version {s['version']} but lm-eval's '{task_name}' is "
            f"version {', '.join(sorted(found))}: results would not be comparable; update the pin knowingly"
        )


def _configure_leaf(task, s: dict, max_toks: int | None, seed: int) -> list[int] | None:
    """Per-task few-shot and generation length set on a leaf; its seeded subset where lm-eval loads the data."""
    # Always set: built-in tasks carry their own default (lm-eval's gsm8k is 5-shot).
    task.set_config(key="num_fewshot", value=s["num_fewshot"])
    if max_toks and task.get_config("output_type") == "generate_until":
        task.set_config(key="generation_kwargs", value={"max_gen_toks": max_toks}, update=True)
    if s["source"] != "offline" and s["limit"] is not None:
        n = len(task.eval_docs)
        if s["limit"] < n:
            return sorted(random.Random(seed).sample(range(n), s["limit"]))
    return None


def _load_tasks(task_manager, settings: dict[str, dict], chat: bool, domain_format: str, seed: int) -> LoadedTasks:
    """Build lm-eval Task/Group objects per task key, with per-task few-shot and generation length set."""
    loaded = LoadedTasks({}, {}, {}, {}, {})
    for name, s in settings.items():
        task_name = lm_eval_name(name, s, chat)
        log(f"loading task {name} -> {task_name} ({s['source']}, limit {s['limit']}, {s['num_fewshot']}-shot)")
        found = _load_task(task_manager, name, s, task_name)
        top = found.get("groups", {}).get(task_name) or found["tasks"][task_name]
        _check_version(name, s, task_name, found["tasks"])
        loaded.kinds[name] = {}
        for leaf_name, task in found["tasks"].items():
            subset = _configure_leaf(task, s, _max_gen_toks(name, s, domain_format), seed)
            if subset is not None:
                loaded.samples[leaf_name] = subset
            loaded.kinds[name][leaf_name] = task.get_config("output_type")
        loaded.top[name], loaded.names[name] = top, task_name
        loaded.primary[name] = _primary(name, s, top, task_name not in found["tasks"], found["tasks"])
    check_distinct_leaves(loaded.kinds)
    return loaded


def check_distinct_leaves(kinds: dict[str, dict[str, str]]) -> None:
    """One simple_evaluate call runs each lm-eval task once: two task keys (a task and a group holding it, or a
    general and a domain.eval task) that share a leaf cannot be evaluated together."""
    owner = {}
    for name, leaves in kinds.items():
        for leaf in leaves:
            if leaf in owner:
                raise ConfigError(f"evaluation tasks '{owner[leaf]}' and '{name}' both run lm-eval task '{leaf}': "
                                  f"one evaluation cannot run a task twice (put them in different families)")
            owner[leaf] = name


VLLM_DEFAULTS = {"tensor_parallel_size": 1, "gpu_memory_utilization": 0.9, "lora": "adapter", "enforce_eager": None,
                 "max_num_seqs": None}


@dataclass
class EnginePass:
    """One model load and one simple_evaluate call: the tasks it scores and how a LoRA cell's weights reach it
    (`lora`: "adapter" served unmerged, "merged" merged into a copy, None for a model without adapter)."""

    tasks: list[str]
    lora: str | None


def vllm_platform() -> str:
    """'cuda', 'cpu', ...: the platform the installed vLLM runs on (imports vllm: call in the evaluating process)."""
    from vllm.platforms import current_platform

    return str(current_platform.device_type)


def plan_passes(tasks: dict[str, dict[str, str]], backend: str, has_adapter: bool, lora: str, platform: str):
    """How a job's tasks (canonical -> its leaves' output types) split over model loads.

    transformers merges an adapter (exact in float32, the base model's speed): one pass. vLLM serves it unmerged
    with `lora: adapter`, except log-likelihood tasks on the CPU platform, whose LoRA kernels cannot score
    prompt log-probabilities (an einsum shape error in punica_cpu's bgmv_shrink, upstream vllm issues 29955 and
    16668): those run on a merged copy, a second engine. `lora: merged` merges for every task.
    """
    names = list(tasks)
    if not has_adapter:
        return [EnginePass(names, None)]
    if backend == "hf" or lora == "merged":
        return [EnginePass(names, "merged")]
    if platform != "cpu":
        return [EnginePass(names, "adapter")]
    generation = [n for n in names if all(kind == "generate_until" for kind in tasks[n].values())]
    scored = [n for n in names if n not in generation]
    return [EnginePass(group, path) for group, path in ((generation, "adapter"), (scored, "merged")) if group]


def _hf_model(model_dir, adapter_dir, tokenizer, batch_size: int, device: str, max_length: int | None, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM

    from forgetbench.evaluation.scored_logits import ScoredPositionsHFLM

    # float32 on a CPU: bfloat16 there is emulated on most machines and shifts scores.
    dtype = torch.float32 if device == "cpu" else dtype
    log(f"loading {model_dir} ({dtype}, {device})")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    if adapter_dir:
        from peft import PeftModel

        log(f"applying adapter {adapter_dir}")
        # Merged weights give the adapter's exact outputs (float32) and run at the base model's speed.
        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    model = model.to(device).eval()
    return ScoredPositionsHFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length,
                               device=device)


def _merged_copy(model_dir, adapter_dir, folder: Path) -> Path:
    """The adapter merged into a full copy of the model, for vLLM with `lora: merged` (no LoRA kernels)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"merging {adapter_dir} into {folder} for vLLM")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype="auto")
    PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload().save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(folder)
    return folder


def _vllm_model_args(model_dir, adapter_dir, seed: int, max_length: int | None, dtype: str, vllm: dict,
                     platform: str) -> dict:
    """lm-eval's `vllm` model arguments; a LoRA adapter is served unmerged through `lora_local_path`."""
    cpu = platform == "cpu"
    args = {
        "pretrained": str(model_dir),
        "seed": seed,
        # float32 on a CPU, as transformers there.
        "dtype": "float32" if cpu else dtype,
        "tensor_parallel_size": vllm["tensor_parallel_size"],
        "gpu_memory_utilization": vllm["gpu_memory_utilization"],
        # On a CPU torch.compile's warm-up makes start-up 2-3x longer than eager mode (README, Performance)
        # while the workflow's evaluations are short; on a GPU compiled graphs pay off.
        "enforce_eager": cpu if vllm["enforce_eager"] is None else bool(vllm["enforce_eager"]),
        "batch_size": "auto",
    }
    if max_length:
        args["max_model_len"] = max_length
    if vllm.get("max_num_seqs"):
        args["max_num_seqs"] = vllm["max_num_seqs"]
    if adapter_dir:
        rank = json.loads((Path(adapter_dir) / "adapter_config.json").read_text()).get("r", 16)
        args["lora_local_path"] = str(adapter_dir)
        # vLLM only accepts these LoRA rank ceilings.
        args["max_lora_rank"] = next(r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= rank)
    return args


def _vllm_model(args: dict):
    from lm_eval.models.vllm_causallms import VLLM

    log(f"starting vLLM on {args['pretrained']}" + (f" with adapter {args['lora_local_path']}" if "lora_local_path" in args else ""))
    start = time.time()
    lm = VLLM(**args)
    log(f"vLLM engine started in {time.time() - start:.1f} s")
    return lm


def _release(lm) -> None:
    """Stop a vLLM engine (its processes and memory) before the next one starts."""
    engine = getattr(getattr(lm, "model", None), "llm_engine", None)
    shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
    if callable(shutdown):
        shutdown()
    import gc

    gc.collect()


def _plain(value):
    """JSON-ready: numpy scalars and tuples as Python numbers and lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def item_records(samples: dict, name: str, leaves: dict[str, str]) -> list[dict]:
    """One record per evaluated item of canonical task `name` from lm-eval's logged samples: its leaf task and
    doc id, the model's raw responses (log-likelihood and greedy flag per choice, or the generated text),
    the filtered responses and the item's metric values."""
    records = []
    for leaf in sorted(leaves):
        for sample in sorted(samples.get(leaf, []), key=lambda x: x["doc_id"]):
            metrics = {m: _plain(sample[m]) for m in sample.get("metrics", []) if m in sample}
            record = {"task": name, "leaf": leaf, "doc_id": sample["doc_id"], "filter": sample.get("filter")}
            if leaves[leaf] != "loglikelihood_rolling":  # a rolling task's target is the whole passage
                record["target"] = str(sample.get("target"))
            records.append({**record, "resps": _plain(sample["resps"]),
                            "filtered_resps": _plain(sample["filtered_resps"]), **metrics})
    return records


def item_scores(records: list[dict], primary: dict[str, tuple[str, str]]) -> list[dict]:
    """The compact per-item file the aggregation bootstraps over: per task, leaf and doc id the value of the
    task's primary metric under its primary filter (a number, or [log-likelihood, bytes] for bits per byte)."""
    out = []
    for record in records:
        metric, filt = primary[record["task"]]
        if record.get("filter", filt) != filt or metric not in record:
            continue
        out.append({"task": record["task"], "leaf": record["leaf"], "doc_id": record["doc_id"], "value": record[metric]})
    return out


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _clean(value):
    return None if value in ("N/A", None) else value


def _metrics(results: dict, name: str, task_name: str, primary: tuple[str, str]) -> dict:
    """A task key's metrics from lm-eval's results: the score of its primary (metric, filter) and every metric
    lm-eval reported."""
    metric, filt = primary
    res = results["results"].get(task_name)
    if res is None:
        raise RuntimeError(f"lm-eval returned no results for task {task_name} ({name})")
    key = f"{metric},{filt}"
    if key not in res:
        raise RuntimeError(f"lm-eval results for {task_name} have no '{key}' (got {sorted(res)})")
    out = {
        "score": res[key],
        "metric": metric,
        "filter": filt,
        "stderr": _clean(res.get(f"{metric}_stderr,{filt}")),
        "higher_is_better": results.get("higher_is_better", {}).get(task_name, {}).get(metric, metric != "bits_per_byte"),
    }
    for k, v in res.items():
        if k == "alias" or "," not in k:
            continue
        m, f = k.split(",", 1)
        out[m if f == filt else f"{m},{f}"] = _clean(v)
    return out


def _leaf_names(results: dict, task_name: str) -> list[str]:
    """A task's name, or the leaf tasks of a group (through its subgroups)."""
    children = results.get("group_subtasks", {}).get(task_name)
    return [leaf for child in children for leaf in _leaf_names(results, child)] if children else [task_name]


def _n_evaluated(results: dict, task_name: str) -> int | None:
    counts = [results.get("n-samples", {}).get(t, {}).get("effective") for t in _leaf_names(results, task_name)]
    return sum(counts) if counts and all(c is not None for c in counts) else None


def _check_inputs(settings: dict, model_dir, adapter_dir, domain_test_path, domain_format: str) -> None:
    """The arguments an evaluation cannot start without, checked before anything loads."""
    if domain_format not in FORMATS:
        raise ConfigError(f"domain format must be one of {', '.join(FORMATS)}, got {domain_format!r}")
    if "domain" in settings and domain_format not in DOMAIN_MAX_GEN_TOKS:
        raise ConfigError(f"evaluation task 'domain' scores answers, which domain format {domain_format!r} does not "
                          f"carry (formats with answers: {', '.join(DOMAIN_MAX_GEN_TOKS)})")
    for name in DOMAIN_TASKS & set(settings):
        if not domain_test_path:
            raise ConfigError(f"evaluation task '{name}' needs domain_test_path (the domain's test JSONL)")
        if not Path(domain_test_path).exists():
            raise ConfigError(f"evaluation task '{name}': {domain_test_path}: file not found")
    if not (Path(model_dir) / "config.json").exists():
        raise ConfigError(f"model_dir {model_dir}: no config.json (not a Hugging Face model directory)")
    if adapter_dir and not (Path(adapter_dir) / "adapter_config.json").exists():
        raise ConfigError(f"adapter_dir {adapter_dir}: no adapter_config.json (not a PEFT adapter directory)")


def _loader_settings(settings: dict, seed: int, domain_test_path, domain_format: str, model_dir, chat: bool,
                     domain_max_seq_len: int | None = None) -> dict:
    """What the offline tasks' custom_dataset loaders read from lm-eval's task metadata (workflow/tasks/fb_loaders.py),
    by catalogue name."""
    loader_settings = {
        base_name(name): {"limit": s["limit"], "seed": seed, "num_fewshot": s["num_fewshot"]}
        for name, s in settings.items()
        if s["source"] == "offline"
    }
    for name in DOMAIN_TASKS & set(loader_settings):
        loader_settings[name].update(path=str(Path(domain_test_path).resolve()), format=domain_format)
    if "domain_loss" in loader_settings:
        # The loader counts each reference response's tokens with the model's tokenizer (the loss is per token).
        loader_settings["domain_loss"].update(tokenizer=str(model_dir), chat=chat)
        if domain_max_seq_len:  # the text format scores a document's first training window, as training cuts it
            loader_settings["domain_loss"]["max_seq_len"] = domain_max_seq_len
    return loader_settings


def _task_manager(settings: dict, loader_settings: dict, include_path: list[str]):
    """lm-eval's TaskManager over the project's tasks and the user's folders; lm-eval's built-in tasks (a 6-15 s
    scan) only where a task needs them: a hub task, or an lm-eval name the folders do not hold."""
    from lm_eval.tasks import TaskManager

    metadata = {"forgetbench": loader_settings}
    wanted = {lm_eval_name(name, s) for name, s in settings.items() if s["source"] == LM_EVAL}
    any_hub = any(s["source"] == "hub" for s in settings.values())
    if not include_path:  # the project's tasks only: as before
        return TaskManager(include_path=str(TASKS_DIR), include_defaults=any_hub or bool(wanted), metadata=metadata)
    paths = [str(TASKS_DIR), *include_path]
    if not any_hub:
        manager = TaskManager(include_path=paths, include_defaults=False, metadata=metadata)
        if wanted <= set(manager.all_tasks):
            return manager
    return TaskManager(include_path=paths, include_defaults=True, metadata=metadata)


def _warn_long_references(settings: dict, tokenizer, domain_test_path, domain_format: str, seed: int) -> dict | None:
    """The `domain` task's count of reference responses longer than max_gen_toks, with a warning in the log."""
    if "domain" not in settings:
        return None
    from forgetbench.data.records import read_jsonl

    max_toks = _max_gen_toks("domain", settings["domain"], domain_format)
    beyond = references_beyond_max_gen_toks(tokenizer, read_jsonl(domain_test_path), domain_format,
                                            settings["domain"]["limit"], seed, max_toks)
    if beyond["items"]:
        log(f"warning: {beyond['items']} of {beyond['of']} domain test items ({100 * beyond['share']:.1f} %) have "
            f"a reference response longer than max_gen_toks {max_toks} (the longest has "
            f"{beyond['longest_tokens']} tokens): a model answering like its training targets is cut off before "
            f"the answer there; raise evaluation.domain.max_gen_toks to {beyond['longest_tokens']}")
    return beyond


@dataclass
class EngineRun:
    """What the engine passes produced: lm-eval's merged results, each engine's arguments, each task's LoRA path
    and the per-item records."""

    results: dict
    engines: list
    task_path: dict
    items: list


class _Engines:
    """One model load per engine pass (transformers, or a vLLM engine on the model, its adapter or a merged copy)."""

    def __init__(self, backend: str, model_dir, adapter_dir, tokenizer, batch_size: int, device: str,
                 max_length: int | None, dtype: str, vllm: dict, platform: str, seed: int):
        self.backend, self.model_dir, self.adapter_dir = backend, model_dir, adapter_dir
        self.tokenizer, self.batch_size, self.device, self.max_length = tokenizer, batch_size, device, max_length
        self.dtype, self.vllm, self.platform, self.seed = dtype, vllm, platform, seed
        self.merged_dir = None

    def load(self, engine_pass: EnginePass):
        """(lm, model_args as recorded)."""
        if self.backend == "hf":
            return _hf_model(self.model_dir, self.adapter_dir, self.tokenizer, self.batch_size, self.device,
                             self.max_length, self.dtype), None
        pass_model, pass_adapter = self.model_dir, self.adapter_dir
        if engine_pass.lora == "merged":
            if self.merged_dir is None:
                import tempfile

                self.merged_dir = tempfile.TemporaryDirectory(prefix="forgetbench-merged-")
                _merged_copy(self.model_dir, self.adapter_dir, Path(self.merged_dir.name))
            pass_model, pass_adapter = self.merged_dir.name, None
        model_args = _vllm_model_args(pass_model, pass_adapter, self.seed, self.max_length, self.dtype, self.vllm,
                                      self.platform)
        lm = _vllm_model(model_args)
        # Recorded without the temporary folder's random name: reruns write byte-identical files.
        model_args = {**model_args, "pretrained": str(self.model_dir)}
        if engine_pass.lora == "merged":
            model_args["merged_adapter"] = str(self.adapter_dir)
        return lm, model_args

    def release(self, lm) -> None:
        if self.backend == "vllm":
            _release(lm)

    def cleanup(self) -> None:
        if self.merged_dir:
            self.merged_dir.cleanup()


def _calls(tasks: list[str], domain_format: str, chat: bool) -> list[tuple[list[str], bool]]:
    """The simple_evaluate calls of one engine pass, each (tasks, chat template on): one call, except the domain
    loss of a format without answers, whose loader renders the chat template itself (fb_loaders.domain_loss): it
    runs in a call of its own without lm-eval's template, on the same model."""
    if "domain_loss" in tasks and domain_format not in QA_FORMATS:
        rest = [n for n in tasks if n != "domain_loss"]
        return [(group, on) for group, on in ((rest, chat), (["domain_loss"], False)) if group]
    return [(tasks, chat)]


def _run_passes(passes, engines: _Engines, loaded: LoadedTasks, task_manager, *, chat: bool, domain_format: str,
                batch_size, device: str, seed: int, log_samples: bool, cache) -> EngineRun:
    """Every engine pass: its model loaded once, its tasks scored in one simple_evaluate call (two for a TRL
    format's domain loss), lm-eval's results merged and the per-item records collected."""
    import lm_eval

    run = EngineRun({"results": {}}, [], {}, [])
    for number, engine_pass in enumerate(passes):
        lm, model_args = engines.load(engine_pass)
        run.engines.append({"tasks": engine_pass.tasks, "lora": engine_pass.lora, "model_args": model_args})
        log(f"running {', '.join(loaded.names[n] for n in engine_pass.tasks)} with backend {engines.backend} on "
            f"{engines.platform}" + (f", adapter {engine_pass.lora}" if engine_pass.lora else "")
            + f", chat template {'on' if chat else 'off'}")
        for tasks, chat_on in _calls(engine_pass.tasks, domain_format, chat):
            leaves = {leaf for name in tasks for leaf in loaded.kinds[name]}
            out = lm_eval.simple_evaluate(
                model=lm,
                tasks=[loaded.top[n] for n in tasks],
                task_manager=task_manager,
                batch_size=batch_size,
                device=device,
                samples={leaf: idx for leaf, idx in loaded.samples.items() if leaf in leaves} or None,
                apply_chat_template=chat_on,
                fewshot_as_multiturn=chat_on,
                log_samples=log_samples,
                bootstrap_iters=1000,
                random_seed=seed,
                numpy_random_seed=seed,
                torch_random_seed=seed,
                fewshot_random_seed=seed,
                confirm_run_unsafe_code=True,
                # one cache per pass: a merged copy and an adapter are different weights
                use_cache=(str(cache) + (f"-pass{number}" if number else "")) if cache else None,
            )
            for key, value in out.items():
                if isinstance(value, dict):
                    run.results.setdefault(key, {}).update(value)
            for name in tasks:
                run.task_path[name] = engine_pass.lora
                run.items += item_records(out.get("samples", {}), name, loaded.kinds[name])
        engines.release(lm)
        del lm
    engines.cleanup()
    return run


def _task_results(settings: dict, loaded: LoadedTasks, run: EngineRun, beyond: dict | None):
    """Per task key: its metrics (the primary score and every metric lm-eval reported) and its settings as run."""
    metrics, task_settings = {}, {}
    results = run.results
    for name, s in settings.items():
        task_name = loaded.names[name]
        metrics[name] = _metrics(results, name, task_name, loaded.primary[name])
        config = results.get("configs", {}).get(task_name, {})
        task_settings[name] = {
            **s,
            "num_fewshot": results.get("n-shot", {}).get(task_name, s["num_fewshot"]),
            "lm_eval_task": task_name,
            "version": results.get("versions", {}).get(task_name),
            "n_evaluated": _n_evaluated(results, task_name),
            "max_gen_toks": (config.get("generation_kwargs") or {}).get("max_gen_toks", s["max_gen_toks"]),
            "lora": run.task_path[name],
            **({"sentence_splitter": punkt_data.sentence_splitter()} if base_name(name) == "ifeval" else {}),
            **({"reference_longer_than_max_gen_toks": beyond} if name == "domain" else {}),
            "subset": "seeded random, drawn in the task's data loader"
            if s["source"] == "offline"
            else "seeded random, via simple_evaluate(samples=)",
        }
        log(f"{name}: {metrics[name]['metric']} = {metrics[name]['score']:.4f}")
    return metrics, task_settings


def evaluate(
    model_dir,
    out_json,
    tasks: dict,
    *,
    adapter_dir=None,
    backend: str = "auto",
    batch_size: int = 8,
    seed: int = 0,
    domain_test_path=None,
    domain_format: str = "label",
    device: str = "cpu",
    max_length: int | None = None,
    chat_template: str = "auto",
    dtype: str = "auto",
    vllm: dict | None = None,
    cache: str | Path | None = None,
    samples_out: str | Path | None = None,
    items_out: str | Path | None = None,
    include_path: str | list[str] | None = None,
    domain_max_seq_len: int | None = None,
    extra: dict | None = None,
) -> dict:
    """Evaluate `model_dir` (+ optional LoRA `adapter_dir`) on `tasks` and write the results to `out_json`.

    `tasks` maps task keys to {"limit": int|None, "num_fewshot": int, "source": "offline"|"hub", "max_gen_toks":
    int, optional "metric"/"filter"}: catalogue names (forgetbench.evaluation.tasks), any other lm-eval task or
    group by its name (built-in or from the `include_path` folders), `domain.eval` tasks keyed "domain.<task>".
    `seed` fixes the subsets (the same for every model compared) and lm-eval's seeds.
    The chat template is applied when the tokenizer has one, unless `chat_template="none"`.
    `dtype` applies on a GPU (a CPU always runs float32); `vllm` holds vLLM's settings (tensor_parallel_size,
    gpu_memory_utilization, lora: "adapter" to serve an adapter unmerged or "merged"; max_length is its
    max_model_len).
    `cache` is the path prefix of lm-eval's SQLite response cache (`use_cache`; lm-eval adds `_rank0.db`):
    responses are stored as they are computed, so a rerun after a kill computes only the missing ones. The
    cache is keyed by request only, so the caller must give each model (and its weights) a path of its own.
    `samples_out`, when given, receives one JSON line per evaluated item (`item_records`); `items_out` only
    each item's primary metric (`item_scores`), the input of the aggregation's confidence intervals.
    `domain_max_seq_len` is training.max_seq_len, for a `text` domain's loss (its documents' first training window).
    `extra` (who was evaluated, provenance) is written beside the metrics.
    Returns {"metrics": {task: {"score", "metric", "stderr", ...}}, "settings": {...}} as written.
    """
    from transformers import AutoTokenizer

    start = time.time()
    settings = normalize_tasks(tasks)
    _check_inputs(settings, model_dir, adapter_dir, domain_test_path, domain_format)
    chosen = choose_backend(backend)
    check_hub_available(settings)
    folders = [include_path] if isinstance(include_path, str) else list(include_path or [])
    evaluated = {"model_dir": str(model_dir), "adapter_dir": str(adapter_dir) if adapter_dir else None}

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    template = _chat_template(tokenizer, chat_template)
    chat = template is not None
    loader_settings = _loader_settings(settings, seed, domain_test_path, domain_format, model_dir, chat,
                                       domain_max_seq_len)
    task_manager = _task_manager(settings, loader_settings, folders)
    if any("ifeval" in lm_eval_name(name, s) for name, s in settings.items()):
        # before lm-eval imports its IFEval checkers (hub or offline task), or the import tries to download
        punkt_data.install()
    loaded = _load_tasks(task_manager, settings, chat, domain_format, seed)
    beyond = _warn_long_references(settings, tokenizer, domain_test_path, domain_format, seed)

    vllm = {**VLLM_DEFAULTS, **{k: v for k, v in (vllm or {}).items() if v is not None}}
    if vllm["lora"] not in ("adapter", "merged"):
        raise ConfigError(f"evaluation.vllm.lora must be 'adapter' or 'merged', got {vllm['lora']!r}")
    platform = vllm_platform() if chosen == "vllm" else device
    passes = plan_passes(loaded.kinds, chosen, bool(adapter_dir), vllm["lora"], platform)
    lm_batch_size = batch_size if chosen == "hf" else "auto"  # vLLM schedules the whole request list itself
    engines = _Engines(chosen, model_dir, adapter_dir, tokenizer, batch_size, device, max_length, dtype, vllm,
                       platform, seed)
    run = _run_passes(passes, engines, loaded, task_manager, chat=chat, domain_format=domain_format,
                      batch_size=lm_batch_size, device=device, seed=seed,
                      log_samples=samples_out is not None or items_out is not None, cache=cache)
    metrics, task_settings = _task_results(settings, loaded, run, beyond)
    domain_tasks = bool(DOMAIN_TASKS & set(settings))
    out = {
        "metrics": metrics,
        "settings": {
            "backend": chosen,
            "backend_requested": backend,
            "batch_size": lm_batch_size,
            "seed": seed,
            "device": platform,
            "max_length": max_length,
            "dtype": "float32" if platform == "cpu" else dtype,
            "vllm": run.engines[0]["model_args"] if chosen == "vllm" else None,
            "vllm_version": _version("vllm") if chosen == "vllm" else None,
            "engines": run.engines if len(run.engines) > 1 else None,
            "lora": (vllm["lora"] if chosen == "vllm" else "merged") if evaluated["adapter_dir"] else None,
            "chat_template": chat,
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if chat else None,
            "lm_eval_version": importlib.metadata.version("lm-eval"),
            **evaluated,
            "domain_test_path": str(domain_test_path) if domain_tasks else None,
            "domain_format": domain_format if domain_tasks else None,
            **({"include_path": folders} if folders else {}),
            **({"domain_max_seq_len": domain_max_seq_len} if domain_max_seq_len else {}),
            "tasks": task_settings,
        },
    }
    out.update(extra or {})
    _write(out, out_json, run.items, samples_out, items_out, loaded.primary)
    # Times and the cache path go to the log only: the same model and settings give a byte-identical file.
    log(f"wrote {out_json} ({time.time() - start:.1f} s; response cache {cache or 'off'})")
    return out


def _write(out: dict, out_json, items: list[dict], samples_out, items_out, primary: dict) -> None:
    if samples_out is not None:
        write_jsonl(samples_out, items)
    if items_out is not None:
        write_jsonl(items_out, item_scores(items, primary))
    write_json(out_json, out)
