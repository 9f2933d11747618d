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
from forgetbench.errors import ConfigError
from forgetbench.evaluation import punkt_data
from forgetbench.evaluation.backend import choose_backend
from forgetbench.evaluation.tasks import (
    DOMAIN_MAX_GEN_TOKS,
    DOMAIN_TASKS,
    HUB,
    OFFLINE,
    PRIMARY,
    TASKS_DIR,
    check_hub_available,
    hub_error,
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
    on those, and scores 0 there whatever it knows. The dry run counts the same (forgetbench.config_lengths)."""
    from forgetbench.data.prompts import build_response
    from forgetbench.evaluation.general_data import seeded_subset

    items, _ = seeded_subset(test_records, limit, seed)
    lengths = [len(tokenizer(build_response(r, domain_format), add_special_tokens=False)["input_ids"]) for r in items]
    longer = sum(n > max_toks for n in lengths)
    return {"items": longer, "of": len(lengths), "share": longer / len(lengths) if lengths else 0.0,
            "longest_tokens": max(lengths, default=0)}


def _load_tasks(task_manager, settings: dict[str, dict], chat: bool, domain_format: str, seed: int):
    """Build lm-eval Task/Group objects per canonical task, with per-task few-shot and generation length set.
    Returns (canonical -> top task or group, canonical -> lm-eval name, leaf -> seeded subset indices,
    canonical -> its leaves' output types)."""
    built, names, samples, kinds = {}, {}, {}, {}
    for name, s in settings.items():
        if s["source"] == "offline":
            task_name = "fb_humaneval_instruct" if name == "humaneval" and chat else OFFLINE[name]
        else:
            task_name = HUB[name][0]
        log(f"loading task {name} -> {task_name} ({s['source']}, limit {s['limit']}, {s['num_fewshot']}-shot)")
        try:
            loaded = task_manager.load([task_name])
        except Exception as exc:
            if s["source"] != "hub" or isinstance(exc, ConfigError):
                raise
            first_line = (str(exc).splitlines() or [""])[0]
            raise hub_error(name, f"{type(exc).__name__}: {first_line}") from None
        top = loaded["groups"].get(task_name) or loaded["tasks"][task_name]
        if s["version"] is not None:
            found = {str(t.VERSION) for t in loaded["tasks"].values()}
            if found != {str(s["version"])}:
                raise ConfigError(
                    f"evaluation task '{name}' is pinned to version {s['version']} but lm-eval's '{task_name}' is "
                    f"version {', '.join(sorted(found))}: results would not be comparable; update the pin knowingly"
                )
        kinds[name] = {}
        for leaf_name, task in loaded["tasks"].items():
            # Always set: built-in tasks carry their own default (lm-eval's gsm8k is 5-shot).
            task.set_config(key="num_fewshot", value=s["num_fewshot"])
            max_toks = _max_gen_toks(name, s, domain_format)
            if max_toks and task.get_config("output_type") == "generate_until":
                task.set_config(key="generation_kwargs", value={"max_gen_toks": max_toks}, update=True)
            if s["source"] == "hub" and s["limit"] is not None:
                n = len(task.eval_docs)
                if s["limit"] < n:
                    samples[leaf_name] = sorted(random.Random(seed).sample(range(n), s["limit"]))
            kinds[name][leaf_name] = task.get_config("output_type")
        built[name], names[name] = top, task_name
    return built, names, samples, kinds


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


def _metrics(results: dict, name: str, task_name: str, source: str) -> dict:
    metric, filt = PRIMARY.get((name, source), ("acc", "none"))
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


def _n_evaluated(results: dict, task_name: str) -> int | None:
    leaves = results.get("group_subtasks", {}).get(task_name) or [task_name]
    counts = [results.get("n-samples", {}).get(t, {}).get("effective") for t in leaves]
    return sum(counts) if counts and all(c is not None for c in counts) else None


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
    extra: dict | None = None,
) -> dict:
    """Evaluate `model_dir` (+ optional LoRA `adapter_dir`) on `tasks` and write the results to `out_json`.

    `tasks` maps canonical names to {"limit": int|None, "num_fewshot": int, "source": "offline"|"hub",
    "max_gen_toks": int}. `seed` fixes the subsets (the same for every model compared) and lm-eval's seeds.
    The chat template is applied when the tokenizer has one, unless `chat_template="none"`.
    `dtype` applies on a GPU (a CPU always runs float32); `vllm` holds vLLM's settings (tensor_parallel_size,
    gpu_memory_utilization, lora: "adapter" to serve an adapter unmerged or "merged"; max_length is its
    max_model_len).
    `cache` is the path prefix of lm-eval's SQLite response cache (`use_cache`; lm-eval adds `_rank0.db`):
    responses are stored as they are computed, so a rerun after a kill computes only the missing ones. The
    cache is keyed by request only, so the caller must give each model (and its weights) a path of its own.
    `samples_out`, when given, receives one JSON line per evaluated item (`item_records`); `items_out` only
    each item's primary metric (`item_scores`), the input of the aggregation's confidence intervals.
    `extra` (who was evaluated, provenance) is written beside the metrics.
    Returns {"metrics": {task: {"score", "metric", "stderr", ...}}, "settings": {...}} as written.
    """
    import lm_eval
    from lm_eval.tasks import TaskManager
    from transformers import AutoTokenizer

    start = time.time()
    settings = normalize_tasks(tasks)
    if domain_format not in DOMAIN_MAX_GEN_TOKS:
        raise ConfigError(f"domain format must be one of {', '.join(DOMAIN_MAX_GEN_TOKS)}, got {domain_format!r}")
    for name in DOMAIN_TASKS & set(settings):
        if not domain_test_path:
            raise ConfigError(f"evaluation task '{name}' needs domain_test_path (the domain's test JSONL)")
        if not Path(domain_test_path).exists():
            raise ConfigError(f"evaluation task '{name}': {domain_test_path}: file not found")
    if not (Path(model_dir) / "config.json").exists():
        raise ConfigError(f"model_dir {model_dir}: no config.json (not a Hugging Face model directory)")
    if adapter_dir and not (Path(adapter_dir) / "adapter_config.json").exists():
        raise ConfigError(f"adapter_dir {adapter_dir}: no adapter_config.json (not a PEFT adapter directory)")
    chosen = choose_backend(backend)
    check_hub_available(settings)
    evaluated = {"model_dir": str(model_dir), "adapter_dir": str(adapter_dir) if adapter_dir else None}

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    template = _chat_template(tokenizer, chat_template)
    chat = template is not None

    loader_settings = {
        name: {"limit": s["limit"], "seed": seed, "num_fewshot": s["num_fewshot"]}
        for name, s in settings.items()
        if s["source"] == "offline"
    }
    for name in DOMAIN_TASKS & set(loader_settings):
        loader_settings[name].update(path=str(Path(domain_test_path).resolve()), format=domain_format)
    if "domain_loss" in loader_settings:
        # The loader counts each reference response's tokens with the model's tokenizer (the loss is per token).
        loader_settings["domain_loss"].update(tokenizer=str(model_dir), chat=chat)
    any_hub = any(s["source"] == "hub" for s in settings.values())
    task_manager = TaskManager(
        include_path=str(TASKS_DIR), include_defaults=any_hub, metadata={"forgetbench": loader_settings}
    )
    if "ifeval" in settings:
        # before lm-eval imports its IFEval checkers (hub or offline task), or the import tries to download
        punkt_data.install()
    built, task_names, samples, kinds = _load_tasks(task_manager, settings, chat, domain_format, seed)
    beyond = None
    if "domain" in settings:
        max_toks = _max_gen_toks("domain", settings["domain"], domain_format)
        from forgetbench.data.records import read_jsonl

        beyond = references_beyond_max_gen_toks(tokenizer, read_jsonl(domain_test_path), domain_format,
                                                settings["domain"]["limit"], seed, max_toks)
        if beyond["items"]:
            log(f"warning: {beyond['items']} of {beyond['of']} domain test items ({100 * beyond['share']:.1f} %) have "
                f"a reference response longer than max_gen_toks {max_toks} (the longest has "
                f"{beyond['longest_tokens']} tokens): a model answering like its training targets is cut off before "
                f"the answer there; raise evaluation.domain.max_gen_toks to {beyond['longest_tokens']}")

    vllm = {**VLLM_DEFAULTS, **{k: v for k, v in (vllm or {}).items() if v is not None}}
    if vllm["lora"] not in ("adapter", "merged"):
        raise ConfigError(f"evaluation.vllm.lora must be 'adapter' or 'merged', got {vllm['lora']!r}")
    platform = vllm_platform() if chosen == "vllm" else device
    passes = plan_passes(kinds, chosen, bool(adapter_dir), vllm["lora"], platform)
    results, engines, task_path, items = {"results": {}}, [], {}, []
    lm_batch_size = batch_size if chosen == "hf" else "auto"  # vLLM schedules the whole request list itself
    merged_dir = None
    for number, engine_pass in enumerate(passes):
        if chosen == "hf":
            lm, model_args = _hf_model(model_dir, adapter_dir, tokenizer, batch_size, device, max_length, dtype), None
        else:
            pass_model, pass_adapter = model_dir, adapter_dir
            if engine_pass.lora == "merged":
                if merged_dir is None:
                    import tempfile

                    merged_dir = tempfile.TemporaryDirectory(prefix="forgetbench-merged-")
                    _merged_copy(model_dir, adapter_dir, Path(merged_dir.name))
                pass_model, pass_adapter = merged_dir.name, None
            model_args = _vllm_model_args(pass_model, pass_adapter, seed, max_length, dtype, vllm, platform)
            lm = _vllm_model(model_args)
            # Recorded without the temporary folder's random name: reruns write byte-identical files.
            model_args = {**model_args, "pretrained": str(model_dir)}
            if engine_pass.lora == "merged":
                model_args["merged_adapter"] = str(adapter_dir)
        engines.append({"tasks": engine_pass.tasks, "lora": engine_pass.lora, "model_args": model_args})
        leaves = {leaf for name in engine_pass.tasks for leaf in kinds[name]}
        log(f"running {', '.join(task_names[n] for n in engine_pass.tasks)} with backend {chosen} on {platform}"
            + (f", adapter {engine_pass.lora}" if engine_pass.lora else "") + f", chat template {'on' if chat else 'off'}")
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=[built[n] for n in engine_pass.tasks],
            task_manager=task_manager,
            batch_size=lm_batch_size,
            device=device,
            samples={leaf: idx for leaf, idx in samples.items() if leaf in leaves} or None,
            apply_chat_template=chat,
            fewshot_as_multiturn=chat,
            log_samples=samples_out is not None or items_out is not None,
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
                results.setdefault(key, {}).update(value)
        for name in engine_pass.tasks:
            task_path[name] = engine_pass.lora
            items += item_records(out.get("samples", {}), name, kinds[name])
        if chosen == "vllm":
            _release(lm)
        del lm
    if merged_dir:
        merged_dir.cleanup()

    metrics, task_settings = {}, {}
    for name, s in settings.items():
        task_name = task_names[name]
        metrics[name] = _metrics(results, name, task_name, s["source"])
        config = results.get("configs", {}).get(task_name, {})
        task_settings[name] = {
            **s,
            "num_fewshot": results.get("n-shot", {}).get(task_name, s["num_fewshot"]),
            "lm_eval_task": task_name,
            "version": results.get("versions", {}).get(task_name),
            "n_evaluated": _n_evaluated(results, task_name),
            "max_gen_toks": (config.get("generation_kwargs") or {}).get("max_gen_toks", s["max_gen_toks"]),
            "lora": task_path[name],
            **({"sentence_splitter": punkt_data.sentence_splitter()} if name == "ifeval" else {}),
            **({"reference_longer_than_max_gen_toks": beyond} if name == "domain" else {}),
            "subset": "seeded random, drawn in the task's data loader"
            if s["source"] == "offline"
            else "seeded random, via simple_evaluate(samples=)",
        }
        log(f"{name}: {metrics[name]['metric']} = {metrics[name]['score']:.4f}")
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
            "vllm": engines[0]["model_args"] if chosen == "vllm" else None,
            "vllm_version": _version("vllm") if chosen == "vllm" else None,
            "engines": engines if len(engines) > 1 else None,
            "lora": (vllm["lora"] if chosen == "vllm" else "merged") if evaluated["adapter_dir"] else None,
            "chat_template": chat,
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if chat else None,
            "lm_eval_version": importlib.metadata.version("lm-eval"),
            **evaluated,
            "domain_test_path": str(domain_test_path) if DOMAIN_TASKS & set(settings) else None,
            "domain_format": domain_format if DOMAIN_TASKS & set(settings) else None,
            "tasks": task_settings,
        },
    }
    out.update(extra or {})
    if samples_out is not None:
        write_jsonl(samples_out, items)
    if items_out is not None:
        primary = {name: (metrics[name]["metric"], metrics[name]["filter"]) for name in settings}
        write_jsonl(items_out, item_scores(items, primary))
    write_json(out_json, out)
    # Times and the cache path go to the log only: the same model and settings give a byte-identical file.
    log(f"wrote {out_json} ({time.time() - start:.1f} s; response cache {cache or 'off'})")
    return out
