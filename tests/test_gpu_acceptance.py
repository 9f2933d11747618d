"""benchmarks/gpu_acceptance.sh, its CPU-runnable parts: the command with --cpu (one-layer models) writes the one
JSON of results with every section's status and figures; FSDP is skipped with its reason (it needs a GPU), and
the vLLM section says why where vLLM does not import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))


def test_the_acceptance_command_on_cpu_writes_one_json_of_results(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "ACCEPTANCE_PYTHON": sys.executable}
    result = subprocess.run(["bash", "benchmarks/gpu_acceptance.sh", "--cpu", "--methods", "sft", "lora",
                             "--precisions", "bf16", "--sizes", "small", "larger",
                             "--sections", "fsdp_vs_plain", "memory", "score_base", "hf_eval"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = json.loads((tmp_path / "acceptance.json").read_text())
    assert out["environment"]["device"] == "cpu" and out["environment"]["cuda_available"] is False
    sections = out["sections"]
    assert list(sections) == ["fsdp_vs_plain", "memory", "score_base", "hf_eval"]
    assert sections["fsdp_vs_plain"]["status"] == "skipped"
    assert sections["fsdp_vs_plain"]["reason"].startswith("FSDP needs a GPU")
    memory = sections["memory"]
    assert memory["status"] == "ok" and (memory["batch"], memory["seq"]) == (2, 128)
    assert [(r["size"], r["method"], r["precision"]) for r in memory["rows"]] == [
        ("small", "sft", "bf16"), ("small", "lora", "bf16"), ("larger", "sft", "bf16"), ("larger", "lora", "bf16")]
    for row in memory["rows"]:
        assert row["measured_mb"] > 100 and row["estimate_mb"] > 100
        assert row["error"] == pytest.approx(row["estimate_mb"] / row["measured_mb"] - 1, abs=0.01)
    # the larger size's estimate is the larger (its hidden size doubled)
    assert memory["rows"][2]["estimate_mb"] > memory["rows"][0]["estimate_mb"]
    assert sections["score_base"] == {**sections["score_base"], "status": "ok", "device": "cpu", "samples": 4,
                                      "max_rel_diff": 0.0}
    hf = sections["hf_eval"]
    assert hf["status"] == "ok" and hf["runs"]["cpu"]["device"] == "cpu"
    assert set(hf["runs"]["cpu"]["scores"]) == {"domain", "domain_loss"} and hf["runs"]["cpu"]["scores"]["domain_loss"] > 0
    assert "wrote" in result.stdout and (tmp_path / "log.txt").is_file()


def test_the_vllm_section_says_why_it_is_skipped_where_vllm_does_not_import(monkeypatch, tmp_path):
    import importlib.util

    import gpu_acceptance

    monkeypatch.setenv("FORGETBENCH_VLLM_PYTHON", str(tmp_path / "no-python"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    section = gpu_acceptance.vllm(gpu_acceptance.parse(["--device", "cpu", "--json", str(tmp_path / "o.json")]), {})
    assert section == {"status": "skipped",
                       "reason": f"vllm does not import here (no vllm package, no {tmp_path / 'no-python'})"}


def test_cuda_without_a_gpu_is_refused_in_one_line(tmp_path, capsys):
    import torch

    import gpu_acceptance

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit):
        gpu_acceptance.parse(["--device", "cuda", "--json", str(tmp_path / "o.json")])
    assert "--device cuda: torch sees no GPU (use --device cpu for the CPU-runnable parts)" in capsys.readouterr().err
