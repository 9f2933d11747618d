"""Evaluation throughput per backend on the same model and tasks: generated tokens/s, log-likelihood
requests/s and samples/s end to end for `hf` (transformers) and `vllm` (in the vLLM environment: its CPU
build here, upstream vLLM on a GPU), with the ratio vLLM/HF with and without the engine's start-up.

    python benchmarks/eval_throughput.py                      # tiny test model, CPU, a few samples
    python benchmarks/eval_throughput.py --model results/default/smollm2-135m/base/model --limit 16 --mc-limit 32
    python benchmarks/eval_throughput.py --random-init benchmarks/gpu_assets/smollm2-135m --device cuda \\
        --limit 128 --batch-size 32 --json out.json

Each backend runs in a fresh process (vLLM's in the vLLM environment's python, `make install-vllm`) through
forgetbench.evaluation.runner.evaluate on two tasks: the domain test set (generation; `--format cot`
generates up to 256 tokens per sample, `label` up to 16) and ARC-Easy (multiple choice: one log-likelihood
request per choice). The benchmark wraps the backend's calls to time them:

    gen tokens/s            tokens generated (up to and including the first EOS of each row) / seconds inside
                            the generate calls (lm-eval's `HFLM._model_generate` / `VLLM._model_generate`)
    loglik requests/s       log-likelihood requests / seconds inside `loglikelihood`
    load s                  the model load: transformers' from_pretrained, or vLLM's engine start (its
                            process start, weights, KV cache, warm-up); `import vllm` comes on top
    samples/s (end to end)  samples of both tasks / the wall time of evaluate() (load, task building, scoring)

"Equal batch": vLLM's `max_num_seqs` is set to `--batch-size`, the HF batch (`--vllm-batch auto` lets vLLM
schedule as many sequences as its KV cache holds). dtype: on CUDA the runner loads the dtype config.json names
(`--dtype` sets that for `--random-init` models); on a CPU both backends run float32. A random-init model
rarely emits EOS, so its generations run to max_gen_toks: a fixed, comparable workload.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
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
stats = {"gen_calls": 0, "gen_s": 0.0, "gen_tokens": 0, "gen_rows": 0, "gen_slots": 0, "loglik_requests": 0,
         "loglik_s": 0.0, "load_s": 0.0}

def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()

import forgetbench.evaluation.runner as runner

if p["backend"] == "hf":
    from lm_eval.models.huggingface import HFLM as LMClass
    original = LMClass._model_generate
    loader = "_hf_model"

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
else:
    from lm_eval.models.vllm_causallms import VLLM as LMClass
    original = LMClass._model_generate
    loader = "_vllm_model"

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

LMClass._model_generate = timed
original_loglik = LMClass.loglikelihood

def timed_loglik(self, requests, *args, **kwargs):
    sync(); t = time.perf_counter()
    out = original_loglik(self, requests, *args, **kwargs)
    sync(); stats["loglik_s"] += time.perf_counter() - t
    stats["loglik_requests"] += len(requests)
    return out

LMClass.loglikelihood = timed_loglik
original_loader = getattr(runner, loader)

def timed_loader(*args, **kwargs):
    t = time.perf_counter()
    out = original_loader(*args, **kwargs)
    stats["load_s"] += time.perf_counter() - t
    return out

setattr(runner, loader, timed_loader)
tasks = {"domain": {"limit": p["limit"], "max_gen_toks": p["max_gen_toks"]}}
if p["mc_limit"]:
    tasks["arc_easy"] = {"limit": p["mc_limit"]}

def main():
    started = time.perf_counter()
    out = runner.evaluate(p["model"], p["out_json"], tasks, backend=p["backend"], batch_size=p["batch"], seed=0,
                          domain_test_path=p["test"], domain_format=p["format"], device=p["device"],
                          vllm={"max_num_seqs": p["vllm_batch"]})
    wall = time.perf_counter() - started
    s = out.get("settings", {})
    n = {name: t.get("n_evaluated") for name, t in s.get("tasks", {}).items()}
    print(json.dumps({
        **stats, "elapsed_s": round(wall, 2),  # our own clock: the runner's file may not keep its time
        "n_evaluated": n.get("domain") or p["limit"], "n_mc": n.get("arc_easy") or 0,
        "max_gen_toks": s.get("tasks", {}).get("domain", {}).get("max_gen_toks"),
        "backend": s.get("backend"), "device": s.get("device"), "dtype": str(s.get("dtype")),
        "batch_size": p["batch"] if s.get("backend") == "hf" else (p["vllm_batch"] or "auto"),
        "chat_template": s.get("chat_template"),
        "score": out.get("metrics", {}).get("domain", {}).get("score"),
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }))

if __name__ == "__main__":  # vLLM's engine starts processes that re-import the main module
    main()
"""


def vllm_interpreter() -> tuple[str | None, str | None]:
    """(the python that has vLLM, None), or (None, why there is none): this one (a CUDA env with vLLM), else
    the vLLM environment's (forgetbench.evaluation.vllm_env)."""
    import importlib.util

    from forgetbench.evaluation.vllm_env import INSTALL_COMMAND, installed_vllm_version, vllm_python

    if importlib.util.find_spec("vllm") is not None:
        return sys.executable, None
    python = vllm_python()
    if not python.exists() or installed_vllm_version(str(python)) is None:
        return None, f"vllm: no vLLM environment at {python} (run `{INSTALL_COMMAND}`)"
    return str(python), None


def run_backend(backend: str, params: dict, timeout: float, env: dict, python: str | None = None) -> dict:
    row = {"backend": backend}
    child, error = run_child(backend, CHILD, {**params, "backend": backend}, timeout, env, python)
    if error:
        return {**row, "error": error}
    n, gen_s, loglik_s = child["n_evaluated"] or 0, child["gen_s"], child["loglik_s"]
    row.update({
        "samples_per_s": (n + child["n_mc"]) / child["elapsed_s"] if child["elapsed_s"] else float("nan"),
        "gen_tokens_per_s": child["gen_tokens"] / gen_s if gen_s else float("nan"),
        "loglik_requests_per_s": child["loglik_requests"] / loglik_s if loglik_s else float("nan"),
        "slot_tokens_per_s": child["gen_slots"] / gen_s if gen_s else float("nan"),
        "tokens_per_sample": child["gen_tokens"] / child["gen_rows"] if child["gen_rows"] else float("nan"),
        **{k: child.get(k) for k in ("n_evaluated", "n_mc", "elapsed_s", "load_s", "gen_s", "loglik_s", "gen_tokens",
                                     "gen_rows", "gen_calls", "loglik_requests", "max_gen_toks", "device",
                                     "batch_size", "score", "peak_cuda_mb", "device_name", "chat_template")},
        "dtype": child.get("model_dtype") or child.get("dtype"),  # what the weights were, else the runner's setting
    })
    print(f"{backend}: {n} + {child['n_mc']} samples in {child['elapsed_s']} s (load {child['load_s']:.1f} s), "
          f"{row['gen_tokens_per_s']:.0f} generated tok/s, {row['loglik_requests_per_s']:.1f} log-likelihood "
          f"requests/s", file=sys.stderr, flush=True)
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
    parser.add_argument("--limit", type=int, default=8, help="domain samples evaluated (generation)")
    parser.add_argument("--mc-limit", type=int, default=8, help="ARC-Easy questions evaluated (log-likelihood); 0: none")
    parser.add_argument("--batch-size", type=int, default=8, help="HF batch size, and vLLM's max_num_seqs")
    parser.add_argument("--vllm-batch", choices=["equal", "auto"], default="equal",
                        help="equal: vLLM batches at most --batch-size sequences; auto: as many as it schedules")
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
                  "limit": args.limit, "mc_limit": args.mc_limit, "batch": args.batch_size, "device": device,
                  "threads": args.threads, "vllm_batch": args.batch_size if args.vllm_batch == "equal" else None}
        for backend in args.backends:
            python, child_env = None, env
            if backend == "vllm":
                from forgetbench.evaluation.vllm_env import process_env

                python, why_not = vllm_interpreter()
                if why_not:
                    print(why_not, flush=True)
                    notes.append(why_not)
                    rows.append({"backend": backend, "error": why_not})
                    continue
                child_env = {**env, **process_env(args.threads, cpu=device == "cpu")}
            rows.append(run_backend(backend, {**params, "out_json": str(workdir / f"{backend}.json")},
                                    args.timeout, child_env, python))

    table = pd.DataFrame(rows).set_index("backend")
    ok = table["samples_per_s"].notna() if "samples_per_s" in table else pd.Series(False, index=table.index)
    ratio = {}
    if ok.get("hf", False) and ok.get("vllm", False):
        # without start-up: inside the generate and log-likelihood calls; with it: the whole evaluation
        for col in ("gen_tokens_per_s", "loglik_requests_per_s", "samples_per_s"):
            ratio[col] = table.loc["vllm", col] / table.loc["hf", col]
    shown = [c for c in ["gen_tokens_per_s", "loglik_requests_per_s", "samples_per_s", "load_s", "elapsed_s",
                         "gen_s", "loglik_s", "tokens_per_sample", "n_evaluated", "n_mc", "dtype", "batch_size",
                         "peak_cuda_mb", "error"] if c in table]
    source = f"random-init {args.random_init}" + (f" ({args.num_layers} layers, saved {args.dtype})"
                                                  if args.num_layers else f" (saved {args.dtype})") \
        if args.random_init else model
    print(f"{args.label + ': ' if args.label else ''}model {source}, domain task ({args.format}, limit {args.limit}) and "
          f"ARC-Easy (limit {args.mc_limit}), device {device}, {args.threads} threads")
    print(table[shown].round(3).to_markdown())
    if ratio:
        print("vLLM / HF: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items())
              + " (the first two without start-up, samples_per_s with it)")
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
