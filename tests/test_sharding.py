"""Every method keeps its meaning however an optimizer step is split: into accumulated micro-batches here (and
over processes, tests below). The loss of a step is normalised by the whole step's count of the method's unit
(response tokens, samples; TALR's softmax runs over the whole step), so a batch of 4 and two accumulated
micro-batches of 2 give the same losses and the same weights.

    .venv/bin/python -m pytest -q tests/test_sharding.py

The records' responses differ in length (5 to 40 tokens), so a mean of micro-batch means (what the trainer
computed before) differs from the token mean of the step.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from forgetbench.atomic import write_jsonl
from forgetbench.data.records import make_record
from forgetbench.methods import get_method
from forgetbench.training.run import train_cell

METHODS = {"sft": {}, "dft": {}, "talr": {}, "l2": {"lam": 1.0}, "flow": {}, "hft": {},
           "lora": {"r": 4, "dropout": 0.0}}
LOSS_RTOL = 1e-4
WEIGHT_ATOL = 1e-5


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_model_dir):
    from forgetbench.analysis.base_scores import score_with_base

    root = tmp_path_factory.mktemp("sharding")
    records = [make_record(f"r{i}", f"What is {i} times {i}?", str(i * i), answer_type="integer",
                           rationale=" ".join(["Multiply the number by itself."] * (1 + 3 * (i % 3))))
               for i in range(8)]
    write_jsonl(root / "train.jsonl", records)
    score_with_base(str(tiny_model_dir), str(root / "train.jsonl"), "cot", 256, "auto", str(root / "losses.jsonl"),
                    str(root / "stats.json"), batch_size=4)
    return root


def run(method: str, tiny_model_dir, data, out, batch_size: int, grad_accum: int):
    cell = {"model": "tiny", "method": method, "hparams": get_method(method).validate_hparams(METHODS[method], "t"),
            "lr": 1e-3, "seed": 0, "domain": {"name": "toy", "format": "cot"}, "chat_template": "auto",
            "training": {"max_steps": 2, "epochs": 1, "batch_size": batch_size, "grad_accum": grad_accum,
                         "max_seq_len": 256, "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0,
                         "max_grad_norm": 1.0, "logging_steps": 1, "precision": "fp32", "resume_every": 0}}
    train_cell(str(tiny_model_dir), str(data / "train.jsonl"), str(out / "model"), str(out / "log.jsonl"),
               str(out / "run.json"), cell, base_losses=str(data / "losses.jsonl"))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    weights_file = out / "model" / ("adapter_model.safetensors" if method == "lora" else "model.safetensors")
    # the gradient norm too: Adam's update barely changes when every gradient is scaled alike
    return [(r["loss"], r["grad_norm"]) for r in log], load_file(weights_file)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_accumulated_micro_batches_equal_one_batch(method, tiny_model_dir, data, tmp_path):
    whole_losses, whole = run(method, tiny_model_dir, data, tmp_path / "whole", batch_size=4, grad_accum=1)
    split_losses, split = run(method, tiny_model_dir, data, tmp_path / "split", batch_size=2, grad_accum=2)
    assert [x for pair in split_losses for x in pair] == pytest.approx([x for pair in whole_losses for x in pair],
                                                                       rel=LOSS_RTOL)
    assert sorted(split) == sorted(whole)
    worst = max(float((split[k] - whole[k]).abs().max()) for k in whole)
    assert worst <= WEIGHT_ATOL, worst
    # the steps moved the weights, so equal weights are not the base model's twice
    base = load_file(tiny_model_dir / "model.safetensors")
    if method != "lora":
        assert max(float((whole[k] - base[k]).abs().max()) for k in whole) > 1e-3


def test_micro_batch_means_would_differ_from_the_step_token_mean(data, tiny_model_dir):
    """The data makes the test above able to fail: per-micro-batch token means averaged are not the step's."""
    from transformers import AutoTokenizer

    from forgetbench.data.records import read_jsonl
    from forgetbench.training.tokenize import IGNORE_INDEX, encode_records

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = encode_records(tokenizer, read_jsonl(data / "train.jsonl"), "cot", 256, True).examples
    counts = [sum(label != IGNORE_INDEX for label in e["labels"][1:]) for e in examples]
    assert min(counts) < 20 < max(counts)
    losses = torch.rand(len(examples), generator=torch.Generator().manual_seed(0)) + 1  # mean token loss per sample
    sums = losses * torch.tensor(counts, dtype=torch.float32)
    step_mean = float(sums[:4].sum() / sum(counts[:4]))
    mean_of_means = float((sums[:2].sum() / sum(counts[:2]) + sums[2:4].sum() / sum(counts[2:4])) / 2)
    assert abs(step_mean - mean_of_means) > LOSS_RTOL * step_mean


# --- several processes (torchrun, gloo on the CPU: the stand-in for GPUs) -------------------------------------

PROCESS_METHODS = ["sft", "lora", "l2", "talr", "flow", "hft"]


def run_processes(method: str, tiny_model_dir, data, out, processes: int, batch_size: int, strategy="auto",
                  max_steps: int = 2):
    from forgetbench.training.launch import run as launch

    cell = {"model": "tiny", "method": method, "hparams": get_method(method).validate_hparams(METHODS[method], "t"),
            "lr": 1e-3, "seed": 0, "domain": {"name": "toy", "format": "cot"}, "chat_template": "auto",
            "training": {"max_steps": max_steps, "epochs": 1, "batch_size": batch_size, "grad_accum": 1,
                         "max_seq_len": 256, "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0,
                         "max_grad_norm": 1.0, "logging_steps": 1, "precision": "fp32", "resume_every": 0,
                         "strategy": strategy}}
    launch(dict(base_model=str(tiny_model_dir), train_jsonl=str(data / "train.jsonl"), out_model=str(out / "model"),
                out_log=str(out / "log.jsonl"), out_run=str(out / "run.json"), cell=cell,
                base_losses=str(data / "losses.jsonl")), processes, 2)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    weights_file = out / "model" / ("adapter_model.safetensors" if method == "lora" else "model.safetensors")
    return log, load_file(weights_file), json.loads((out / "run.json").read_text())


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_two_processes_equal_one_with_the_same_effective_batch(method, tiny_model_dir, data, tmp_path):
    one_log, one, one_run = run_processes(method, tiny_model_dir, data, tmp_path / "one", 1, batch_size=4)
    two_log, two, two_run = run_processes(method, tiny_model_dir, data, tmp_path / "two", 2, batch_size=2)
    assert [r["loss"] for r in two_log] == pytest.approx([r["loss"] for r in one_log], rel=LOSS_RTOL)
    # the gradient norm too: Adam's update barely changes when every gradient is scaled alike
    assert [r["grad_norm"] for r in two_log] == pytest.approx([r["grad_norm"] for r in one_log], rel=LOSS_RTOL)
    # every process's tokens are counted: the same tokens as one process saw
    assert [r["tokens"] for r in two_log] == [r["tokens"] for r in one_log]
    assert sorted(two) == sorted(one)
    worst = max(float((two[k] - one[k]).abs().max()) for k in one)
    assert worst <= WEIGHT_ATOL, worst
    assert (two_run["processes"], two_run["effective_batch"], two_run["strategy"]) == (2, 4, "ddp")
    assert two_run["distributed_type"] == "MULTI_CPU" and one_run["strategy"] == "none"
    assert two_run["tokens_seen"] == one_run["tokens_seen"]


def test_fsdp_without_gpus_is_refused_not_silently_replicated(tiny_model_dir, data, tmp_path):
    with pytest.raises(RuntimeError, match="under torchrun .2 processes. failed"):
        run_processes("sft", tiny_model_dir, data, tmp_path / "fsdp", 2, batch_size=2, strategy="fsdp")
    assert not (tmp_path / "fsdp" / "run.json").exists()


def test_l2_reference_is_sharded_like_the_model_under_fsdp(tiny_model_dir, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import REPO

    probe = str(REPO / "tests" / "l2_fsdp_probe.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, launcher in (("one", []), ("two", ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"])):
        done = subprocess.run([sys.executable, *launcher, probe, str(tiny_model_dir), str(tmp_path / f"{name}.json")],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert (one["sharded"], two["sharded"], two["reference_type"]) == (False, True, "DTensor")
    assert one["penalties"][0] == two["penalties"][0] == 0.0
    assert two["penalties"][1] == pytest.approx(one["penalties"][1], rel=1e-4) and one["penalties"][1] > 0
    assert two["grads"] == pytest.approx(one["grads"], rel=1e-5)


def test_a_job_that_asked_for_gpus_and_sees_fewer_fails_in_one_line(monkeypatch):
    from forgetbench.devices import check_visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(RuntimeError, match=r"^rule train \(x/run.json\): asked for 2 GPUs but sees 0 "
                                           r"\(CUDA_VISIBLE_DEVICES=\); not falling back to the CPU$"):
        check_visible_gpus(2, "rule train (x/run.json)")
    with pytest.raises(RuntimeError, match="asked for 4 GPUs but sees 2"):
        check_visible_gpus(4, "rule train", visible=2)
    check_visible_gpus(2, "rule train", visible=2)
    check_visible_gpus(0, "rule train")  # a CPU job asks for none


CRASH_AFTER_STEP_2 = '''
# Loaded at start-up by every process of the killed run (PYTHONPATH): each one dies hard right after the
# checkpoint of step 2 is complete, as a preempted node would.
import os

from forgetbench.training.trainer import ProgressLog

_original = ProgressLog.on_save


def _crash(self, args, state, control, **kwargs):
    _original(self, args, state, control, **kwargs)
    if state.global_step == 2:
        os._exit(9)


ProgressLog.on_save = _crash
'''


def test_a_killed_two_process_run_resumes_and_ends_as_an_uninterrupted_one(tiny_model_dir, data, tmp_path):
    import os
    import subprocess
    import sys

    def launch(name: str, extra_path: str | None = None):
        out = tmp_path / name
        cell = {"model": "tiny", "method": "sft", "hparams": {}, "lr": 1e-3, "seed": 0,
                "domain": {"name": "toy", "format": "cot"}, "chat_template": "auto",
                "training": {"max_steps": 4, "epochs": 1, "batch_size": 2, "grad_accum": 1, "max_seq_len": 256,
                             "lr_scheduler": "cosine", "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0,
                             "logging_steps": 1, "precision": "fp32", "resume_every": 1, "strategy": "auto"}}
        spec = dict(base_model=str(tiny_model_dir), train_jsonl=str(data / "train.jsonl"), out_model=str(out / "model"),
                    out_log=str(out / "log.jsonl"), out_run=str(out / "run.json"), cell=cell)
        code = ("import json, sys; from forgetbench.training.launch import run; "
                "run(json.loads(sys.argv[1]), 2, 2)")
        path = os.pathsep.join(filter(None, [extra_path, os.environ.get("PYTHONPATH")]))
        return out, subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True,
                                   env={**os.environ, "PYTHONPATH": path}, timeout=600)

    straight, done = launch("straight")
    assert done.returncode == 0, done.stderr[-3000:]
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASH_AFTER_STEP_2)
    killed, done = launch("killed", str(hook))
    assert done.returncode != 0 and not (killed / "run.json").exists()
    assert [p.name for p in (killed / "resume").glob("checkpoint-*")] == ["checkpoint-2"]
    resumed, done = launch("killed")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stdout + done.stderr

    log, reference = ([json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()] for d in (resumed, straight))
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in reference], rel=LOSS_RTOL)
    assert [r["tokens"] for r in log] == [r["tokens"] for r in reference]
    a, b = (load_file(d / "model" / "model.safetensors") for d in (resumed, straight))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= WEIGHT_ATOL
    assert not (resumed / "resume").exists()


@pytest.mark.parametrize("method", ["sft", "lora"])
def test_gradient_checkpointing_changes_nothing_but_memory(method, tiny_model_dir, data, tmp_path):
    from forgetbench.training.run import train_cell

    results = {}
    for checkpointing in (False, True):
        out = tmp_path / str(checkpointing)
        cell = {"model": "tiny", "method": method, "hparams": get_method(method).validate_hparams(METHODS[method], "t"),
                "lr": 1e-3, "seed": 0, "domain": {"name": "toy", "format": "cot"}, "chat_template": "auto",
                "training": {"max_steps": 2, "epochs": 1, "batch_size": 4, "grad_accum": 1, "max_seq_len": 256,
                             "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0,
                             "logging_steps": 1, "precision": "fp32", "resume_every": 0,
                             "gradient_checkpointing": checkpointing}}
        train_cell(str(tiny_model_dir), str(data / "train.jsonl"), str(out / "model"), str(out / "log.jsonl"),
                   str(out / "run.json"), cell)
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        name = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
        assert json.loads((out / "run.json").read_text())["gradient_checkpointing"] is checkpointing
        results[checkpointing] = ([(r["loss"], r["grad_norm"]) for r in log], load_file(out / "model" / name))
    (plain_log, plain), (ckpt_log, ckpt) = results[False], results[True]
    assert [x for p in ckpt_log for x in p] == pytest.approx([x for p in plain_log for x in p], rel=LOSS_RTOL)
    assert ckpt_log[0][1] > 0  # gradients reached the trainable weights through the recomputed blocks
    assert max(float((ckpt[k] - plain[k]).abs().max()) for k in plain) <= WEIGHT_ATOL


def test_several_nodes_start_one_torchrun_per_node_with_srun_and_a_rendezvous():
    import sys

    from forgetbench.training.launch import torchrun_command

    assert torchrun_command(4) == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4",
                                   "-m", "forgetbench.training.launch"]
    assert torchrun_command(8, nodes=2, head="gpu-a17", job_id="4242") == [
        "srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
        sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=8", "--rdzv-backend=c10d",
        "--rdzv-endpoint=gpu-a17:29500", "--rdzv-id=4242", "-m", "forgetbench.training.launch"]


def test_a_multi_node_job_outside_such_an_allocation_fails_in_one_line(monkeypatch):
    from forgetbench.training.launch import run

    for var in ("SLURM_JOB_NUM_NODES", "SLURM_NNODES"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match=r"^rule train \(x\): the model trains on 2 nodes but the job runs on no SLURM "
                                           r"allocation \(not under SLURM\); submit it with the slurm profile "
                                           r"\(resources nodes=2\)$"):
        run({"out_run": "unused"}, 2, 2, gpus=0, job="rule train (x)", nodes=2)
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "1")
    with pytest.raises(RuntimeError, match=r"runs on 1 \(SLURM_JOB_NUM_NODES=1\)"):
        run({"out_run": "unused"}, 2, 2, gpus=0, job="rule train (x)", nodes=2)
