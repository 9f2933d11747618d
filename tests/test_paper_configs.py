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


# The configs of the other papers: hub model id -> the config.json fixture of its shape; the datasets each one's
# domain (and its lm-eval domain tasks) read.
QWEN = {"Qwen/Qwen2.5-3B-Instruct": "qwen2.5-3b-instruct", "Qwen/Qwen3-4B": "qwen3-4b",
        "Qwen/Qwen2.5-7B-Instruct": "qwen2.5-7b-instruct"}
PAPER_CONFIGS = {
    "sft-doesnt-hurt-medcalc-cot": (QWEN, ["ncbi/MedCalc-Bench-v1.0"]),
    "sft-doesnt-hurt-medcalc-label": (QWEN, ["ncbi/MedCalc-Bench-v1.0"]),
    "sft-doesnt-hurt-esci": (QWEN, ["tasksource/esci"]),
    "sft-doesnt-hurt-metamathqa": (QWEN, ["meta-math/MetaMathQA", "openai/gsm8k"]),
    "scaling-laws-forgetting": ({"meta-llama/Llama-2-7b-chat-hf": "llama-2-7b"}, ["meta-math/MetaMathQA", "openai/gsm8k"]),
    "dft-math": ({"Qwen/Qwen2.5-Math-1.5B": "qwen2.5-math-1.5b"},
                 ["AI-MO/NuminaMath-CoT", "HuggingFaceH4/MATH-500", "Maxwell-Jia/AIME_2024"]),
}


def dry_run(tmp_path, name: str) -> tuple[dict, str]:
    models, datasets = PAPER_CONFIGS[name]
    path = REPO / "configs" / f"{name}.yaml"
    cache = fake_cache(tmp_path, models, datasets)
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), env={"HF_HUB_CACHE": str(cache)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return yaml.safe_load(path.read_text()), output


@pytest.mark.parametrize("name", [n for n in PAPER_CONFIGS if n.startswith("sft-doesnt-hurt")])
def test_sft_doesnt_always_hurt_configs_dry_run_and_end_with_the_paper_comparison(tmp_path, name):
    config, output = dry_run(tmp_path, name)
    assert config["learning_rates"] == [1.0e-6, 5.0e-6, 2.0e-5]
    assert sorted(config["methods"]) == ["flow", "l2", "lora", "sft", "talr", "wise"]
    assert sorted(config["evaluation"]["general"]) == ["gsm8k", "humaneval", "ifeval"]
    assert "memory check" not in output  # every model's shape was read from its config.json
    counts = job_counts(output)
    trained = 3 * 5 * 3  # models × trained methods × LRs
    assert counts["train"] == trained
    assert counts["combine_posthoc"] == 3 * 3 * 3  # WiSE-FT's three alphas from each sft run
    assert counts["score_base"] == 3  # FLOW's weights and TALR's token statistics, once per model
    assert counts["paper_comparison"] == 1 and counts["aggregate"] == 1
    assert f"results/{config['experiment']}/tables/paper_comparison.md" in output
    jobs = job_resources(output)
    assert all(jobs[("train", m, "sft")]["gpu"] == "4" for m in ("qwen2.5-3b", "qwen3-4b", "qwen2.5-7b"))


def test_the_scaling_laws_config_dry_runs_every_rank_and_checkpoint(tmp_path):
    config, output = dry_run(tmp_path, "scaling-laws-forgetting")
    counts = job_counts(output)
    ranks, steps = config["scaling"]["lora_ranks"], config["scaling"]["steps"]
    assert counts["train_scaling"] == len(ranks) and not config["scaling"]["full"]
    assert counts["evaluate_checkpoint"] == len(ranks) * len(steps)
    assert counts["paper_comparison"] == 1
    assert "results/scaling-laws-forgetting/tables/scaling_fits.md" in output


def test_the_dft_config_dry_runs_with_its_math_tasks_as_the_domain_score(tmp_path):
    config, output = dry_run(tmp_path, "dft-math")
    counts = job_counts(output)
    assert sorted(config["methods"]) == ["dft", "sft"] and counts["train"] == 2
    assert "family=domain.minerva_math500" in output and "family=domain.aime24" in output
    # the authors' effective batch: 4 per GPU x 8 GPUs x 8 accumulated = 256
    training = config["training"]
    assert training["batch_size"] * training["grad_accum"] * config["models"]["qwen2.5-math-1.5b"]["gpus"] == 256
    assert job_resources(output)[("train", "qwen2.5-math-1.5b", "dft")]["gpu"] == "8"
    assert counts["paper_comparison"] == 1


@pytest.mark.parametrize("path", sorted(p for p in (REPO / "configs").glob("*.yaml")
                                         if not p.name.endswith(".published.yaml")),  # numbers, not configs
                         ids=lambda p: p.name)
def test_every_config_opens_with_its_paper_and_the_command(path):
    text = path.read_text()
    head = text[:text.index("\nexperiment:")]
    assert re.search(r"arXiv \d{4}\.\d{5}", head), "the paper's arXiv id"
    assert f"snakemake --profile slurm --configfile configs/{path.name}" in head
    config = yaml.safe_load(text)
    assert (REPO / "configs" / config["published"]).is_file()
