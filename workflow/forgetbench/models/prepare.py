"""Turn any model source of the config into a plain safetensors HF directory that every later rule reads.

Sources: `local` (an HF directory), `hub` (a model id, downloaded by transformers), `gguf_package` (a GGUF file
inside an installed Python package, dequantised to float32 — the offline default).
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from forgetbench.atomic import atomic_directory, write_json
from forgetbench.errors import ConfigError
from forgetbench.models.gguf import load_gguf_model, load_gguf_tokenizer, package_gguf_path
from forgetbench.provenance import provenance


def load_source(name: str, cfg: dict):
    """(model, tokenizer, description of where they came from)."""
    source = cfg["source"]
    if source == "gguf_package":
        path = package_gguf_path(cfg["package"], cfg.get("file"))
        return load_gguf_model(path), load_gguf_tokenizer(path), {"gguf_file": str(path)}
    if source == "local":
        kwargs, origin = {}, {"path": cfg["path"]}
        location = cfg["path"]
    elif source == "hub":
        kwargs, origin = {"revision": cfg.get("revision", "main")}, {"id": cfg["id"], "revision": cfg.get("revision", "main")}
        location = cfg["id"]
    else:
        raise ConfigError(f"models.{name}.source: unknown source '{source}' (local, hub, gguf_package)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32, **kwargs)
    except OSError as err:
        if source == "hub":
            raise ConfigError(
                f"models.{name}: cannot load '{location}' from the Hugging Face hub ({str(err).splitlines()[0]}); "
                f"without network access download it elsewhere (huggingface-cli download {location}) and use source: local"
            ) from err
        raise ConfigError(f"models.{name}.path: cannot load '{location}': {str(err).splitlines()[0]}") from err
    return model, tokenizer, origin


def prepare_model(name: str, cfg: dict, out_dir: str) -> None:
    model, tokenizer, origin = load_source(name, cfg)
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "forgetbench_source.json", {
            "parameters": sum(p.numel() for p in model.parameters()),
            "architecture": type(model).__name__,
            "chat_template": bool(getattr(tokenizer, "chat_template", None)),
            **origin,
            **provenance({"model": name, **cfg}),
        })
