"""The paper configs of configs/: each dry-runs (its DAG, the memory check, the resources per job) on a login
node that has fetched the models' config.json and the datasets once (a Hugging Face cache faked from fixtures)."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import REPO
from test_memory import hub_cache, job_resources
from test_workflow import job_counts, snakemake

# lm-eval's hub datasets of the general suite the LoRA Learns Less configs name
GENERAL_DATASETS = ["Rowan/hellaswag", "allenai/ai2_arc", "allenai/winogrande"]


def fake_cache(tmp_path, models: dict[str, str], datasets: list[str]):
    cache = hub_cache(tmp_path / "hub", models)
    for repo in datasets:
        (cache / f"datasets--{repo.replace('/', '--')}").mkdir()
    return cache


@pytest.mark.parametrize("name, dataset, domain_task", [
    ("lora-learns-less", "meta-math/MetaMathQA", "domain.gsm8k"),
    ("lora-learns-less-code", "ise-uiuc/Magicoder-Evol-Instruct-110K", "domain.humaneval"),
])
def test_lora_learns_less_configs_dry_run(tmp_path, name, dataset, domain_task):
    path = REPO / "configs" / f"{name}.yaml"
    config = yaml.safe_load(path.read_text())
    assert sorted(config["methods"]) == ["lora-r16", "lora-r256", "lora-r64", "sft"]
    cache = fake_cache(tmp_path, {"meta-llama/Llama-2-7b-hf": "llama-2-7b"}, [dataset, *GENERAL_DATASETS])
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), env={"HF_HUB_CACHE": str(cache)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "memory check" not in output  # the model's shape was read from its config.json
    counts = job_counts(output)
    cells = 4 * 6  # methods × learning rates, one seed
    assert counts["train"] == cells
    # per evaluated model (the cells and the base model): the three general tasks, the lm-eval domain score,
    # the domain loss and the general text; no answer-scored `domain` task for prompt-completion data
    assert counts["evaluate"] == (cells + 1) * 6
    assert counts["merge_evaluations"] == cells + 1
    assert f"family={domain_task}" in output and not re.search(r"family=domain\b(?![._])", output)
    jobs = job_resources(output)
    sft, lora = jobs[("train", "llama2-7b", "sft")], jobs[("train", "llama2-7b", "lora-r256")]
    assert sft["gpu"] == "4" and lora["gpu"] == "4"
    assert int(lora["runtime"]) < int(sft["runtime"])
