"""Peak memory of one training process, estimated from the model's config.json before any job runs.

    estimate_training_memory(ModelShape.from_config(json.load(open("config.json"))), get_method("sft")(),
                             TrainingSetup(precision="bf16-mixed", batch_size=8, seq_len=2048, processes=2,
                                           strategy="fsdp", on_gpu=True))

Per process (per GPU), in bytes, P the model's parameters, T the trainable ones, N the processes FSDP shards
over (1 for DDP or one process), b the bytes of a weight (4 for fp32 and bf16-mixed, 2 for bf16):

    weights P·b/N + θ₀ copy (L2) T·b/N + AdamW states 2·T·b/N + bf16 autocast copies of the weights (bf16-mixed)
    + max(activations + logits, gradients T·b/N) + DDP's gradient buckets T·b + FSDP's gathered layers + runtime

The maximum: a step's gradients grow during the backward pass while its saved activations are freed (the
Trainer sets the previous step's gradients to None). Activations are per token and layer, from what a Llama-style
decoder layer saves for the backward pass under each precision (its norms compute in float32, linear layers
under autocast keep their own bf16 copy of their input):

    fp32 36·H + 18·I bytes; bf16-mixed 42·H + 8·I bytes; bf16 24·H + 8·I bytes

(H hidden size, I the MLP's intermediate size), for batch_size × max_seq_len tokens: the longest batch, the
estimate is an upper bound for batches padded shorter. With gradient checkpointing only each layer's input
(H values) is kept, plus one layer's activations while it is recomputed. Attention is taken to run in a fused
kernel (SDPA: no seq² matrix). The logits: one [tokens, vocab] tensor in the compute dtype, its gradient, and
the float32 log-softmax of one 256-position chunk at a time (forgetbench.training.trainer.token_logprobs).

How good it is: benchmarks/train_memory.py prints the estimate beside measured peaks (README, "Memory").
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from forgetbench.training.sharding import sharding_strategy

GIB = 1024**3
LOGPROB_CHUNK = 256  # sequence positions per log-softmax in forgetbench.training.trainer.token_logprobs
# Outside the tensors: the CUDA context and the allocator's fragmentation on a GPU; on a CPU the process itself
# (Python, torch, transformers) — measured by benchmarks/train_memory.py.
GPU_RUNTIME_BYTES = 1.5 * GIB
HOST_RUNTIME_BYTES = 0.9 * GIB
# Bytes per (token, layer) saved for the backward pass: (per hidden unit, per MLP unit).
ACTIVATION_BYTES = {"fp32": (36, 18), "bf16-mixed": (42, 8), "bf16": (24, 8)}
WEIGHT_BYTES = {"fp32": 4, "bf16-mixed": 4, "bf16": 2}
COMPUTE_BYTES = {"fp32": 4, "bf16-mixed": 2, "bf16": 2}
PRECISIONS = tuple(WEIGHT_BYTES)


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer that memory depends on, read from its config.json."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    qkv_bias: bool = False
    extra_params: int = 0  # a vision tower's (multimodal configs): counted in weights, not in the text layers

    @classmethod
    def from_config(cls, config: dict) -> "ModelShape":
        """From a Hugging Face config.json (its `text_config` for multimodal models). KeyError names a
        missing size."""
        text = config.get("text_config") or config
        hidden = text["hidden_size"]
        heads = text["num_attention_heads"]
        tied = config.get("tie_word_embeddings", text.get("tie_word_embeddings", True))
        extra = 0
        vision = config.get("vision_config")
        if vision:  # ViT blocks: attention 4·h², MLP 2·h·i
            h, i = vision.get("hidden_size", 0), vision.get("intermediate_size", 0)
            extra = vision.get("num_hidden_layers", 0) * (4 * h * h + 2 * h * i)
        return cls(
            layers=text["num_hidden_layers"],
            hidden=hidden,
            intermediate=text["intermediate_size"],
            heads=heads,
            kv_heads=text.get("num_key_value_heads") or heads,
            head_dim=text.get("head_dim") or hidden // heads,
            vocab=text["vocab_size"],
            tied=bool(tied),
            qkv_bias=bool(text.get("attention_bias", text.get("model_type") == "qwen2")),
            extra_params=extra,
        )

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each projection of one decoder layer."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def block_linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linear_shapes().values())

    @property
    def params(self) -> int:
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        biases = (q + 2 * kv) if self.qkv_bias else 0
        per_layer_other = biases + 2 * self.hidden  # biases and the two norms
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return embeddings + self.block_linear_params + self.layers * per_layer_other + self.hidden + self.extra_params


@dataclass(frozen=True)
class TrainingSetup:
    """What a training job's memory depends on besides the model and the method."""

    precision: str = "fp32"
    batch_size: int = 4
    seq_len: int = 512
    gradient_checkpointing: bool = False
    processes: int = 1
    strategy: str = "none"  # none | ddp | fsdp (forgetbench.training.sharding)
    on_gpu: bool = True


@dataclass
class MemoryEstimate:
    parts: dict[str, float] = field(default_factory=dict)  # bytes

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    @property
    def gib(self) -> float:
        return self.total / GIB

    def breakdown(self) -> str:
        return ", ".join(f"{name} {value / GIB:.1f}" for name, value in self.parts.items() if value >= 0.05 * GIB)


def estimate_training_memory(shape: ModelShape, method, setup: TrainingSetup) -> MemoryEstimate:
    """Peak bytes of one training process (see the module's docstring); `method` is a forgetbench Method."""
    if setup.precision not in PRECISIONS:
        raise ValueError(f"precision '{setup.precision}' is not one of {', '.join(PRECISIONS)}")
    P = shape.params
    T = method.trainable_params(shape)
    wb, cb = WEIGHT_BYTES[setup.precision], COMPUTE_BYTES[setup.precision]
    shard = setup.processes if setup.strategy == "fsdp" else 1
    tokens = setup.batch_size * setup.seq_len
    per_h, per_i = ACTIVATION_BYTES[setup.precision]
    layer_bytes = per_h * shape.hidden + per_i * shape.intermediate + method.extra_activation_bytes(shape, cb)
    if setup.gradient_checkpointing:
        activations = tokens * (shape.layers * shape.hidden * cb + layer_bytes)
    else:
        activations = tokens * shape.layers * layer_bytes
    logits = tokens * shape.vocab * 2 * cb + setup.batch_size * LOGPROB_CHUNK * shape.vocab * 4 * 2
    gradients = T * wb / shard
    parts = {
        "weights": P * wb / shard,
        "theta0 copy": method.weight_copies * T * wb / shard,
        "AdamW states": 2 * T * wb / shard,
        # autocast keeps a bf16 copy of each weight a layer used until the backward pass has used it
        "bf16 weight copies": shape.block_linear_params * 2 / shard if setup.precision == "bf16-mixed" else 0.0,
        "activations and logits" if activations + logits >= gradients else "gradients": max(activations + logits, gradients),
        "DDP gradient buckets": T * wb if setup.strategy == "ddp" and setup.processes > 1 else 0.0,
        # FSDP gathers a layer's full weights for its forward and backward, the next one prefetched
        "FSDP gathered layers": 2 * (shape.block_linear_params / shape.layers) * cb if shard > 1 else 0.0,
        "runtime": GPU_RUNTIME_BYTES if setup.on_gpu else HOST_RUNTIME_BYTES,
    }
    return MemoryEstimate(parts)


def what_would_fit(shape: ModelShape, method, setup: TrainingSetup, capacity_gib: float, lora=None,
                   max_gpus: int = 8) -> list[str]:
    """Changes of one setting each that bring the estimate under `capacity_gib`, cheapest first."""
    options = []
    if not setup.gradient_checkpointing:
        options.append(("training.gradient_checkpointing: true", replace(setup, gradient_checkpointing=True), method))
    for precision in ("bf16-mixed", "bf16"):
        if PRECISIONS.index(precision) > PRECISIONS.index(setup.precision):
            options.append((f"training.precision: {precision}", replace(setup, precision=precision), method))
    if setup.on_gpu:
        for gpus in (2, 4, 8):
            if setup.processes < gpus <= max_gpus:
                strategy = sharding_strategy("auto", method, gpus, gpus=True)
                options.append((f"gpus: {gpus} ({strategy.upper()})", replace(setup, processes=gpus, strategy=strategy),
                                method))
    batch = setup.batch_size // 2  # only the largest batch that fits
    while batch > 1 and estimate_training_memory(shape, method, replace(setup, batch_size=batch)).gib > capacity_gib:
        batch //= 2
    if batch >= 1:
        options.append((f"training.batch_size: {batch} (grad_accum x{setup.batch_size // batch} keeps the batch)",
                        replace(setup, batch_size=batch), method))
    if lora is not None and method.name != "lora":
        options.append(("method lora", setup, lora))
    return [label for label, s, m in options if estimate_training_memory(shape, m, s).gib <= capacity_gib]


def read_model_config(name: str, cfg: dict, prepared_dir: str | Path) -> tuple[dict | None, str]:
    """The config.json of a model of the experiment, and where it came from; (None, why) when it is not at hand
    before the model is prepared: a GGUF package (its config is written by prepare_model), or a hub model with
    neither a cached config nor a reachable hub. Read once per parse (the LoRA and the resource checks both ask;
    a hub lookup may wait on the network): each caller gets its own copy."""
    files = [Path(prepared_dir) / "config.json"] + ([Path(cfg["path"]) / "config.json"] if cfg.get("path") else [])
    stats = tuple((os.stat(f).st_mtime_ns, os.stat(f).st_size) if f.is_file() else None for f in files)
    text, source = _model_config_text(name, json.dumps(cfg, sort_keys=True, default=str), str(prepared_dir), stats)
    return (json.loads(text) if text is not None else None), source


@functools.lru_cache(maxsize=None)
def _model_config_text(name: str, cfg_json: str, prepared_dir: str, stats: tuple) -> tuple[str | None, str]:
    """`stats` (the config files' modification times and sizes) is part of the key: a file written since is read."""
    config, source = _read_model_config(name, json.loads(cfg_json), prepared_dir)
    return (json.dumps(config) if config is not None else None), source


def _read_model_config(name: str, cfg: dict, prepared_dir: str | Path) -> tuple[dict | None, str]:
    prepared = Path(prepared_dir) / "config.json"
    if prepared.is_file():
        return json.loads(prepared.read_text()), str(prepared)
    source = cfg["source"]
    if source == "local":
        path = Path(cfg["path"]) / "config.json"
        return json.loads(path.read_text()), str(path)
    if source == "hub":
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        revision = cfg.get("revision", "main")
        cached = try_to_load_from_cache(cfg["id"], "config.json", revision=revision)
        if isinstance(cached, str):
            return json.loads(Path(cached).read_text()), cached
        try:  # a few kB, on a login node with network access
            path = hf_hub_download(cfg["id"], "config.json", revision=revision, etag_timeout=5)
        except Exception as err:  # offline, gated or unknown: the check cannot run, the job may still
            return None, f"no config.json for {cfg['id']} ({type(err).__name__})"
        return json.loads(Path(path).read_text()), path
    return None, "a GGUF package's config is known once prepare_model has run"
