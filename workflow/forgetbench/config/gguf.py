"""A GGUF model's shape at parse time, from its file's header: on a first run (nothing prepared yet) a GGUF
package has no config.json, and the model checks (LoRA target_modules, rank against the hidden size, max_seq_len
against the positions) would otherwise wait for the jobs.

The header is the file's first bytes: magic, version, counts, then key-value metadata (architecture, sizes,
context length, vocabulary). Only those are read, never the tensors, and a split package's first part holds them
(the Gemma-3-270M wheels ship the file in four parts, joined by prepare_model). The value types are the gguf
package's (GGUFValueType); its GGUFReader would map the whole file and needs the parts joined. No torch.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import struct
from pathlib import Path

MAGIC = b"GGUF"
# GGUFValueType's scalar codes and their struct formats (little-endian, as GGUF writes them)
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9
# GGUF architecture → the config.json model_type transformers gives the dequantised model
MODEL_TYPES = {"gemma3": "gemma3_text"}


def header_file(cfg: dict) -> Path | None:
    """The file whose first bytes are the model's GGUF header: the package's .gguf, or a split package's first
    part; None where the package holds neither."""
    spec = importlib.util.find_spec(cfg["package"])
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.rglob(cfg.get("file") or "*.gguf"))
    if found:
        return found[0]
    module = importlib.import_module(cfg["package"])  # a split package: its parts, in order
    parts = getattr(module, "chunk_paths", None)
    return Path(parts()[0]) if parts else None


def _read(f, fmt: str):
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("the header ends early")
    return struct.unpack(fmt, data)[0]


def _string(f) -> str:
    return f.read(_read(f, "<Q")).decode("utf-8", errors="replace")


def _value(f, kind: int):
    """A scalar or a string; an array as its item count (the vocabulary's tokens: its size)."""
    if kind in SCALARS:
        return _read(f, SCALARS[kind])
    if kind == STRING:
        return _string(f)
    if kind != ARRAY:
        raise ValueError(f"unknown value type {kind}")
    item, count = _read(f, "<I"), _read(f, "<Q")
    if item in SCALARS:
        f.seek(struct.calcsize(SCALARS[item]) * count, 1)
    else:
        for _ in range(count):
            _value(f, item)
    return count


@functools.lru_cache(maxsize=None)
def read_metadata(path: Path) -> dict:
    """The header's key-value metadata (arrays as their lengths); ValueError for a file that is not GGUF."""
    with open(path, "rb") as f:
        if f.read(4) != MAGIC:
            raise ValueError("not a GGUF file (its first bytes are not 'GGUF')")
        _read(f, "<I")  # version
        _read(f, "<Q")  # tensor count
        return {_string(f): _value(f, _read(f, "<I")) for _ in range(_read(f, "<Q"))}


def gguf_model_config(cfg: dict) -> tuple[dict | None, str]:
    """The config.json fields the model checks read, from a gguf_package model's header, and where they came
    from; (None, why) where the header cannot be read."""
    path = header_file(cfg)
    if path is None:
        return None, f"no GGUF file in package '{cfg['package']}'"
    try:
        meta = read_metadata(path)
    except (OSError, ValueError) as exc:
        return None, f"{path}: {exc}"
    arch = meta.get("general.architecture")
    get = lambda key: meta.get(f"{arch}.{key}")  # noqa: E731
    config = {"model_type": MODEL_TYPES.get(arch, arch), "hidden_size": get("embedding_length"),
              "num_hidden_layers": get("block_count"), "intermediate_size": get("feed_forward_length"),
              "num_attention_heads": get("attention.head_count"), "max_position_embeddings": get("context_length"),
              "vocab_size": get("vocab_size") or meta.get("tokenizer.ggml.tokens")}
    return {k: v for k, v in config.items() if v is not None}, f"the GGUF header of {path}"
