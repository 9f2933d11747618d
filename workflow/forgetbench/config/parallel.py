"""The GPUs of a model's evaluation jobs and vLLM's tensor-parallel size on them, decided when the config is
parsed, from the model's shape (its config.json, or for a GGUF package not yet prepared its file's header).

vLLM shards each attention layer's heads, its KV heads, the MLP and the (64-padded) vocabulary over the
tensor-parallel processes, and refuses a size that does not divide them, inside the job and after training
(`Total number of attention heads (9) must be divisible by tensor parallel size (2)`). Here:

- evaluation's GPUs are `models.<name>.evaluation_gpus`, else `evaluation.gpus`, else training's (`gpus`);
- a size that a key set explicitly (`evaluation.vllm.tensor_parallel_size`, or the GPUs of `evaluation.gpus`)
  and the model cannot take is refused in one line naming the sizes that work;
- otherwise the size is the largest that works and is not above the GPUs, and the job asks only for that many.

    plans = evaluation_plans(config, "config.yaml", "results/default")
    plans["smollm2-135m"]   # EvaluationPlan(backend='vllm', gpus=1, tensor_parallel_size=1)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from forgetbench.config.gguf import header_file, read_metadata
from forgetbench.config.inputs import model_config
from forgetbench.config.sweep import evaluation_gpus
from forgetbench.errors import ConfigError
from forgetbench.evaluation.backend import resolve_backend

VOCAB_PADDING = 64  # vLLM's DEFAULT_VOCAB_PADDING_SIZE: the vocabulary is padded to a multiple before it is split
TP_KEY = "evaluation.vllm.tensor_parallel_size"


@dataclass(frozen=True)
class Widths:
    """What vLLM's tensor parallelism splits: heads, KV heads, vocabulary, MLP width (None where unknown)."""

    heads: int
    kv_heads: int
    vocab: int | None = None
    intermediate: int | None = None

    @classmethod
    def from_config(cls, config: dict | None) -> "Widths | None":
        text = (config or {}).get("text_config") or config or {}
        heads = text.get("num_attention_heads")
        if not isinstance(heads, int):
            return None
        kv = text.get("num_key_value_heads")
        return cls(heads, kv if isinstance(kv, int) else heads, text.get("vocab_size"), text.get("intermediate_size"))


@dataclass(frozen=True)
class EvaluationPlan:
    backend: str  # hf or vllm
    gpus: int  # what each evaluation job of the model asks for
    tensor_parallel_size: int | None = None  # vLLM on GPUs; None: vllm_settings' default (the job's GPUs, >= 1)


def tp_problem(size: int, widths: Widths) -> str | None:
    """Why vLLM cannot split the model over `size` processes (the first reason), or None."""
    if widths.heads % size:
        return f"does not divide the {widths.heads} attention heads"
    kv = widths.kv_heads
    if kv >= size and kv % size:
        return f"does not divide the {kv} KV heads"
    if kv < size and size % kv:  # fewer KV heads than processes: each is replicated, evenly
        return f"is not a multiple of the {kv} KV heads"
    if widths.vocab:
        padded = -(-widths.vocab // VOCAB_PADDING) * VOCAB_PADDING
        if padded % size:
            return f"does not divide the vocabulary of {widths.vocab} tokens (padded to {padded})"
    if widths.intermediate and widths.intermediate % size:
        return f"does not divide the MLP width {widths.intermediate}"
    return None


def valid_sizes(widths: Widths) -> list[int]:
    """Every tensor-parallel size vLLM accepts for the model (none exceeds its attention heads)."""
    return [size for size in range(1, widths.heads + 1) if tp_problem(size, widths) is None]


def nearest_sizes(size: int, widths: Widths) -> str:
    """The valid sizes nearest `size` from below and above: '1 or 3'."""
    sizes = valid_sizes(widths)
    below = [s for s in sizes if s < size][-1:]
    above = [s for s in sizes if s > size][:1]
    return " or ".join(str(s) for s in below + above)


def model_widths(name: str, cfg: dict, results_dir: str | Path) -> tuple[Widths | None, str]:
    """The model's widths and where they came from; a GGUF header gives its KV heads under its own key."""
    found, source = model_config(name, cfg, results_dir)
    if found is not None and cfg["source"] == "gguf_package" and "num_key_value_heads" not in found:
        found = {**found, **_gguf_kv_heads(cfg)}
    return Widths.from_config(found), source


def _gguf_kv_heads(cfg: dict) -> dict:
    path = header_file(cfg)
    meta = read_metadata(path) if path else {}
    kv = meta.get(f"{meta.get('general.architecture')}.attention.head_count_kv")
    return {"num_key_value_heads": kv} if isinstance(kv, int) else {}


def plan_evaluation(config: dict, model: str, widths: Widths | None, source: str, where: str) -> EvaluationPlan:
    """The backend, GPUs and tensor-parallel size of `model`'s evaluation jobs; ConfigError for a size that a
    key fixed and vLLM would refuse."""
    gpus, key = evaluation_gpus(config, model)
    backend = resolve_backend(config["evaluation"]["backend"], gpus)
    fixed = (config["evaluation"].get("vllm") or {}).get("tensor_parallel_size")
    if backend != "vllm" or widths is None or not (fixed or gpus):
        return EvaluationPlan(backend, gpus)  # no vLLM, a shape not at hand (the job checks), or one CPU process
    here = f"{where}: models.{model}"
    if fixed:
        problem = tp_problem(fixed, widths)
        if problem:
            raise ConfigError(f"{here}: vLLM's tensor-parallel size {fixed} ({TP_KEY}) {problem} (from {source}): "
                              f"set {TP_KEY} to {nearest_sizes(fixed, widths)}, or null for the largest that fits")
        if key and fixed > gpus:
            raise ConfigError(f"{here}: {TP_KEY} {fixed} needs {fixed} GPUs and {key} gives {gpus}: "
                              f"set {key} to {fixed}")
        return EvaluationPlan(backend, fixed if gpus else 0, fixed)
    problem = tp_problem(gpus, widths)
    if problem and key:
        raise ConfigError(f"{here}: evaluation on {gpus} GPUs: vLLM's tensor-parallel size {gpus} {problem}: "
                          f"set {key} to {nearest_sizes(gpus, widths)}")
    size = max(s for s in valid_sizes(widths) if s <= gpus)
    if problem:  # training's GPU count, inherited: evaluate on fewer, and say so
        print(f"forgetbench: models.{model}: evaluation on {size} of training's {gpus} GPUs: vLLM's tensor-parallel "
              f"size {gpus} {problem} (evaluation.gpus or models.{model}.evaluation_gpus sets it)", file=sys.stderr)
    return EvaluationPlan(backend, size, size)


def evaluation_plans(config: dict, where: str, results_dir: str | Path) -> dict[str, EvaluationPlan]:
    """Model -> its evaluation jobs' plan (read once per parse)."""
    plans = {}
    for model, cfg in config["models"].items():
        widths, source = model_widths(model, cfg, results_dir) if _needs_widths(config, model) else (None, "")
        plans[model] = plan_evaluation(config, model, widths, source, where)
    return plans


def _needs_widths(config: dict, model: str) -> bool:
    """Only vLLM jobs need the shape: the default's CPU evaluations never read a model config for this."""
    gpus, _ = evaluation_gpus(config, model)
    return resolve_backend(config["evaluation"]["backend"], gpus) == "vllm"
