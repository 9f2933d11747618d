"""Evaluation throughput per backend on the same model and task: samples/s and generated tokens/s for `hf`
(transformers) and, where it is installed and CUDA is present, `vllm`, with the ratio vLLM/HF.

    python benchmarks/eval_throughput.py                      # tiny test model, CPU, a few domain samples
    python benchmarks/eval_throughput.py --random-init benchmarks/gpu_assets/smollm2-135m --device cuda \\
        --limit 128 --batch-size 32 --json out.json

Each backend runs in a fresh process through forgetbench.evaluation.runner.evaluate on the domain task (the
fine-tuning domain's test set, a generation task; `--format cot` generates up to 256 tokens per sample,
`label` up to 16). The runner does not keep the responses, so the benchmark wraps the backend's generate call
(lm-eval's `HFLM._model_generate` / `VLLM._model_generate`) to time it and count the tokens it produced:

    samples/s (end to end)  n_evaluated / the wall time of evaluate() (model load, task building, scoring included)
    samples/s (generation)  n_evaluated / seconds inside the generate calls
    gen tokens/s            tokens generated (up to and including the first EOS of each row) / those seconds
    slot tokens/s           batch rows x decode steps (what a static batch computes, rows past EOS included)

dtype: on CUDA the runner loads the model with dtype "auto", i.e. the dtype its config.json names (float32 for
the workflow's converted models); `--dtype` sets that for `--random-init` models. On CPU it is float32.
A random-init model rarely emits EOS, so its generations run to max_gen_toks: a fixed, comparable workload.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_model_options, build_random_model, check_model_options, run_child  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TESTS = [ROOT / "benchmarks/gpu_assets/medcalc_test.jsonl", ROOT / "results/default/data/medcalc-synth/test.jsonl"]

CHILD = r"""
import json, sys, time
p = json.loads(sys.argv[1])
import torch
torch.set_num_threads(p["threads"])
stats = {"gen_calls": 0, "gen_s": 0.0, "gen_tokens": 0, "gen_rows": 0, "gen_slots": 0}

def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()

if p["backend"] == "hf":
    from lm_eval.models.huggingface import HFLM
    original = HFLM._model_generate

    def timed(self, context, max_length, stop, **kwargs):
        sync(); t = time.perf_counter()
        out = original(self, context, max_length, stop, **kwargs)
        sync(); stats["gen_s"] += time.perf_counter() - t
        new = out[:, context.shape[1]:]
        ends = {i for i in (self.tokenizer.eos_token_id, self.tokenizer.pad_token_id, getattr(self, "eot_token_id", None))
                if i is not None}
        for row in new.tolist():
            stats["gen_tokens"] += next((i + 1 for i, tok in enumerate(row) if tok in ends), len(row))
        stats["gen_rows"] += new.shape[0]; stats["gen_slots"] += new.numel(); stats["gen_calls"] += 1
        stats["model_dtype"] = str(next(self.model.parameters()).dtype).replace("torch.", "")
        return out

    HFLM._model_generate = timed
else:
    from lm_eval.models.vllm_causallms import VLLM
    original = VLLM._model_generate

    def timed(self, *args, **kwargs):
        t = time.perf_counter()
        out = original(self, *args, **kwargs)
        generate = kwargs.get("generate", args[1] if len(args) > 1 else False)
        if generate:
            stats["gen_s"] += time.perf_counter() - t
            lengths = [len(o.outputs[0].token_ids) for o in out]
            stats["gen_tokens"] += sum(lengths); stats["gen_rows"] += len(lengths)
            stats["gen_slots"] += sum(lengths); stats["gen_calls"] += 1
        return out

    VLLM._model_generate = timed

from forgetbench.evaluation.runner import evaluate
started = time.perf_counter()
out = evaluate(p["model"], p["out_json"], {"domain": {"limit": p["limit"], "max_gen_toks": p["max_gen_toks"]}},
               backend=p["backend"], batch_size=p["batch"], seed=0, domain_test_path=p["test"],
               domain_format=p["format"], device=p["device"])
wall = time.perf_counter() - started
s, task = out.get("settings", {}), out.get("settings", {}).get("tasks", {}).get("domain", {})
print(json.dumps({
    **stats, "elapsed_s": round(wall, 2),  # our own clock: the runner's file may not keep its time
    "n_evaluated": task.get("n_evaluated") or p["limit"], "max_gen_toks": task.get("max_gen_toks"),
    "backend": s.get("backend"), "device": s.get("device"), "dtype": str(s.get("dtype")),
    "batch_size": s.get("batch_size"), "chat_template": s.get("chat_template"),
    "score": out.get("metrics", {}).get("domain", {}).get("score"),
    "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
    "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
}))
"""


def vllm_status(device: str) -> str | None:
    """None when vLLM can run here, else why not."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "vllm: not installed"
    if device == "cpu":
        return "vllm: needs CUDA (--device cpu)"
    import torch

    if not torch.cuda.is_available():
        return "vllm: needs CUDA (none visible)"
    return None


def run_backend(backend: str, params: dict, timeout: float, env: dict) -> dict:
    row = {"backend": backend}
    child, error = run_child(backend, CHILD, {**params, "backend": backend}, timeout, env)
    if error:
        return {**row, "error": error}
    n, gen_s = child["n_evaluated"] or 0, child["gen_s"]
    row.update({
        "samples_per_s": n / child["elapsed_s"] if child["elapsed_s"] else float("nan"),
        "samples_per_s_gen": n / gen_s if gen_s else float("nan"),
        "gen_tokens_per_s": child["gen_tokens"] / gen_s if gen_s else float("nan"),
        "slot_tokens_per_s": child["gen_slots"] / gen_s if gen_s else float("nan"),
        "tokens_per_sample": child["gen_tokens"] / child["gen_rows"] if child["gen_rows"] else float("nan"),
        **{k: child.get(k) for k in ("n_evaluated", "elapsed_s", "gen_s", "gen_tokens", "gen_rows", "gen_calls",
                                     "max_gen_toks", "device", "batch_size", "score", "peak_cuda_mb", "device_name",
                                     "chat_template")},
        "dtype": child.get("model_dtype") or child.get("dtype"),  # what the weights were, else the runner's setting
    })
    print(f"{backend}: {n} samples in {child['elapsed_s']} s ({row['samples_per_s']:.2f}/s end to end), "
          f"{row['gen_tokens_per_s']:.0f} generated tok/s in {gen_s:.1f} s of generation", file=sys.stderr, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="with --random-init: the dtype the model is saved in (CUDA loads that; CPU float32)")
    parser.add_argument("--domain-test", help="the domain test JSONL (default: benchmarks/gpu_assets/medcalc_test.jsonl,"
                                              " else results/default/data/medcalc-synth/test.jsonl, else generated)")
    parser.add_argument("--format", choices=["label", "cot"], default="cot",
                        help="domain format: cot generates up to 256 tokens, label up to 16")
    parser.add_argument("--max-gen-toks", type=int, help="override the format's generation length")
    parser.add_argument("--limit", type=int, default=8, help="domain samples evaluated")
    parser.add_argument("--batch-size", type=int, default=8, help="HF batch size (vLLM schedules itself)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--backends", nargs="+", choices=["hf", "vllm"], default=["hf", "vllm"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per backend before it is abandoned")
    parser.add_argument("--json", help="also write the settings and rows here")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    check_model_options(parser, args)
    import pandas as pd
    import torch

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"

    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = args.model
        if args.random_init:
            model = str(build_random_model(args.random_init, workdir / "model", num_layers=args.num_layers,
                                           dtype=args.dtype, overrides=dict(args.set)))
        elif model is None:
            from forgetbench.models.tiny import build_tiny_llama

            model = str(build_tiny_llama(workdir / "tiny"))
        test = args.domain_test or next((str(p) for p in DEFAULT_TESTS if p.exists()), None)
        if test is None:
            from forgetbench.atomic import write_jsonl
            from forgetbench.data.medcalc_synth import generate

            test = str(workdir / "test.jsonl")
            write_jsonl(test, generate(args.limit, seed=1))
        params = {"model": model, "test": test, "format": args.format, "max_gen_toks": args.max_gen_toks,
                  "limit": args.limit, "batch": args.batch_size, "device": device, "threads": args.threads}
        for backend in args.backends:
            why_not = vllm_status(device) if backend == "vllm" else None
            if why_not:
                print(why_not, flush=True)
                notes.append(why_not)
                rows.append({"backend": backend, "error": why_not})
                continue
            rows.append(run_backend(backend, {**params, "out_json": str(workdir / f"{backend}.json")},
                                    args.timeout, env))

    table = pd.DataFrame(rows).set_index("backend")
    ok = table["samples_per_s"].notna() if "samples_per_s" in table else pd.Series(False, index=table.index)
    ratio = {}
    if ok.get("hf", False) and ok.get("vllm", False):
        for col in ("samples_per_s", "samples_per_s_gen", "gen_tokens_per_s"):
            ratio[col] = table.loc["vllm", col] / table.loc["hf", col]
    shown = [c for c in ["samples_per_s", "samples_per_s_gen", "gen_tokens_per_s", "slot_tokens_per_s",
                         "tokens_per_sample", "n_evaluated", "elapsed_s", "gen_s", "dtype", "batch_size",
                         "peak_cuda_mb", "error"] if c in table]
    source = f"random-init {args.random_init}" + (f" ({args.num_layers} layers, saved {args.dtype})"
                                                  if args.num_layers else f" (saved {args.dtype})") \
        if args.random_init else model
    print(f"{args.label + ': ' if args.label else ''}model {source}, domain task ({args.format}, limit {args.limit}), "
          f"device {device}")
    print(table[shown].round(3).to_markdown())
    if ratio:
        print("vLLM / HF: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items()))
    else:
        print("vLLM / HF: not measured (" + ("; ".join(notes) or "a backend failed or was not asked for") + ")")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "label": args.label, "model": source, "settings": vars(args), "device": device,
            "rows": json.loads(table.reset_index().to_json(orient="records")), "vllm_over_hf": ratio,
            "notes": notes,
        }, indent=2))
    if not ok.get("hf", True):
        sys.exit(1)


if __name__ == "__main__":
    main()
