"""What each job of a model needs, decided once while the workflow parses its config: the training memory
check (a config that cannot fit is refused before any job) and the `mem_mb` / `runtime` requests that grow
with the model's parameter count and, for training, with its examples × epochs.

    plan = plan_resources(config, "config.yaml", "results/default")  # ConfigError if a train job cannot fit
    plan.models["qwen2.5-7b"].train["sft"]                           # JobRequest(mem_mb=..., runtime=...)
    rule train: resources: mem_mb=plan.mem_mb("train")                # (wildcards, attempt) -> MB

Requests are the first attempt's; the rules' functions multiply them by the attempt number. A site overrides them per
rule with `--set-resources train:mem_mb=... train:runtime=...` (README, "Resources").
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from forgetbench.config.sweep import job_gpus, job_nodes, method_hparams, method_instance, training_processes
from forgetbench.errors import ConfigError
from forgetbench.methods import get_method
from forgetbench.training.memory import (GIB, ModelShape, TrainingSetup, estimate_training_memory, read_model_config,
                                         what_would_fit)
from forgetbench.training.sharding import sharding_strategy

MB = 1024**2
# Floors: what the rules asked before requests followed the model (the default's small models need no more).
FLOOR = {"prepare": (8000, 30), "score": (8000, 30), "train": (16000, 60), "evaluate": (12000, 60)}
# Sustained training throughput the runtime requests assume: bf16 TFLOP/s per GPU (resources.gpu_tflops; fp32
# runs at a quarter), and a CPU thread's GFLOP/s (measured on this project's 2-core CI machine).
CPU_GFLOPS_PER_THREAD = 15.0
DEFAULT_EXAMPLES = 10_000  # a hub or local domain of unknown size: MedCalc-Bench's training split is 10,053
RUNTIME_SAFETY = 2.0  # padding, logging, resume checkpoints, a slower node


@dataclass(frozen=True)
class JobRequest:
    mem_mb: int
    runtime: int  # minutes


@dataclass
class ModelPlan:
    prepare: JobRequest
    score: JobRequest
    evaluate: JobRequest
    train: dict[str, JobRequest] = field(default_factory=dict)  # method folder (scaling runs included) -> request


@dataclass
class ResourcePlan:
    """Model -> ModelPlan, and the `resources:` functions of the rules that read it."""

    models: dict[str, ModelPlan]

    def request(self, kind: str, wildcards) -> JobRequest:
        """The request of a job: `kind` prepare, score, evaluate, or train (keyed by the {method} or, for the scaling
        study, the {run} wildcard)."""
        plan = self.models[wildcards.model]
        if kind != "train":
            return getattr(plan, kind)
        return plan.train[wildcards.method if "method" in wildcards.keys() else wildcards.run]

    def mem_mb(self, kind: str):
        return lambda wildcards, attempt: self.request(kind, wildcards).mem_mb * attempt

    def runtime(self, kind: str):
        return lambda wildcards, attempt: self.request(kind, wildcards).runtime * attempt


def _request(kind: str, mem_bytes: float, minutes: float) -> JobRequest:
    floor_mb, floor_min = FLOOR[kind]
    return JobRequest(max(floor_mb, math.ceil(mem_bytes / MB)), max(floor_min, math.ceil(minutes)))


HOST_COPY_FACTOR = 1.3  # a loaded model's host bytes over its weights' bytes (the loading's transient buffers)
PROCESS_OVERHEAD = 3 * GIB  # one GPU training process's host memory beside the weights: CUDA, torch, the data


def host_load_bytes(params: int, precision: str, processes_per_node: int, strategy: str) -> float:
    """Host memory of one node's GPU training processes while the model loads. Under FSDP only process 0 loads
    the weights and the others receive their shards from it (forgetbench.training.run.load_model): one copy per
    node at most; otherwise (DDP) every process loads its own copy before it moves to its GPU."""
    copy = HOST_COPY_FACTOR * (2 if precision == "bf16" else 4) * params
    return (1 if strategy == "fsdp" else processes_per_node) * copy + processes_per_node * PROCESS_OVERHEAD


def training_examples(config: dict, results_dir: str | Path) -> int:
    """The domain's training examples: the prepared train.jsonl where it exists, else what the config says."""
    prepared = Path(results_dir) / "data" / config["domain"]["name"] / "train.jsonl"
    if prepared.is_file():
        with open(prepared, "rb") as f:
            return sum(1 for _ in f)
    domain = config["domain"]
    return int(domain.get("n_train") or domain.get("limit_train") or DEFAULT_EXAMPLES)


def train_runtime(params: int, trainable_fraction: float, tokens: float, gpus: int, threads: int, precision: str,
                  gpu_tflops: float) -> float:
    """Minutes: 6·P FLOPs per token (2·P forward, 4·P backward; a frozen weight skips its weight gradient,
    2·P of the 4·P) over the assumed rate, with a safety factor and 10 minutes to start."""
    flops = tokens * params * (4 + 2 * trainable_fraction)
    rate = gpus * gpu_tflops * 1e12 / (4 if precision == "fp32" else 1) if gpus else threads * CPU_GFLOPS_PER_THREAD * 1e9
    return 10 + RUNTIME_SAFETY * flops / rate / 60


def training_setup(config: dict, method, gpus: int, processes: int) -> TrainingSetup:
    train = config["training"]
    strategy = sharding_strategy(train.get("strategy", "auto"), method, processes, gpus > 0)
    return TrainingSetup(precision=train.get("precision", "fp32"), batch_size=train["batch_size"],
                         seq_len=train["max_seq_len"], gradient_checkpointing=bool(train.get("gradient_checkpointing")),
                         processes=processes, strategy=strategy, on_gpu=gpus > 0)


def trained_methods(config: dict, model: str, scaling_runs) -> dict[str, object]:
    """Method folder -> method instance of every training job of `model` (the sweep's and the scaling study's)."""
    chosen = config["models"][model].get("methods", config["methods"])
    methods = {name: method_instance(config, name) for name in config["methods"] if name in chosen}
    out = {name: m for name, m in methods.items() if m.kind == "train"}
    for run in scaling_runs:
        if run.model == model:
            out[run.method] = get_method(run.registry_name)(**dict(run.hparams))
    return out


def plan_resources(config: dict, where: str, results_dir: str | Path, scaling_runs=()) -> ResourcePlan:
    """Model -> what its jobs ask for. A model's training runs on job_nodes nodes of job_gpus GPUs each, FSDP
    sharding over every process of every node."""
    examples = training_examples(config, results_dir)
    plans = {}
    for model, model_cfg in config["models"].items():
        nodes = job_nodes(config, model)
        gpus, processes = job_gpus(config, model), training_processes(config, model) * nodes
        raw, source = read_model_config(model, model_cfg, Path(results_dir) / model / "base" / "model")
        try:
            shape = ModelShape.from_config(raw) if raw is not None else None
        except KeyError as missing:
            shape, source = None, f"{source} has no {missing}"
        if shape is None and model_cfg["source"] != "gguf_package":  # GGUF: the offline CPU demo, sized by floors
            print(f"forgetbench: memory check and model-sized resources skipped for model {model}: {source}",
                  file=sys.stderr)
        params = shape.params if shape else 0
        plan = ModelPlan(
            # float32 load and safetensors save; the download
            prepare=_request("prepare", 2.2 * 4 * params + 4 * GIB, 30 + 5 * params / 1e9),
            score=_request("score", 1.3 * 4 * params + 4 * GIB, 20 + 5 * params / 1e9),
            evaluate=_request("evaluate", 1.3 * 4 * params + 4 * GIB, 30 + 10 * params / 1e9),
        )
        for folder, method in trained_methods(config, model, scaling_runs).items():
            plan.train[folder] = _train_request(config, where, model, folder, method, shape, gpus, processes, nodes,
                                                examples)
        plans[model] = plan
    return ResourcePlan(plans)


def _train_request(config, where, model, folder, method, shape, gpus, processes, nodes, examples) -> JobRequest:
    """`gpus` per node, `processes` over all nodes; mem_mb is per node."""
    resources = config.get("resources", {})
    threads = resources.get("train_threads", 1)
    if shape is None:
        return _request("train", 0, 0)
    setup = training_setup(config, method, gpus, processes)
    estimate = estimate_training_memory(shape, method, setup)
    capacity = (config["models"][model].get("gpu_mem_gb") or resources.get("gpu_mem_gb", 80)) if gpus else \
        resources.get("host_mem_gb")
    if capacity is not None and estimate.gib > capacity:
        lora = get_method("lora")(**get_method("lora").validate_hparams(method_hparams(config, "lora"), "lora"))
        fits = what_would_fit(shape, method, setup, capacity, lora=lora)
        per = (f"per GPU ({gpus} GPU{'s' if gpus != 1 else ''}" + (f" x {nodes} nodes" if nodes > 1 else "")
               + (f" {setup.strategy.upper()}" if processes > 1 else "")
               if gpus else f"of host memory ({processes} process{'es' if processes != 1 else ''}")
        key = f"models.{model}.gpu_mem_gb or resources.gpu_mem_gb" if gpus else "resources.host_mem_gb"
        raise ConfigError(
            f"{where}: model {model}, method {folder}: training needs about {estimate.gib:.0f} GB {per}, "
            f"{setup.precision}, batch {setup.batch_size} x {setup.seq_len} tokens; GB: {estimate.breakdown()}), "
            f"over the {capacity:g} GB of {key}; would fit: "
            f"{'; '.join(fits) if fits else 'no single change (combine precision, gradient checkpointing, GPUs)'}")
    train = config["training"]
    effective = train["batch_size"] * train["grad_accum"] * processes
    steps = train.get("max_steps") or math.ceil(train["epochs"] * examples / effective)
    tokens = steps * effective * train["max_seq_len"]
    fraction = method.trainable_params(shape) / shape.params
    minutes = train_runtime(shape.params, fraction, tokens, gpus * nodes, threads, setup.precision,
                            resources.get("gpu_tflops", 100))
    if gpus:  # host memory: the loaded model, before it moves to the GPUs
        host = host_load_bytes(shape.params, setup.precision, processes // nodes, setup.strategy)
    else:  # everything is in host memory, once per process
        host = 1.25 * processes * estimate.total
    return _request("train", host, minutes)
