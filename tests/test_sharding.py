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
                         "max_grad_norm": 1.0, "logging_steps": 1, "dtype": "float32", "resume_every": 0}}
    train_cell(str(tiny_model_dir), str(data / "train.jsonl"), str(out / "model"), str(out / "log.jsonl"),
               str(out / "run.json"), cell, base_losses=str(data / "losses.jsonl"))
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
    weights_file = out / "model" / ("adapter_model.safetensors" if method == "lora" else "model.safetensors")
    return losses, load_file(weights_file)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_accumulated_micro_batches_equal_one_batch(method, tiny_model_dir, data, tmp_path):
    whole_losses, whole = run(method, tiny_model_dir, data, tmp_path / "whole", batch_size=4, grad_accum=1)
    split_losses, split = run(method, tiny_model_dir, data, tmp_path / "split", batch_size=2, grad_accum=2)
    assert split_losses == pytest.approx(whole_losses, rel=LOSS_RTOL)
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
    from forgetbench.training.tokenize import IGNORE_INDEX, encode_dataset

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples, _ = encode_dataset(tokenizer, read_jsonl(data / "train.jsonl"), "cot", 256, True)
    counts = [sum(label != IGNORE_INDEX for label in e["labels"][1:]) for e in examples]
    assert min(counts) < 20 < max(counts)
    losses = torch.rand(len(examples), generator=torch.Generator().manual_seed(0)) + 1  # mean token loss per sample
    sums = losses * torch.tensor(counts, dtype=torch.float32)
    step_mean = float(sums[:4].sum() / sum(counts[:4]))
    mean_of_means = float((sums[:2].sum() / sum(counts[:2]) + sums[2:4].sum() / sum(counts[2:4])) / 2)
    assert abs(step_mean - mean_of_means) > LOSS_RTOL * step_mean
