"""Which lm-eval model backend runs an evaluation: transformers ("hf", CPU or GPU) or vLLM (CUDA only).

vLLM lives in its own environment (envs/vllm.yaml, the `vllm` extra) because it pins its own torch and
transformers; this module only looks for it (`find_spec`) and never imports it.
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


def choose_backend(requested: str) -> str:
    """'auto' -> 'vllm' when vLLM is installed and CUDA is available, else 'hf'; 'hf' and 'vllm' pass through,
    and 'vllm' without vLLM or without CUDA raises ConfigError saying which is missing."""
    if requested not in BACKENDS:
        raise ConfigError(f"evaluation.backend: '{requested}' is not one of {', '.join(BACKENDS)}")
    if requested == "hf":
        return "hf"
    has_vllm, has_cuda = vllm_installed(), cuda_available()
    if requested == "auto":
        return "vllm" if has_vllm and has_cuda else "hf"
    needs = (("the vllm package (pip install -e '.[vllm]', envs/vllm.yaml)", has_vllm), ("a CUDA GPU", has_cuda))
    missing = [what for what, ok in needs if not ok]
    if missing:
        raise ConfigError(
            f"evaluation.backend: 'vllm' needs {' and '.join(missing)}; use backend: auto or hf to evaluate with transformers"
        )
    return "vllm"
