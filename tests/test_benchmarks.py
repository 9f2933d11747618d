"""The benchmark scripts keep working: their bad options fail before any model is built, and a short CPU run of
each prints the rows its README figures come from (not a timing test: no figure is judged, only what it counts)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from bench_common import build_random_model, key_value, method_spec  # noqa: E402
from rule_times import rule_times  # noqa: E402


def bench(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=900, env={**os.environ, **(env or {})})


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_key_value_reads_json_values_and_names_a_bad_item():
    assert key_value("hidden_size=2048") == ("hidden_size", 2048)
    assert key_value("tie_word_embeddings=false") == ("tie_word_embeddings", False)
    assert key_value("hidden_act=gelu") == ("hidden_act", "gelu")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^'hidden_size' is not KEY=VALUE$"):
        key_value("hidden_size")


def test_method_spec_checks_the_method_and_its_hyperparameters():
    name, hparams = method_spec("lora:dropout=0,r=8")
    assert name == "lora" and hparams["dropout"] == 0 and hparams["r"] == 8 and "alpha" in hparams
    assert method_spec("sft") == ("sft", {})
    refused = {
        "lroa": r"--methods lroa: unknown method 'lroa' \(did you mean 'lora'\?\)",
        "lora:dropuot=0": r"--methods lora:dropuot=0: Additional properties .*'dropuot'",
        "lora:r": r"--methods lora:r: 'r' is not KEY=VALUE",
        "wise": r"--methods wise: 'wise' is posthoc, not trained",
    }
    for spec, message in refused.items():
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            method_spec(spec)


@pytest.mark.parametrize("script, args, message", [
    ("train_throughput.py", ["--methods", "sft", "lroa"],
     "--methods lroa: unknown method 'lroa' (did you mean 'lora'?)"),
    ("train_throughput.py", ["--methods", "lora:rank=8"],
     "--methods lora:rank=8: Additional properties are not allowed"),
    ("train_throughput.py", ["--set", "hidden_size=2048"], "--set: only with --random-init DIR"),
    ("eval_throughput.py", ["--num-layers", "2", "--set", "a=1"], "--set, --num-layers: only with --random-init DIR"),
    ("eval_throughput.py", ["--random-init", ".", "--set", "hidden_size"],
     "argument --set: 'hidden_size' is not KEY=VALUE"),
    ("train_throughput.py", ["--model", "m", "--random-init", "."], "--model and --random-init exclude each other"),
    ("train_throughput.py", ["--processes", "2", "--profile"], "--profile: only with --processes 1"),
])
def test_bad_benchmark_options_fail_in_one_line_before_a_model_is_built(script, args, message):
    result = bench(script, *args)
    assert result.returncode == 2, result.stderr
    assert last_line(result.stderr).startswith(f"{script}: error: {message}")


def test_a_config_key_the_model_does_not_have_is_named(tiny_model_dir, tmp_path):
    with pytest.raises(SystemExit, match=rf"^--set hiden_size: {tiny_model_dir / 'config.json'} has no such key$"):
        build_random_model(tiny_model_dir, tmp_path / "m", overrides={"hiden_size": 128})


def test_train_throughput_on_the_tiny_model(tmp_path):
    out = tmp_path / "train.json"
    result = bench("train_throughput.py", "--methods", "sft", "lora:dropout=0", "--steps", "3", "--batch", "2",
                   "--device", "cpu", "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"sft", "lora:dropout=0"}
    sft, lora = rows["sft"], rows["lora:dropout=0"]
    assert sft["throughput_vs_sft"] == 1.0 and sft["memory_vs_sft"] == 1.0
    assert sft["steps_logged"] == lora["steps_logged"] == 3 and sft["status"] == lora["status"] == "finished"
    # The same records and batch for every method: the same tokens per step.
    assert sft["tokens_per_step"] == lora["tokens_per_step"] > 0
    assert sft["trainable_params"] == sft["total_params"] > lora["trainable_params"] > 0
    assert lora["throughput_vs_sft"] == pytest.approx(lora["tokens_per_s"] / sft["tokens_per_s"])
    assert "| lora:dropout=0 |" in result.stdout and "device cpu" in result.stdout


def test_train_throughput_with_two_processes_counts_the_tokens_of_both(tmp_path):
    """Two torchrun processes of batch 2 against one process of batch 4: the same effective batch over the same
    12 records (one epoch), so the same tokens a step and in all, counted over both processes."""
    two, one = tmp_path / "two.json", tmp_path / "one.json"
    result = bench("train_throughput.py", "--methods", "sft", "--processes", "2", "--steps", "3", "--batch", "2",
                   "--device", "cpu", "--json", str(two))
    assert result.returncode == 0, result.stderr[-3000:]
    single = bench("train_throughput.py", "--methods", "sft", "--steps", "3", "--batch", "4", "--device", "cpu",
                   "--json", str(one))
    assert single.returncode == 0, single.stderr[-3000:]
    [row] = json.loads(two.read_text())["rows"]
    [alone] = json.loads(one.read_text())["rows"]
    assert (row["processes"], row["effective_batch"], row["threads_per_process"]) == (2, 4, 1)
    assert (alone["processes"], alone["effective_batch"], alone["threads_per_process"]) == (1, 4, 2)
    assert row["status"] == alone["status"] == "finished" and row["steps_logged"] == alone["steps_logged"] == 3
    assert row["tokens_seen"] == alone["tokens_seen"] > 0
    assert row["tokens_per_step"] == alone["tokens_per_step"] > 0
    # Two workers of about the same size: their summed RSS is over the largest one's peak.
    assert row["mem_kind"] == "rss_largest_process" and row["tree_rss_mb"] > row["peak_mem_mb"] > 0
    assert alone["mem_kind"] == "rss" and alone["tree_rss_mb"] is None
    assert "batch 2 per process x 2 processes = effective batch 4" in result.stdout
    assert "2 threads (1 per process)" in result.stdout
    header = next(line for line in result.stdout.splitlines() if line.startswith("| method"))
    assert [c.strip() for c in header.split("|")[2:4]] == ["processes", "effective_batch"]


def test_eval_throughput_on_the_tiny_model_says_why_vllm_was_not_measured(tmp_path):
    """The HF side on the tiny model; vLLM's side, measured on SmolLM2, is in the README (it starts an engine:
    a minute here), and without a vLLM environment the row says so."""
    out = tmp_path / "eval.json"
    result = bench("eval_throughput.py", "--limit", "2", "--mc-limit", "3", "--batch-size", "2", "--max-gen-toks", "8",
                   "--device", "cpu", "--json", str(out), env={"FORGETBENCH_VLLM_PYTHON": "/nonexistent/bin/python"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {r["backend"]: r for r in report["rows"]}
    hf = rows["hf"]
    assert hf["n_evaluated"] == 2 and hf["gen_rows"] == 2 and hf["batch_size"] == 2
    assert 2 <= hf["gen_tokens"] <= 2 * 8
    # one request per answer choice: ARC-Easy questions have 3 to 5
    assert hf["n_mc"] == 3 and 3 * 3 <= hf["loglik_requests"] <= 3 * 5 and hf["load_s"] > 0
    assert hf["loglik_requests_per_s"] == pytest.approx(hf["loglik_requests"] / hf["loglik_s"])
    why = rows["vllm"]["error"]
    assert why == "vllm: no vLLM environment at /nonexistent/bin/python (run `make install-vllm`)"
    assert report["vllm_over_hf"] == {} and f"vLLM / HF: not measured ({why})" in result.stdout


def write_benchmark(path: Path, seconds: float, cpu: float, rss: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    f"{seconds}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t0\t{cpu}\n")


def test_rule_times_sums_wall_and_cpu_seconds_per_rule(tmp_path):
    write_benchmark(tmp_path / "benchmarks/train/m/sft/lr~1e-05/seed~0.tsv", 40.0, 70.0, 900.0)
    write_benchmark(tmp_path / "benchmarks/train/m/lora/lr~1e-05/seed~0.tsv", 20.0, 30.0, 700.0)
    write_benchmark(tmp_path / "benchmarks/aggregate.tsv", 2.0, 1.5, 200.0)
    table = rule_times(tmp_path)
    assert list(table.index) == ["train", "aggregate", "all rules"]
    assert table.loc["train"].to_dict() == {"jobs": 2, "total_s": 60.0, "mean_s": 30.0, "max_s": 40.0,
                                            "cpu_s": 100.0, "peak_rss_mb": 900.0}
    assert table.loc["all rules"].to_dict() == {"jobs": 3, "total_s": 62.0, "mean_s": 20.7, "max_s": 40.0,
                                                "cpu_s": 101.5, "peak_rss_mb": 900.0}
    with pytest.raises(SystemExit, match="no benchmark files"):
        rule_times(tmp_path / "empty")


def test_dag_scale_counts_the_jobs_it_expects_from_the_config():
    result = bench("dag_scale.py", "--scales", "1", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    scale, cells, jobs, expected = result.stdout.strip().splitlines()[-1].split()[:4]
    # 405 cells (315 trained, 90 post-hoc); 408 evaluated models × (2 families + 1 merge); 5 scaling runs, each
    # trained once and evaluated at 4 checkpoints, and step 0; 3 models prepared, scored and checked (the
    # base_checked checkpoint); 7 tables, plots, all.
    assert (scale, cells, jobs, expected) == ("1×", "405", "1672", "1672")


def test_bootstrap_speed_counts_the_sweep_it_timed():
    result = bench("bootstrap_speed.py", "--models", "1", "--cells", "9", "--tasks", "2", "--items", "30",
                   "--resamples", "100")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "bootstrap: 10 evaluations, 10 method x LR rows, 2 general tasks + domain, domain loss, general text, " \
           "30 items, 100 resamples:" in last_line(result.stdout)
