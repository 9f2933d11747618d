"""The workflow with `backend: vllm`: its evaluation jobs run in the vLLM environment (vLLM's CPU build here,
the real engine), and its tables equal those of the same cells evaluated with transformers.

    .venv/bin/python -m pytest -q tests/test_workflow_vllm.py

One small experiment on SmolLM2-135M: the base model and one LoRA cell, one evaluation family holding a
multiple-choice task, the domain (generation) and the general text. It runs once with `backend: hf`, then
the same workdir with `backend: vllm`: the evaluations rerun (their params changed), training does not. The
LoRA cell shows the CPU platform's split: the domain served with the adapter unmerged, the log-likelihood
tasks on a merged copy. Every engine start costs about a minute here, so the experiment is this small.
Tolerances as in tests/test_vllm.py.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from conftest import REPO
from test_vllm import BPB_RELATIVE_TOLERANCE, require_vllm_environment
from test_workflow import snakemake

pytestmark = pytest.mark.slow


def write_config(path, smollm2_dir, backend: str):
    config = {
        "experiment": "vllm",
        "models": {"smollm2": {"source": "local", "path": str(smollm2_dir)}},
        "domain": {"name": "medcalc-synth", "source": "medcalc_synth", "format": "label", "n_train": 8, "n_test": 8,
                   "seed": 0},
        "methods": {"lora": {"r": 8, "alpha": 16}},
        "learning_rates": [1e-3],
        "training": {"max_steps": 2, "batch_size": 2, "max_seq_len": 320, "keep_weights": True},
        "evaluation": {
            "backend": backend,
            "batch_size": 8,
            "domain": {"limit": 8, "max_gen_toks": 16},
            "general": {"arc_easy": {"limit": 16}},
            "forgetting": {"limit": 3},
            "families": {"all": ["arc_easy", "domain", "domain_loss", "general_text"]},
        },
        "resources": {"train_threads": 2, "eval_threads": 2},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def runs(smollm2_dir, tmp_path_factory):
    require_vllm_environment()
    tmp = tmp_path_factory.mktemp("workflow-vllm")
    workdir = tmp / "work"
    workdir.mkdir()
    tables, logs = {}, {}
    for backend in ("hf", "vllm"):
        config = write_config(tmp / f"{backend}.yaml", smollm2_dir, backend)
        result = snakemake("--cores", "2", "--snakefile", str(REPO / "Snakefile"), f"--configfile={config}",
                           "--directory", str(workdir))
        assert result.returncode == 0, result.stderr[-5000:]
        logs[backend] = result.stderr
        tables[backend] = pd.read_csv(workdir / "results" / "vllm" / "tables" / "tradeoff.csv")
    return workdir / "results" / "vllm", tables, logs


def test_only_the_evaluations_rerun_with_the_other_backend(runs):
    _, _, logs = runs
    assert "rule train:" in logs["hf"]
    assert "rule train:" not in logs["vllm"] and "rule prepare_model:" not in logs["vllm"]
    assert logs["vllm"].count("rule evaluate:") == 2


def test_evaluation_jobs_ran_in_the_vllm_environment(runs):
    results, _, _ = runs
    base = json.loads((results / "smollm2" / "base" / "eval" / "all.json").read_text())
    assert base["settings"]["backend"] == "vllm" and base["settings"]["device"] == "cpu"
    assert base["packages"]["vllm"] == "0.32.0+cpu"
    assert base["settings"]["engines"] is None  # one engine for all three tasks
    log = (results / "logs" / "evaluate" / "smollm2" / "base" / "all.log").read_text()
    assert "vLLM engine started in" in log


def test_lora_cell_splits_generation_and_log_likelihood_on_cpu(runs):
    results, _, _ = runs
    cell = json.loads((results / "smollm2" / "lora" / "lr~0.001" / "seed~0" / "eval" / "all.json").read_text())
    paths = {task: s["lora"] for task, s in cell["settings"]["tasks"].items()}
    assert paths == {"domain": "adapter", "arc_easy": "merged", "domain_loss": "merged", "general_text": "merged"}
    engines = cell["settings"]["engines"]
    assert [(e["tasks"], e["lora"]) for e in engines] == [
        (["domain"], "adapter"), (["arc_easy", "domain_loss", "general_text"], "merged")]
    assert "lora_local_path" in engines[0]["model_args"] and engines[1]["model_args"]["merged_adapter"]


def test_tables_equal_the_hf_run(runs):
    _, tables, _ = runs
    hf, vllm = (tables[b].set_index(["model", "method"]) for b in ("hf", "vllm"))
    assert sorted(hf.index) == sorted(vllm.index) == [("smollm2", "base"), ("smollm2", "lora")]
    vllm = vllm.loc[hf.index]
    for column in ("domain", "arc_easy", "general_avg"):
        assert (hf[column] == vllm[column]).all(), (column, hf[column].tolist(), vllm[column].tolist())
    for loss in ("general_text", "domain_loss"):  # log-likelihoods of fixed text: equal to float32 rounding
        assert ((hf[loss] - vllm[loss]).abs() <= BPB_RELATIVE_TOLERANCE * hf[loss]).all(), loss
    # the adapter moved the model: the LoRA row is not a copy of the base row
    assert hf.loc[("smollm2", "lora"), "general_text"] != hf.loc[("smollm2", "base"), "general_text"]
