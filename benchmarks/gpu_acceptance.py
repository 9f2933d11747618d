"""The GPU acceptance checks behind `benchmarks/gpu_acceptance.sh`: what has run only on CPUs, run once on a GPU,
every figure into one JSON file. Each section fails or skips on its own (its status and the error's last line are
recorded) without stopping the rest.

    python benchmarks/gpu_acceptance.py --device cuda --json out/acceptance.json
    python benchmarks/gpu_acceptance.py --device cpu --quick --json /tmp/acceptance.json   # the CPU-runnable parts

Sections (keys of the JSON's "sections"):
  fsdp_vs_plain  one process under FSDP2 (the Trainer's path: wrapping, sharded state-dict saving) against a
                 plain run, fp32 sft: per-step losses equal to 1e-4 (relative). GPU only: accelerate brings FSDP up
                 only on GPU-like devices (tests/test_fsdp_cpu.py lifts that gate on CPUs, in the tests alone).
                 The workflow calls one process "none" (forgetbench.training.sharding); this child asks for fsdp.
  memory         the memory check's estimate (forgetbench.training.memory) against the measured peak, sft, lora
                 and l2 in bf16-mixed and bf16 at two model sizes: on a GPU torch.cuda.max_memory_allocated
                 against the estimate less its CUDA-context allowance, on a CPU the peak RSS against the whole
                 estimate; each run in a fresh process.
  score_base     θ₀'s per-sample losses on the device against the CPU's (forgetbench.analysis.base_scores).
  hf_eval        evaluate() with transformers on the device (domain and domain_loss): scores and seconds, and the
                 domain loss against the CPU's.
  vllm           the same tasks with vLLM where it imports (this interpreter, else the vLLM environment's), on
                 the device: its scores against transformers'.

Models have random weights, built from a config.json and tokenizer (`--model-src`, default
benchmarks/gpu_assets/smollm2-135m as gpu_suite.sh carries it, else the tiny test model); the records are
generated here. No network, no package index.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_common import build_random_model, run_child  # noqa: E402

ASSET = REPO / "benchmarks/gpu_assets/smollm2-135m"
# SmolLM2-360M's shape over SmolLM2-135M's files: the second size of the memory check (2.7x the parameters)
LARGER = {"hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32, "num_attention_heads": 15,
          "num_key_value_heads": 5}
METHODS, PRECISIONS = ("sft", "lora", "l2"), ("bf16-mixed", "bf16")
LOSS_RTOL, SCORE_RTOL = 1e-4, 1e-4

TRAIN_CHILD = r"""
import json, os, resource, sys
p = json.loads(sys.argv[1])
import torch
torch.set_num_threads(p["threads"])
import forgetbench.training.run as run
if p["fsdp"]:  # one process under FSDP2: the workflow would call it "none"
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(p["port"]))
    run.sharding_strategy = lambda *args: "fsdp"
cell = {"model": "m", "method": p["method"], "hparams": p["hparams"], "lr": 1e-4, "seed": 0,
        "domain": {"name": "d", "format": "cot"}, "chat_template": "auto",
        "training": {"max_steps": p["steps"], "epochs": 1, "batch_size": p["batch"], "grad_accum": 1,
                     "max_seq_len": p["seq"], "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0,
                     "max_grad_norm": 1.0, "logging_steps": 1, "precision": p["precision"], "resume_every": 0,
                     "max_truncated_share": 1.0}}
w = p["workdir"]
summary = run.train_cell(p["model"], p["train"], w + "/model", w + "/log.jsonl", w + "/run.json", cell)
cuda = torch.cuda.is_available()
peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
losses = [r["loss"] for r in map(json.loads, open(w + "/log.jsonl")) if "loss" in r]
print(json.dumps({"peak_mb": peak / 2**20, "losses": losses, "strategy": json.load(open(w + "/run.json")).get("strategy")}))
"""


def records(n: int, long: bool) -> list[dict]:
    """Arithmetic questions in cot format; `long`: a short note before each and a rationale long enough that the
    encoded examples fill the sequence length (the memory estimate takes every sequence at full length)."""
    from forgetbench.data.records import make_record

    filler = " ".join(f"value {i} is {i * 7 % 13}." for i in range(300))
    return [make_record(f"r{i}", f"Note {i}: {filler[:120] if long else ''} What is {i} times {i}?", str(i * i),
                        rationale=filler if long else f"{i} times {i} is {i * i}.", answer_type="integer")
            for i in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(args, work: Path, model: Path, data: Path, method: str, precision: str, fsdp: bool = False) -> dict:
    from forgetbench.methods import get_method

    hparams = get_method(method).validate_hparams({}, method)
    work.mkdir(parents=True, exist_ok=True)
    params = {"method": method, "hparams": hparams, "precision": precision, "fsdp": fsdp, "port": free_port(),
              "steps": args.steps, "batch": args.batch, "seq": args.seq, "threads": args.threads,
              "model": str(model), "train": str(data), "workdir": str(work)}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")])}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the Trainer takes any GPU it sees
    result, error = run_child(f"train {method} {precision}{' fsdp' if fsdp else ''}", TRAIN_CHILD, params,
                              args.child_timeout, env)
    if error:
        raise RuntimeError(error)
    return result


def fsdp_vs_plain(args, ctx) -> dict:
    if args.device != "cuda":
        return {"status": "skipped", "reason": "FSDP needs a GPU (accelerate's gate); tests/test_fsdp_cpu.py runs "
                                               "it on 2 CPU processes"}
    plain = train(args, ctx["tmp"] / "plain", ctx["small"], ctx["data"], "sft", "fp32")
    fsdp = train(args, ctx["tmp"] / "fsdp", ctx["small"], ctx["data"], "sft", "fp32", fsdp=True)
    worst = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(plain["losses"], fsdp["losses"]))
    equal = fsdp["strategy"] == "fsdp" and len(plain["losses"]) == len(fsdp["losses"]) and worst <= LOSS_RTOL
    return {"status": "ok" if equal else "failed", "plain_losses": plain["losses"], "fsdp_losses": fsdp["losses"],
            "max_rel_diff": worst, "fsdp_strategy": fsdp["strategy"], "equal": equal}


def estimate_mb(model: Path, method: str, precision: str, args) -> float:
    from forgetbench.methods import get_method
    from forgetbench.training.memory import GPU_RUNTIME_BYTES, ModelShape, TrainingSetup, estimate_training_memory

    shape = ModelShape.from_config(json.loads((model / "config.json").read_text()))
    on_gpu = args.device == "cuda"
    setup = TrainingSetup(precision=precision, batch_size=args.batch, seq_len=args.seq, on_gpu=on_gpu)
    cls = get_method(method)
    total = estimate_training_memory(shape, cls(**cls.validate_hparams({}, method)), setup).total
    return (total - (GPU_RUNTIME_BYTES if on_gpu else 0)) / 2**20


def memory(args, ctx) -> dict:
    rows = []
    for size, model in ctx["sizes"].items():
        for method in args.methods:
            for precision in args.precisions:
                measured = train(args, ctx["tmp"] / f"mem-{size}-{method}-{precision}", model, ctx["data"], method,
                                 precision)["peak_mb"]
                estimate = estimate_mb(model, method, precision, args)
                rows.append({"size": size, "method": method, "precision": precision, "measured_mb": round(measured),
                             "estimate_mb": round(estimate), "error": estimate / measured - 1})
    return {"status": "ok", "batch": args.batch, "seq": args.seq, "rows": rows,
            "worst_error": max((abs(r["error"]) for r in rows), default=None)}


def score_base(args, ctx) -> dict:
    from forgetbench.analysis.base_scores import score_with_base

    runs = {}
    for device in dict.fromkeys(["cpu", "cuda" if args.device == "cuda" else "cpu"]):
        out, start = ctx["tmp"] / f"score-{device}", time.time()
        out.mkdir(exist_ok=True)
        score_with_base(str(ctx["small"]), str(ctx["data"]), "cot", args.seq, "auto", str(out / "losses.jsonl"),
                        str(out / "stats.json"), batch_size=args.batch, max_truncated_share=1.0, device=device)
        rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
        runs[device] = {"losses": [r["mean_loss"] for r in rows], "seconds": round(time.time() - start, 2)}
    cpu, dev = runs["cpu"]["losses"], runs[args.device]["losses"]
    worst = max(abs(a - b) / abs(a) for a, b in zip(cpu, dev))
    return {"status": "ok" if worst <= SCORE_RTOL else "failed", "device": args.device, "samples": len(dev),
            "max_rel_diff": worst, "seconds": {d: r["seconds"] for d, r in runs.items()}}


EVAL_TASKS = {"domain": {"limit": 8, "max_gen_toks": 16}, "domain_loss": {"limit": 8}}


def evaluate_on(ctx, device: str, backend: str, out: Path) -> dict:
    from forgetbench.evaluation.job import run

    kwargs = dict(model_dir=str(ctx["small"]), out_json=str(out), tasks=EVAL_TASKS, backend=backend, batch_size=8,
                  seed=1234, domain_test_path=str(ctx["test"]), domain_format="cot", dtype="float32")
    start = time.time()
    run({"kwargs": kwargs, "extra": {}, "provenance": {"acceptance": backend}}, backend, 2,
        1 if device == "cuda" else 0, job=f"gpu_acceptance {backend}")
    result = json.loads(out.read_text())
    return {"scores": {t: m["score"] for t, m in result["metrics"].items()}, "device": result["settings"]["device"],
            "seconds": round(time.time() - start, 1)}


def hf_eval(args, ctx) -> dict:
    runs = {device: evaluate_on(ctx, device, "hf", ctx["tmp"] / f"hf-{device}.json")
            for device in dict.fromkeys(["cpu", args.device])}
    cpu, dev = runs["cpu"]["scores"]["domain_loss"], runs[args.device]["scores"]["domain_loss"]
    diff = abs(cpu - dev) / abs(cpu)
    return {"status": "ok" if diff <= SCORE_RTOL else "failed", "runs": runs, "domain_loss_rel_diff": diff}


def vllm(args, ctx) -> dict:
    from forgetbench.evaluation.vllm_env import vllm_python

    if importlib.util.find_spec("vllm") is None and not vllm_python().exists():
        return {"status": "skipped", "reason": f"vllm does not import here (no vllm package, no {vllm_python()})"}
    run = evaluate_on(ctx, args.device, "vllm", ctx["tmp"] / "vllm.json")
    hf = evaluate_on(ctx, args.device, "hf", ctx["tmp"] / "hf-for-vllm.json")
    diff = abs(run["scores"]["domain_loss"] - hf["scores"]["domain_loss"]) / abs(hf["scores"]["domain_loss"])
    return {"status": "ok", "run": run, "hf_scores": hf["scores"], "domain_loss_rel_diff_vs_hf": diff}


SECTIONS = {"fsdp_vs_plain": fsdp_vs_plain, "memory": memory, "score_base": score_base, "hf_eval": hf_eval,
            "vllm": vllm}


def run_section(name: str, args, ctx) -> dict:
    start = time.time()
    print(f"== {name}", flush=True)
    try:
        result = SECTIONS[name](args, ctx)
    except Exception as exc:  # a failed section is a finding; the next still runs
        traceback.print_exc()
        last = (str(exc).strip().splitlines() or [""])[-1]
        result = {"status": "failed", "error": f"{type(exc).__name__}: {last}"[:500]}
    result["seconds"] = round(time.time() - start, 1)
    print(f"== {name}: {result['status']} ({result['seconds']} s)", flush=True)
    return result


def context(args, tmp: Path) -> dict:
    """The models (random weights, two sizes) and the generated train and test records."""
    from forgetbench.atomic import write_jsonl

    src = Path(args.model_src) if args.model_src else ASSET if (ASSET / "config.json").is_file() else None
    if src is None:
        from forgetbench.models.tiny import build_tiny_llama

        src = build_tiny_llama(tmp / "tiny-src")
    layers = 1 if args.quick else None
    larger = {"hidden_size": 128, "intermediate_size": 256} if args.quick else LARGER
    sizes = {"small": build_random_model(src, tmp / "small", num_layers=layers),
             "larger": build_random_model(src, tmp / "larger", num_layers=layers, overrides=larger)}
    write_jsonl(tmp / "train.jsonl", records(args.batch * args.steps, long=True))
    write_jsonl(tmp / "test.jsonl", records(8, long=False))
    return {"tmp": tmp, "small": sizes["small"], "sizes": {k: v for k, v in sizes.items() if k in args.sizes},
            "data": tmp / "train.jsonl", "test": tmp / "test.jsonl", "source": str(src)}


def environment(args) -> dict:
    import torch

    return {"device": args.device, "torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "vllm_in_this_python": importlib.util.find_spec("vllm") is not None}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--model-src", help="a directory with config.json and tokenizer (default: see the docstring)")
    parser.add_argument("--quick", action="store_true", help="one-layer models (the CPU check of this script)")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--sizes", nargs="+", choices=["small", "larger"], default=["small", "larger"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--child-timeout", type=float, default=240)
    args = parser.parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no GPU (use --device cpu for the CPU-runnable parts)")
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = context(args, Path(tmp))
        out = {"environment": {**environment(args), "model_src": ctx["source"]},
               "sections": {name: run_section(name, args, ctx) for name in args.sections}}
    out["seconds"] = round(time.time() - started, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}: " + ", ".join(f"{k} {v['status']}" for k, v in out["sections"].items()), flush=True)
    return out


if __name__ == "__main__":
    main()
