"""Training throughput of every trained method on the same model, data and batch: tokens/s and peak memory, as a
ratio to plain SFT measured in the same run (one process per method, so peak memory is per method).

    python benchmarks/train_throughput.py                       # the tiny test model, 2 threads
    python benchmarks/train_throughput.py --model results/default/smollm2-135m/base/model --steps 6
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

METHODS = ["sft", "lora", "l2", "talr", "dft", "flow", "hft"]


def run_one(model: str, method: str, steps: int, batch: int, seq: int, threads: int, workdir: Path) -> dict:
    """Train `method` in a fresh process; tokens/s from its training log (steady state: steps after the first)."""
    code = f"""
import json, resource, torch
torch.set_num_threads({threads})
from forgetbench.analysis.base_scores import score_with_base
from forgetbench.atomic import write_jsonl
from forgetbench.data.medcalc_synth import generate
from forgetbench.methods import get_method
from forgetbench.training.run import train_cell
w = "{workdir}"
write_jsonl(w + "/train.jsonl", generate({batch * steps}, seed=0))
if "{method}" == "flow":
    score_with_base("{model}", w + "/train.jsonl", "label", {seq}, "auto", w + "/losses.jsonl", w + "/stats.json")
cell = {{"model": "m", "method": "{method}", "hparams": get_method("{method}").validate_hparams({{}}, "bench"),
        "lr": 1e-5, "seed": 0, "domain": {{"name": "d", "format": "label"}}, "chat_template": "auto",
        "training": {{"max_steps": {steps}, "epochs": 1, "batch_size": {batch}, "grad_accum": 1, "max_seq_len": {seq},
                     "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0,
                     "logging_steps": 1, "dtype": "float32"}}}}
train_cell("{model}", w + "/train.jsonl", w + "/{method}/model", w + "/{method}/log.jsonl", w + "/{method}/run.json",
           cell, base_losses=w + "/losses.jsonl")
print(json.dumps({{"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    log = [json.loads(line) for line in (workdir / method / "log.jsonl").read_text().splitlines()]
    steady = log[1:] or log
    tokens = steady[-1]["tokens"] - (log[0]["tokens"] if len(log) > 1 else 0)
    seconds = steady[-1]["elapsed_s"] - (log[0]["elapsed_s"] if len(log) > 1 else 0)
    return {"method": method, "tokens_per_s": tokens / seconds, "s_per_step": seconds / len(steady), "peak_rss_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an HF model directory (default: build the tiny test model)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    args = parser.parse_args()
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = args.model
        if model is None:
            from forgetbench.models.tiny import build_tiny_llama

            model = str(build_tiny_llama(workdir / "tiny"))
        rows = [run_one(model, m, args.steps, args.batch, args.seq, args.threads, workdir) for m in args.methods]
    table = pd.DataFrame(rows).set_index("method")
    sft = table.loc["sft"] if "sft" in table.index else None
    if sft is not None:
        table["throughput_vs_sft"] = table["tokens_per_s"] / sft["tokens_per_s"]
        table["memory_vs_sft"] = table["peak_rss_mb"] / sft["peak_rss_mb"]
    print(f"model {model}, {args.steps} steps of batch {args.batch} x <= {args.seq} tokens, {args.threads} threads")
    print(table.round(3).to_markdown())


if __name__ == "__main__":
    main()
