"""vLLM and transformers (HF) give the same scores on the same model, task subsets and greedy generations.

Needs a CUDA GPU and vLLM (`pip install -e '.[vllm]'`); skipped with the reason elsewhere. The model is
$FORGETBENCH_GPU_MODEL (an HF model directory) or, without it, the tiny random test model.

    FORGETBENCH_GPU_MODEL=results/default/smollm2-135m/base/model pytest -q tests/test_backends_agree.py

Tolerances, and why: both backends run bfloat16 on the GPU, but with different kernels (vLLM's paged attention,
fused sampling), so log-likelihoods differ in the last bits and a near-tie between two choices can flip:
multiple-choice accuracy may differ by at most 2 of the 50 questions (0.04), bits per byte by 1 %, and the
greedy generations must agree exactly on at least 90 % of the prompts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from forgetbench.evaluation.backend import cuda_available, vllm_installed

pytestmark = pytest.mark.gpu

MC_TOLERANCE = 0.04
BPB_RELATIVE_TOLERANCE = 0.01
GENERATION_AGREEMENT = 0.9


def _require_gpu_and_vllm():
    if not cuda_available():
        pytest.skip("needs a CUDA GPU: vLLM runs on CUDA only")
    if not vllm_installed():
        pytest.skip("needs vllm: pip install -e '.[vllm]' (envs/vllm.yaml)")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    _require_gpu_and_vllm()
    if os.environ.get("FORGETBENCH_GPU_MODEL"):
        return Path(os.environ["FORGETBENCH_GPU_MODEL"])
    from forgetbench.models.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


def _generations(model_dir, backend: str, prompts: list[str], max_tokens: int) -> list[str]:
    """Greedy continuations of `prompts` through lm-eval's model class of `backend`."""
    from lm_eval.api.instance import Instance

    if backend == "hf":
        from lm_eval.models.huggingface import HFLM

        lm = HFLM(pretrained=str(model_dir), dtype="bfloat16", device="cuda", batch_size=8)
    else:
        from lm_eval.models.vllm_causallms import VLLM

        lm = VLLM(pretrained=str(model_dir), dtype="bfloat16", seed=0, gpu_memory_utilization=0.4)
    requests = [Instance("generate_until", {}, (p, {"until": [], "max_gen_toks": max_tokens, "do_sample": False}), i)
                for i, p in enumerate(prompts)]
    out = lm.generate_until(requests)
    del lm
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()
    return out


def test_vllm_and_hf_agree(model_dir, tmp_path):
    from forgetbench.evaluation.runner import evaluate

    tasks = {"arc_easy": {"limit": 50}, "general_text": {"limit": 10}}
    scores = {}
    for backend in ("hf", "vllm"):
        result = evaluate(model_dir, tmp_path / f"{backend}.json", tasks, backend=backend, device="cuda", seed=0,
                          batch_size=16, chat_template="none", dtype="bfloat16")
        scores[backend] = {task: m["score"] for task, m in result["metrics"].items()}
    print(json.dumps(scores))
    assert abs(scores["hf"]["arc_easy"] - scores["vllm"]["arc_easy"]) <= MC_TOLERANCE
    hf_bpb, vllm_bpb = scores["hf"]["general_text"], scores["vllm"]["general_text"]
    assert abs(hf_bpb - vllm_bpb) <= BPB_RELATIVE_TOLERANCE * hf_bpb

    prompts = [f"Question: what is {a} plus {b}?\nAnswer:" for a in range(5) for b in range(4)]
    hf, vllm = (_generations(model_dir, backend, prompts, 24) for backend in ("hf", "vllm"))
    same = sum(a == b for a, b in zip(hf, vllm, strict=True)) / len(prompts)
    assert same >= GENERATION_AGREEMENT, list(zip(hf, vllm, strict=True))[:5]
