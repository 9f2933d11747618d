"""Evaluation's GPUs apart from training's, and vLLM's tensor-parallel size checked against the model's heads,
KV heads and vocabulary when the config is parsed (forgetbench.config.parallel), on the fixture configs of
real models: the one-line refusals, and the GPUs the dry run's evaluation jobs ask for."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from forgetbench.errors import ConfigError
from forgetbench.config.parallel import Widths, evaluation_plans, nearest_sizes, tp_problem, valid_sizes

from conftest import REPO
from test_memory import job_resources
from test_workflow import job_counts, snakemake

MODELS = REPO / "tests/fixtures/models"
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def widths(fixture: str) -> Widths:
    return Widths.from_config(json.loads((MODELS / fixture / "config.json").read_text()))


def local_config(fixture: str, name: str, evaluation: dict | None = None, **model) -> dict:
    """The default config on one local fixture model (its config.json only: enough for a dry run), SFT alone."""
    config = copy.deepcopy(DEFAULT)
    config["models"] = {name: {"source": "local", "path": str(MODELS / fixture), **model}}
    config["methods"] = {"sft": {}}
    config.pop("scaling")
    config["training"].update(precision="bf16-mixed", gradient_checkpointing=True)
    config["evaluation"].update(evaluation or {})
    return config


def parsed(config: dict) -> dict:
    """The config as the Snakefile sees it after validation: the schema's defaults filled in."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    return config


def plans(config: dict):
    return evaluation_plans(parsed(config), "cfg.yaml", "/nonexistent/results")


def dry_run(tmp_path, config: dict):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake("-n", "--snakefile", str(REPO / "Snakefile"), f"--configfile={path}",
                       "--directory", str(tmp_path))
    return path, result.returncode, result.stdout + result.stderr


# --- what vLLM can split ---------------------------------------------------------------------------------

def test_the_sizes_vllm_accepts_follow_heads_kv_heads_vocabulary_and_mlp():
    assert valid_sizes(widths("smollm2-135m")) == [1, 3]  # 9 heads, 3 KV heads; 9 does not divide 49152
    assert valid_sizes(widths("qwen2.5-7b-instruct")) == [1, 2, 4]  # 28 heads, 4 KV heads; 7 and 14, 28 fail on KV
    assert valid_sizes(widths("qwen2.5-3b-instruct"))[-1] == 16
    assert tp_problem(2, widths("smollm2-135m")) == "does not divide the 9 attention heads"
    assert tp_problem(7, widths("qwen2.5-7b-instruct")) == "is not a multiple of the 4 KV heads"
    assert tp_problem(4, Widths(heads=12, kv_heads=6)) == "does not divide the 6 KV heads"
    assert tp_problem(9, widths("smollm2-135m")) == "does not divide the vocabulary of 49152 tokens (padded to 49152)"
    assert tp_problem(2, Widths(heads=8, kv_heads=8, vocab=32000, intermediate=1001)) == "does not divide the MLP width 1001"
    # vLLM pads the vocabulary to a multiple of 64 before it splits it: 151,665 tokens split 4 ways
    assert tp_problem(4, Widths(heads=8, kv_heads=8, vocab=151665)) is None
    assert nearest_sizes(2, widths("smollm2-135m")) == "1 or 3" and nearest_sizes(8, widths("qwen2.5-7b-instruct")) == "4"


# --- the plan per model (parse time, no Snakemake) ---------------------------------------------------------

def test_training_gpus_the_model_cannot_split_over_are_lowered_for_evaluation(capsys):
    plan = plans(local_config("smollm2-135m", "smol", gpus=2))["smol"]
    assert (plan.backend, plan.gpus, plan.tensor_parallel_size) == ("vllm", 1, 1)
    assert capsys.readouterr().err.strip() == (
        "forgetbench: models.smol: evaluation on 1 of training's 2 GPUs: vLLM's tensor-parallel size 2 does not "
        "divide the 9 attention heads (evaluation.gpus or models.smol.evaluation_gpus sets it)")
    plan = plans(local_config("qwen2.5-7b-instruct", "qwen7b", gpus=8))["qwen7b"]
    assert (plan.gpus, plan.tensor_parallel_size) == (4, 4)


@pytest.mark.parametrize("evaluation, model, text", [
    ({"gpus": 2}, {}, "cfg.yaml: models.smol: evaluation on 2 GPUs: vLLM's tensor-parallel size 2 does not divide "
                      "the 9 attention heads: set evaluation.gpus to 1 or 3"),
    ({}, {"evaluation_gpus": 2}, "cfg.yaml: models.smol: evaluation on 2 GPUs: vLLM's tensor-parallel size 2 does "
                                 "not divide the 9 attention heads: set models.smol.evaluation_gpus to 1 or 3"),
    ({"vllm": {"tensor_parallel_size": 2}}, {},
     "cfg.yaml: models.smol: vLLM's tensor-parallel size 2 (evaluation.vllm.tensor_parallel_size) does not divide "
     f"the 9 attention heads (from {MODELS}/smollm2-135m/config.json): set evaluation.vllm.tensor_parallel_size "
     "to 1 or 3, or null for the largest that fits"),
    ({"gpus": 1, "vllm": {"tensor_parallel_size": 3}}, {},
     "cfg.yaml: models.smol: evaluation.vllm.tensor_parallel_size 3 needs 3 GPUs and evaluation.gpus gives 1: set "
     "evaluation.gpus to 3"),
])
def test_a_size_a_key_fixed_is_refused_in_one_line_naming_the_fix(evaluation, model, text):
    with pytest.raises(ConfigError) as refused:
        plans(local_config("smollm2-135m", "smol", evaluation, gpus=2, **model))
    assert str(refused.value) == text


def test_evaluation_gpus_apart_from_training(capsys):
    # a 7B trains on 8 GPUs and evaluates on 1; evaluation.gpus: 0 evaluates on the CPU with transformers
    config = local_config("qwen2.5-7b-instruct", "qwen7b", {"gpus": 1}, gpus=8)
    assert plans(config)["qwen7b"].gpus == 1
    config["models"]["qwen7b"]["evaluation_gpus"] = 0  # the model's own key wins over evaluation.gpus
    plan = plans(config)["qwen7b"]
    assert (plan.backend, plan.gpus, plan.tensor_parallel_size) == ("hf", 0, None)
    # a fixed size that fits: the jobs ask exactly for it
    plan = plans(local_config("qwen2.5-7b-instruct", "qwen7b", {"vllm": {"tensor_parallel_size": 2}}, gpus=8))["qwen7b"]
    assert (plan.gpus, plan.tensor_parallel_size) == (2, 2)
    assert capsys.readouterr().err == ""


def test_a_gguf_models_heads_come_from_its_header():
    config = copy.deepcopy(DEFAULT)
    config["evaluation"]["gpus"] = 2
    config["models"]["smollm2-135m"]["evaluation_gpus"] = 3
    # SmolLM2 (9 heads, 3 KV heads) takes 3 GPUs; Gemma-3-270M (4 heads, 1 KV head) takes evaluation.gpus' 2
    assert {m: p.gpus for m, p in plans(config).items()} == {"smollm2-135m": 3, "gemma3-270m": 2}
    config["models"]["smollm2-135m"]["evaluation_gpus"] = 2
    with pytest.raises(ConfigError) as refused:
        plans(config)
    assert str(refused.value) == ("cfg.yaml: models.smollm2-135m: evaluation on 2 GPUs: vLLM's tensor-parallel size "
                                  "2 does not divide the 9 attention heads: set models.smollm2-135m.evaluation_gpus "
                                  "to 1 or 3")


def test_the_default_experiment_evaluates_on_its_cpu_and_reads_no_shape(monkeypatch):
    import forgetbench.config.parallel as parallel

    monkeypatch.setattr(parallel, "model_widths", lambda *a: pytest.fail("a CPU evaluation needs no shape"))
    assert {m: (p.backend, p.gpus) for m, p in plans(DEFAULT).items()} == {"smollm2-135m": ("hf", 0),
                                                                           "gemma3-270m": ("hf", 0)}


# --- the dry run -------------------------------------------------------------------------------------------

def test_the_dry_run_asks_training_and_evaluation_gpus_apart(tmp_path):
    config = local_config("smollm2-135m", "smol", gpus=2)
    config["models"]["qwen7b"] = {"source": "local", "path": str(MODELS / "qwen2.5-7b-instruct"), "gpus": 8}
    _, code, output = dry_run(tmp_path, config)
    assert code == 0, output[-3000:]
    jobs = job_resources(output)
    assert jobs[("train", "smol", "sft")]["gpu"] == "2" and jobs[("evaluate", "smol", None)]["gpu"] == "1"
    assert jobs[("train", "qwen7b", "sft")]["gpu"] == "8" and jobs[("evaluate", "qwen7b", None)]["gpu"] == "4"
    assert jobs[("score_base", "qwen7b", None)]["gpu"] == "8"  # score_base scores on the training job's GPUs
    assert "evaluation on 1 of training's 2 GPUs" in output
    assert job_counts(output)["evaluate"] == 2 * 3  # per model the base and 2 LRs (one family), as without GPUs


def test_the_dry_run_refuses_an_evaluation_gpu_count_in_one_line(tmp_path):
    path, code, output = dry_run(tmp_path, local_config("smollm2-135m", "smol", {"gpus": 2}, gpus=2))
    assert code != 0
    assert (f"{path}: models.smol: evaluation on 2 GPUs: vLLM's tensor-parallel size 2 does not divide the 9 "
            f"attention heads: set evaluation.gpus to 1 or 3") in output
    assert not (tmp_path / "results").exists()
