"""The training memory estimate and the resources that follow the model: exact parameter counts from a
config.json, estimates against recorded GPU peaks, and the parse-time refusal of a config that cannot fit."""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch
import yaml

from forgetbench.methods import get_method
from forgetbench.training.memory import ModelShape, TrainingSetup, estimate_training_memory

from conftest import REPO
from test_workflow import snakemake

MODELS = REPO / "tests/fixtures/models"


def method(name, **hparams):
    cls = get_method(name)
    return cls(**cls.validate_hparams(hparams, name))


def meta_params(config: dict) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**config)
    with torch.device("meta"):
        return sum(p.numel() for p in AutoModelForCausalLM.from_config(cfg).parameters())


@pytest.mark.parametrize("name", ["qwen2.5-7b-instruct", "qwen2.5-3b-instruct", "smollm2-135m"])
def test_parameter_count_from_config_json_is_exact(name):
    config = json.loads((MODELS / name / "config.json").read_text())
    assert ModelShape.from_config(config).params == meta_params(config)


def test_parameter_count_of_a_gemma3_text_config_is_within_a_thousandth():
    # Gemma-3's extra per-head q/k norms and its two further norms per layer are left out
    config = {"model_type": "gemma3_text", "hidden_size": 640, "intermediate_size": 2048, "num_hidden_layers": 4,
              "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262144}
    assert ModelShape.from_config(config).params == pytest.approx(meta_params(config), rel=1e-3)


def test_trainable_parameters_of_lora_and_hft_match_the_prepared_models(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    shape = ModelShape.from_config(json.loads((tiny_model_dir / "config.json").read_text()))
    for m, tolerance in [(method("lora", r=4, target_modules=["q_proj", "down_proj"]), 0), (method("lora"), 0),
                         (method("hft"), 0.05)]:
        model = m.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), seed=0)
        real = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert m.trainable_params(shape) == pytest.approx(real, rel=tolerance), m.name


def test_the_estimate_is_within_a_tenth_of_every_recorded_gpu_peak():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from train_memory import recorded_rows

    rows = recorded_rows()
    assert len(rows) >= 10 and {r["precision"] for r in rows} == {"fp32", "bf16-mixed"}
    errors = {f"{r['run']} {r['method']}": round(r["error"], 3) for r in rows}
    assert all(abs(e) <= 0.10 for e in errors.values()), errors


def test_sharding_checkpointing_and_precision_lower_the_estimate_as_they_should():
    shape = ModelShape.from_config(json.loads((MODELS / "qwen2.5-7b-instruct/config.json").read_text()))
    sft = method("sft")
    plain = estimate_training_memory(shape, sft, TrainingSetup(precision="fp32", batch_size=1, seq_len=2048))
    # 7.6 B parameters x (4 weights + 4 gradients + 8 AdamW) bytes, before activations: the 122 GB
    assert plain.parts["weights"] + plain.parts["AdamW states"] + 4 * shape.params == pytest.approx(121.85e9, rel=1e-3)
    fsdp = estimate_training_memory(shape, sft, TrainingSetup(precision="fp32", batch_size=1, seq_len=2048,
                                                              processes=4, strategy="fsdp"))
    assert fsdp.parts["AdamW states"] == plain.parts["AdamW states"] / 4
    ckpt = estimate_training_memory(shape, sft, TrainingSetup(precision="fp32", batch_size=8, seq_len=2048,
                                                              gradient_checkpointing=True))
    full = estimate_training_memory(shape, sft, TrainingSetup(precision="fp32", batch_size=8, seq_len=2048))
    assert full.total - ckpt.total > 150 * 2**30
    bf16 = estimate_training_memory(shape, sft, TrainingSetup(precision="bf16", batch_size=1, seq_len=2048))
    assert bf16.parts["weights"] == plain.parts["weights"] / 2
    l2 = estimate_training_memory(shape, method("l2"), TrainingSetup(precision="fp32", batch_size=1, seq_len=2048))
    assert l2.parts["theta0 copy"] == 2 * plain.parts["weights"]


def local_7b_config(tmp_path, **training):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["models"] = {"qwen7b": {"source": "local", "path": str(MODELS / "qwen2.5-7b-instruct"), "gpus": 1}}
    config["methods"] = {"sft": {}}
    config["evaluation"]["backend"] = "hf"
    config.pop("scaling")
    config["training"].update({"max_steps": None, "epochs": 2, "batch_size": 8, "max_seq_len": 2048, "precision": "fp32",
                               **training})
    path = tmp_path / "qwen7b.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_7b_full_fine_tune_on_one_gpu_is_refused_when_the_config_is_parsed(tmp_path):
    path = local_7b_config(tmp_path)
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path))
    assert result.returncode != 0
    line = next(l for l in (result.stdout + result.stderr).splitlines() if "training needs about" in l)
    assert line == (
        f"{path}: model qwen7b, method sft: training needs about 308 GB per GPU (1 GPU, fp32, batch 8 x 2048 "
        "tokens; GB: weights 28.4, AdamW states 56.7, activations and logits 221.7, runtime 1.5), over the 80 GB of "
        "models.qwen7b.gpu_mem_gb or resources.gpu_mem_gb; would fit: no single change (combine precision, "
        "gradient checkpointing, GPUs)")
    assert not (tmp_path / "results").exists()


def test_a_config_that_fits_is_accepted_and_the_refusal_names_what_would_fit(tmp_path):
    path = local_7b_config(tmp_path, precision="bf16-mixed", gradient_checkpointing=True, batch_size=2)
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path))
    assert "would fit: training.precision: bf16; gpus: 2 (FSDP); gpus: 4 (FSDP); gpus: 8 (FSDP); method lora" in result.stdout + result.stderr
    config = yaml.safe_load(path.read_text())
    config["models"]["qwen7b"]["gpus"] = 2
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]


def hub_cache(root, repos: dict[str, str]):
    """A Hugging Face cache holding only config.json of each hub model: what a login node has after the
    workflow fetched them (a few kB each), or after `huggingface-cli download ID config.json`."""
    for repo_id, fixture in repos.items():
        folder = root / f"models--{repo_id.replace('/', '--')}"
        (folder / "refs").mkdir(parents=True)
        (folder / "refs/main").write_text("0" * 40)
        snapshot = folder / "snapshots" / ("0" * 40)
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text((MODELS / fixture / "config.json").read_text())
    return root


def readme_paper_config() -> dict:
    text = (REPO / "README.md").read_text()
    section = text[text.index("### A paper-scale config"):]
    return yaml.safe_load(section[section.index("```yaml") + 7:section.index("```", section.index("```yaml") + 7)])


def job_resources(output: str) -> dict[tuple[str, str, str], dict]:
    """(rule, model, method) -> the resources a dry run shows for that job (the first one of each)."""
    jobs = {}
    for block in re.split(r"\n(?:local)?rule ", "\n" + output)[1:]:
        rule = block.split(":", 1)[0]
        wildcards = re.search(r"^\s*wildcards: (.*)$", block, re.M)
        resources = re.search(r"^\s*resources: (.*)$", block, re.M)
        if not wildcards or not resources:
            continue
        wc = dict(kv.split("=", 1) for kv in wildcards.group(1).split(", "))
        res = dict(kv.split("=", 1) for kv in resources.group(1).split(", "))
        jobs.setdefault((rule, wc.get("model"), wc.get("method") or wc.get("run")), res)
    return jobs


def test_the_readme_paper_config_dry_runs_with_gpus_memory_and_runtime_per_job(tmp_path):
    config = readme_paper_config()
    # the hub's evaluation data cannot be cached here: the offline copies of the same benchmarks
    general = config["evaluation"]["general"]
    assert sorted(general) == ["gsm8k", "humaneval", "ifeval"]
    for settings in general.values():
        settings["source"] = "offline"
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(config))
    cache = hub_cache(tmp_path / "hub", {"Qwen/Qwen2.5-3B-Instruct": "qwen2.5-3b-instruct",
                                         "Qwen/Qwen2.5-7B-Instruct": "qwen2.5-7b-instruct"})
    (cache / "datasets--ncbi--MedCalc-Bench-v1.0").mkdir()  # the domain's data, downloaded once
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path), env={"HF_HUB_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "memory check" not in result.stderr  # both shapes were found
    jobs = job_resources(result.stdout + result.stderr)
    train7, train3 = jobs[("train", "qwen2.5-7b", "sft")], jobs[("train", "qwen2.5-3b", "sft")]
    assert train7["gpu"] == "4" and train3["gpu"] == "4"
    # host memory: under FSDP process 0 alone loads the float32 model (one copy per node) beside 4 processes'
    # overhead; LoRA's DDP processes each load their own copy
    assert int(train7["mem_mb"]) == pytest.approx((1.3 * 4 * 7615616512 + 4 * 3 * 2**30) / 2**20, abs=1)
    lora7 = jobs[("train", "qwen2.5-7b", "lora")]
    assert int(lora7["mem_mb"]) == pytest.approx(4 * (1.3 * 4 * 7615616512 + 3 * 2**30) / 2**20, abs=1)
    assert 1.8 < int(train7["mem_mb"]) / int(train3["mem_mb"]) < 2.5
    # 20 epochs over MedCalc-Bench's ~10k examples: days, not the old fixed 2 hours
    assert int(train7["runtime"]) > 24 * 60 and int(train7["runtime"]) / int(train3["runtime"]) > 2
    assert int(jobs[("prepare_model", "qwen2.5-7b", None)]["mem_mb"]) > 60000
    assert int(jobs[("train", "qwen2.5-7b", "lora")]["runtime"]) < int(train7["runtime"])


def test_a_model_on_two_nodes_asks_slurm_for_both_and_shards_over_every_gpu(tmp_path):
    path = local_7b_config(tmp_path, precision="bf16-mixed", gradient_checkpointing=True, batch_size=2)
    config = yaml.safe_load(path.read_text())
    config["models"]["qwen7b"].update(gpus=4, nodes=2)
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path))
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    jobs = job_resources(result.stdout + result.stderr)
    train, evaluate = jobs[("train", "qwen7b", "sft")], jobs[("evaluate", "qwen7b", None)]
    assert (train["nodes"], train["gpu"]) == ("2", "8") and (evaluate["gpu"], "nodes" in evaluate) == ("4", False)
    # the host memory asked is per node: its 4 processes, and (FSDP) one copy of the model, process 0's
    assert int(train["mem_mb"]) == pytest.approx((1.3 * 4 * 7615616512 + 4 * 3 * 2**30) / 2**20, abs=1)
    config["models"]["qwen7b"].update(gpus=0)
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(path), "--directory", str(tmp_path))
    assert f"{path}: models.qwen7b.nodes: training on several nodes needs GPUs on each" in result.stdout + result.stderr
