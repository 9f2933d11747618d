"""The workflow as a whole: the DAG of the default and of a paper-scale config, lint, and an end-to-end smoke
run of every rule on the tiny model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO


def snakemake(*args, cwd=REPO, timeout=1800):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    table = output[output.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def test_dry_run_of_the_default_shows_the_whole_dag(tmp_path):
    # in an empty working directory: results of a default run in the checkout must not change the count
    result = snakemake("-n", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(REPO / "config.yaml"),
                       "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout + result.stderr)
    # SmolLM2: 2 LRs × (7 trained methods + wise-0.5 and lines from the sft run); Gemma: 2 LRs × (sft, lora);
    # each base model is evaluated once and scores the training data once.
    # The scaling study: 2 LoRA ranks + full fine-tuning on one model, 2 checkpoints each, plus the base as step 0.
    # Each of the 24 evaluated models runs two task families (general, domain), merged into one metrics file.
    assert counts == {"aggregate": 1, "aggregate_scaling": 1, "aggregate_token_stats": 1, "all": 1,
                      "combine_posthoc": 4, "evaluate": 48, "evaluate_base_checkpoint": 1, "evaluate_checkpoint": 6,
                      "merge_evaluations": 24, "plot_scaling": 1, "plot_token_probs": 1, "plot_tradeoff": 1,
                      "prepare_domain": 1, "prepare_model": 2, "score_base": 2, "train": 18, "train_scaling": 3,
                      "total": 116}


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def paper_config(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["experiment"] = "paper"
    config["models"] = {name: {"source": "hub", "id": hub_id} for name, hub_id in
                        [("qwen2.5-3b", "Qwen/Qwen2.5-3B-Instruct"), ("qwen2.5-7b", "Qwen/Qwen2.5-7B-Instruct"),
                         ("gemma3-4b", "google/gemma-3-4b-it")]}
    config["learning_rates"] = [1e-6, 2e-6, 5e-6, 1e-5, 2e-5]
    config["seeds"] = [0, 1, 2]
    config["scaling"]["models"] = ["qwen2.5-3b"]
    del config["evaluation"]["families"]  # a cluster runs one job per task
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_dry_run_of_a_paper_scale_config(tmp_path):
    path = paper_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    result = snakemake("-n", "--configfile", str(path))
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout + result.stderr)
    cells = 3 * 5 * 3  # models × LRs × seeds
    assert counts["train"] == cells * 7
    assert counts["combine_posthoc"] == cells * 2
    tasks = len(config["evaluation"]["general"]) + 2  # + domain and the general text
    assert counts["merge_evaluations"] == cells * 9 + 3
    assert counts["evaluate"] == (cells * 9 + 3) * tasks
    assert counts["prepare_model"] == 3
    assert counts["train_scaling"] == 3 and counts["evaluate_checkpoint"] == 3 * 2


def test_gpu_requests_are_sized_per_model(tmp_path):
    """models.<name>.gpus sizes the `gpu` resource of that model's training and evaluation jobs only."""
    path = paper_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["models"]["qwen2.5-7b"]["gpus"] = 2
    config["resources"]["gpu"] = 1
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(path))
    assert result.returncode == 0, result.stderr
    gpus = {}
    for block in (result.stdout + result.stderr).split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        model = re.search(r"wildcards: .*?model=([^,\s]+)", block)
        gpu = re.search(r"resources: .*?\bgpu=(\d+)", block)
        if model and gpu:
            gpus.setdefault((rule, model.group(1)), set()).add(int(gpu.group(1)))
    assert gpus[("train", "qwen2.5-7b")] == {2} and gpus[("evaluate", "qwen2.5-7b")] == {2}
    assert gpus[("train", "qwen2.5-3b")] == {1} and gpus[("evaluate", "gemma3-4b")] == {1}


def test_bad_config_fails_before_any_job_with_one_line(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["methods"]["lroa"] = {}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(path))
    assert result.returncode != 0
    assert "bad.yaml: methods: unknown method 'lroa' (did you mean 'lora'?)" in result.stdout + result.stderr


def smoke_config(tmp_path, tiny_model_dir):
    config = {
        "experiment": "smoke",
        "models": {
            "tiny-chat": {"source": "local", "path": str(tiny_model_dir)},
            "tiny-plain": {"source": "local", "path": str(tiny_model_dir), "chat_template": "none",
                           "methods": ["sft", "lora"]},
        },
        "domain": {"name": "medcalc-synth", "source": "medcalc_synth", "format": "label", "n_train": 16,
                   "n_test": 4, "seed": 0},
        "methods": {"sft": {}, "lora": {"r": 4, "alpha": 8}, "wise": {"alphas": [0.5]}, "lines": {}},
        "learning_rates": [1e-3],
        "seeds": [0],
        "training": {"max_steps": 2, "batch_size": 2, "max_seq_len": 256, "logging_steps": 1},
        "evaluation": {
            "batch_size": 4,
            "domain": {"limit": 4, "max_gen_toks": 8},
            "general": {"arc_easy": {"limit": 3}, "hellaswag": {"limit": 3}, "piqa": {"limit": 3},
                        "gsm8k": {"limit": 2, "max_gen_toks": 16}, "humaneval": {"limit": 2, "max_gen_toks": 16}},
            "forgetting": {"limit": 2},
            "families": {"general": ["arc_easy", "hellaswag", "piqa", "gsm8k", "humaneval", "general_text"]},
        },
        "scaling": {"lora_ranks": [2, 4], "full": True, "lr": 1e-3, "steps": [1, 2], "n_boot": 20,
                    "models": ["tiny-chat"]},
        "resources": {"train_threads": 1, "eval_threads": 1},
    }
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_smoke_run_goes_through_every_rule(tmp_path, tiny_model_dir):
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = smoke_config(tmp_path, tiny_model_dir)
    result = snakemake("--cores", "2", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config),
                       "--directory", str(workdir))
    assert result.returncode == 0, result.stderr[-5000:]
    results = workdir / "results" / "smoke"

    table = pd.read_csv(results / "tables" / "tradeoff.csv")
    assert sorted(zip(table["model"], table["method"])) == sorted(
        [(m, k) for m in ("tiny-chat", "tiny-plain") for k in ("base", "lora", "sft")]
        + [("tiny-chat", "wise-0.5"), ("tiny-chat", "lines")])
    for column in ["domain", "arc_easy", "hellaswag", "piqa", "gsm8k", "humaneval", "general_avg"]:
        assert table[column].between(0, 1).all(), column
    assert (table["general_text"] > 0).all()
    assert (table.loc[table["method"] == "base", "forgetting"] == 0).all()
    assert pd.read_parquet(results / "tables" / "tradeoff.parquet").shape == table.shape

    md = (results / "tables" / "tradeoff.md").read_text()
    assert "| tiny-chat | base" in md.replace("  ", " ") or re.search(r"\| tiny-chat\s+\| base\s+\|", md)
    assert r"\begin{tabular}" in (results / "tables" / "tradeoff.tex").read_text()
    assert (results / "figures" / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"

    wise = json.loads((results / "tiny-chat" / "wise-0.5" / "lr~0.001" / "seed~0" / "run.json").read_text())
    assert wise["config"]["variant_settings"] == {"alpha": 0.5} and wise["status"] == "finished"
    cell = results / "tiny-chat" / "lora" / "lr~0.001" / "seed~0"
    assert (cell / "model" / "adapter_config.json").exists()
    assert len((cell / "train_log.jsonl").read_text().splitlines()) == 2
    metrics = json.loads((cell / "eval" / "metrics.json").read_text())
    assert metrics["cell"] == {"model": "tiny-chat", "method": "lora", "lr": 0.001, "seed": 0}
    assert metrics["git_commit"] and metrics["packages"]["lm_eval"] == "0.4.13"
    assert sorted(metrics["families"]) == ["domain", "general"]
    assert sorted(metrics["metrics"]) == ["arc_easy", "domain", "general_text", "gsm8k", "hellaswag", "humaneval", "piqa"]
    assert len(list((cell / "eval" / "cache").glob("general-*_rank0.db"))) == 1
    plain = json.loads((results / "tiny-plain" / "base" / "eval" / "metrics.json").read_text())
    assert plain["families"]["general"]["settings"]["chat_template"] is False
    assert (results / "benchmarks" / "train" / "tiny-chat" / "sft" / "lr~0.001" / "seed~0.tsv").exists()
    assert "step 2/2" in (results / "logs" / "train" / "tiny-chat" / "sft" / "lr~0.001" / "seed~0.log").read_text()

    scaling = pd.read_csv(results / "tables" / "scaling.csv")
    assert sorted(set(scaling["method"])) == ["scaling-lora-r2", "scaling-lora-r4", "scaling-sft"]
    assert sorted(set(scaling["step"])) == [0, 1, 2]
    assert (scaling.loc[scaling["step"] == 0, "forgetting"] == 0).all()
    assert scaling.groupby("method")["n_params"].first().is_monotonic_increasing
    fits = pd.read_csv(results / "tables" / "scaling_fits.csv")
    assert {"linear", "power_law"} <= set(fits["law"])
    for name in ("scaling_steps", "scaling_ft_loss", "scaling_predicted", "learning_vs_forgetting"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 10_000
    assert (workdir / "results" / "smoke" / "tiny-chat" / "scaling-lora-r2" / "lr~0.001" / "seed~0" / "checkpoints"
            / "step~1" / "adapter_config.json").exists()

    # a second run has nothing to do; the report bundles tables and figures
    again = snakemake("-n", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config), "--directory", str(workdir))
    assert "Nothing to be done" in again.stdout + again.stderr
    report = snakemake("--snakefile", str(REPO / "Snakefile"), "--configfile", str(config), "--directory", str(workdir),
                       "--report", str(workdir / "report.html"))
    assert report.returncode == 0, report.stderr[-3000:]
    assert "tradeoff.png" in (workdir / "report.html").read_text(errors="replace")
