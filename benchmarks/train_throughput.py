"""Training throughput of every trained method on the same model, data and batch: tokens/s, s/step and peak
memory, as a ratio to plain SFT measured in the same run (a fresh process per method, so peak memory is per method),
and on CUDA the model FLOPs utilisation; with `--processes N`, of N training processes per method.

    python benchmarks/train_throughput.py                       # the tiny test model, 2 threads, CPU
    python benchmarks/train_throughput.py --model results/default/smollm2-135m/base/model --steps 6
    python benchmarks/train_throughput.py --random-init benchmarks/gpu_assets/smollm2-135m \\
        --train-jsonl benchmarks/gpu_assets/medcalc_train.jsonl --device cuda --precision bf16-mixed \\
        --batch 8 --seq 512 --steps 10 --json out.json
    python benchmarks/train_throughput.py --processes 2 --methods sft lora   # 2 gloo processes, 1 thread each

Each method trains through forgetbench.training.run.train_cell, as the workflow's `train` rule does: weights
load as the training config's `precision` says (`--precision`; bf16-mixed = the Trainer's bf16 autocast
(mixed precision, float32 master weights). The Trainer trains on CUDA whenever torch sees a GPU, so
`--device cpu` hides the GPUs from the training process (CUDA_VISIBLE_DEVICES="").

tokens/s counts the non-padding tokens of the batches (the Trainer's `tokens_seen`) over the steps after the
first (the first carries CUDA/kernel warm-up). Peak memory: CUDA `torch.cuda.max_memory_allocated` of the
training process; CPU the process's peak RSS. MFU = 6·N·tokens/s / peak, N = all parameters of the model
(LoRA and HFT do less backward work than 6·N, so theirs is an upper bound of the real rate; attention's
sequence-dependent FLOPs and padding are not counted), peak = the GPU's dense bf16 rate (`--peak-tflops`,
default from the device name); fp32 rows are measured against the same bf16 peak.

`--processes N` (default 1) trains each method as the workflow does with `training.processes` N (or N GPUs):
through forgetbench.training.launch.run, i.e. `python -m torch.distributed.run --standalone --nproc-per-node N
-m forgetbench.training.launch SPEC.json`, DDP over gloo on a CPU, one GPU per process on CUDA. Every process
takes `--batch` records a step, so a step holds N x `--batch` records (the rows' `effective_batch`), and
N x `--batch` x `--steps` records are generated (or read) so that none is seen twice. `--threads T` is the
total: each process gets T // N threads (at least 1). tokens/s and tokens_per_step count the tokens of all
processes (the training log, written by process 0, sums them), s/step is process 0's time between logged steps
(a step ends for all processes together: DDP's gradient all-reduce). Peak memory with N processes:
`peak_mem_mb` is the peak RSS of the largest training process (the launching process's RUSAGE_CHILDREN
maximum: torchrun's agent and its workers, each on its own, not summed; CUDA memory is not measured then),
`tree_rss_mb` / `tree_pss_mb` the largest sum of the processes' RSS / PSS sampled every 0.2 s (RSS counts the
pages the processes share, e.g. torch's libraries, once per process; PSS splits them; sampling can miss a
shorter peak). With one process nothing changes: the training process's own peak (RSS or CUDA), no tree
figures. `--profile` is for one process only.

`--random-init DIR` builds the model with random weights from DIR's config.json and tokenizer (no weights
needed): the throughput does not depend on the weight values. `--set KEY=VALUE ...` changes its config, e.g.
SmolLM2-1.7B's shape from SmolLM2-135M's files:
    --set hidden_size=2048 intermediate_size=8192 num_hidden_layers=24 num_attention_heads=32 \
          num_key_value_heads=32
With random weights FLOW's per-sample weights come from seeded random base losses instead of scoring the
training data with θ₀. A method may carry hyperparameters, `NAME:KEY=VALUE,...` (e.g. `lora:dropout=0`): a row
of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    add_model_options, build_random_model, check_model_options, method_spec, peak_tflops, run_child,
)

METHODS = ["sft", "lora", "l2", "talr", "dft", "flow", "hft"]

CHILD = r"""
import json, random, resource, sys, threading, time
p = json.loads(sys.argv[1])
import torch
torch.set_num_threads(p["threads"])
if p["device"] == "cuda" and not torch.cuda.is_available():
    raise SystemExit("--device cuda: torch sees no CUDA device")
from forgetbench.atomic import write_jsonl
from forgetbench.data.records import read_jsonl
from forgetbench.methods import get_method
from forgetbench.training.launch import run as launch
w, spec, model = p["workdir"], p["method"], p["model"]
method, hparams = spec.partition(":")[0], p["hparams"]
losses = f"{w}/losses.jsonl"
if get_method(method).needs_base_scores:
    if p["random_base_losses"]:
        rng = random.Random(0)
        write_jsonl(losses, [{"id": r["id"], "mean_loss": rng.uniform(0.5, 3.0), "tokens": 1}
                             for r in read_jsonl(p["train"])])
    else:
        from forgetbench.analysis.base_scores import score_with_base
        score_with_base(model, p["train"], p["format"], p["seq"], "auto", losses, f"{w}/stats.json",
                        max_truncated_share=1.0)
cell = {"model": "m", "method": method, "hparams": hparams,
        "lr": p["lr"], "seed": 0, "domain": {"name": "d", "format": p["format"]}, "chat_template": "auto",
        "training": {"max_steps": p["steps"], "epochs": 1, "batch_size": p["batch"], "grad_accum": 1,
                     "max_seq_len": p["seq"], "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0,
                     "max_grad_norm": 1.0, "logging_steps": 1, "precision": p["precision"],
                     "max_truncated_share": 1.0}}  # cut to --seq on purpose: a fixed length is what is timed
out = f"{w}/{spec}"
if p["profile"]:
    # Host-side (Python) time of the steps from the third on: which calls a step spends its time in when the
    # GPU waits for the host. The rates of a profiled run are lower than a plain run's.
    import cProfile, io, pstats
    from forgetbench.training.trainer import MethodTrainer
    profiler, calls, plain_step = cProfile.Profile(), [0], MethodTrainer.training_step
    def training_step(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            profiler.enable()
        return plain_step(self, *args, **kwargs)
    MethodTrainer.training_step = training_step
job = dict(base_model=model, train_jsonl=p["train"], out_model=out + "/model", out_log=out + "/log.jsonl",
           out_run=out + "/run.json", cell=cell, base_losses=losses)  # train_cell's keyword arguments
processes, cuda = p["processes"], torch.cuda.is_available()
tree = {"rss": 0, "pss": 0}
if processes > 1:
    # The processes below this one (torchrun's agent and its workers; this one only waits for them): the sum of
    # their RSS and of their PSS, sampled every 0.2 s, the largest sums kept.
    import psutil
    done = threading.Event()
    def sample():
        me = psutil.Process()
        while not done.wait(0.2):
            rss = pss = 0
            for proc in me.children(recursive=True):
                try:
                    info = proc.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                rss, pss = rss + info.rss, pss + info.pss
            tree["rss"], tree["pss"] = max(tree["rss"], rss), max(tree["pss"], pss)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
# Through the workflow's own launcher: this process trains (1), or torchrun starts `processes` of them, each
# with threads // processes threads, and process 0 writes run.json.
summary = launch(job, processes, p["threads"], gpus=processes if cuda and processes > 1 else 0,
                 job=f"train_throughput {spec}")
if processes > 1:
    done.set()
    sampler.join()
    summary = json.loads(open(out + "/run.json").read())
if p["profile"]:
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(30)
    stats.print_callers(6)
    stats.sort_stats("cumulative").print_stats(40)
    open(f"{w}/{spec}.profile.txt", "w").write(text.getvalue())
# One process: this process's peak RSS. Several: the peak RSS of the largest of the processes this one waited
# for (Linux's RUSAGE_CHILDREN maximum is per process, not the tree's sum), and the sampled sums beside it.
who = resource.RUSAGE_SELF if processes <= 1 else resource.RUSAGE_CHILDREN
print(json.dumps({
    "peak_rss_mb": resource.getrusage(who).ru_maxrss / 1024,
    "tree_rss_mb": tree["rss"] / 2**20 if processes > 1 else None,
    "tree_pss_mb": tree["pss"] / 2**20 if processes > 1 else None,
    "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda and processes <= 1 else None,
    "device_name": torch.cuda.get_device_name() if cuda else "cpu",
    "total_params": summary["total_params"], "trainable_params": summary["trainable_params"],
    "status": summary["status"], "steps": summary["steps"], "torch": torch.__version__,
    "processes": summary["processes"], "effective_batch": summary["effective_batch"],
    "tokens_seen": summary["tokens_seen"], "threads": summary["threads"],
}))
"""


def run_one(method: str, hparams: dict, params: dict, workdir: Path, timeout: float, env: dict) -> dict:
    """Train `method` (a spec, `NAME[:KEY=VALUE,...]`, with its checked `hparams`) in a fresh process (which
    starts `params["processes"]` training processes under torchrun when that is over 1); tokens/s from its
    training log (steady state: steps after the first), whose token counts are summed over the processes."""
    started = time.monotonic()
    row = {"method": method}
    child, error = run_child(method, CHILD, {**params, "method": method, "hparams": hparams}, timeout, env)
    if error:
        return {**row, "error": error}
    log = [json.loads(line) for line in (workdir / method / "log.jsonl").read_text().splitlines()]
    steady = log[1:] or log
    tokens = steady[-1]["tokens"] - (log[0]["tokens"] if len(log) > 1 else 0)
    seconds = steady[-1]["elapsed_s"] - (log[0]["elapsed_s"] if len(log) > 1 else 0)
    cuda = child["peak_cuda_mb"] is not None
    several = child["processes"] > 1
    row.update({
        "processes": child["processes"],
        "effective_batch": child["effective_batch"],
        "threads_per_process": child["threads"],
        "tokens_per_s": tokens / seconds if seconds > 0 else float("nan"),
        "s_per_step": seconds / len(steady),
        "peak_mem_mb": child["peak_cuda_mb"] if cuda else child["peak_rss_mb"],
        "mem_kind": "cuda_max_allocated" if cuda else "rss_largest_process" if several else "rss",
        "peak_rss_mb": child["peak_rss_mb"],
        "tree_rss_mb": child["tree_rss_mb"],
        "tree_pss_mb": child["tree_pss_mb"],
        "tokens_per_step": tokens / len(steady),
        "tokens_seen": child["tokens_seen"],
        "steps_logged": len(log),
        "final_loss": log[-1]["loss"] if log else None,
        "status": child["status"],
        "total_params": child["total_params"],
        "trainable_params": child["trainable_params"],
        "device_name": child["device_name"],
        "wall_s": round(time.monotonic() - started, 1),
    })
    tree = f", processes' sum {row['tree_rss_mb']:.0f} MiB RSS (sampled)" if several else ""
    print(f"{method}: {row['processes']} process{'es' if several else ''}, {row['tokens_per_s']:.0f} tok/s, "
          f"{row['s_per_step']:.3f} s/step, peak {row['peak_mem_mb']:.0f} MiB ({row['mem_kind']}){tree}, "
          f"{row['wall_s']} s in all", file=sys.stderr, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--train-jsonl", help="training records (default: generate them with medcalc_synth)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=320, help="max_seq_len (records are truncated, not padded to it)")
    parser.add_argument("--format", choices=["label", "cot"], default="label",
                        help="supervision: label = answer only (~150 tokens a record), cot = rationale too (~375)")
    parser.add_argument("--threads", type=int, default=2,
                        help="CPU threads in all: with --processes N each process gets threads // N (at least 1)")
    parser.add_argument("--processes", type=int, default=1,
                        help="train each method with N processes under torchrun (forgetbench.training.launch), "
                             "each with --batch: the effective batch is N x --batch")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["fp32", "bf16-mixed", "bf16"], default="fp32",
                        help="training.precision: bf16-mixed = bf16 autocast over float32 weights; bf16 = bf16 weights")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak (default: from its name)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per method before it is abandoned")
    parser.add_argument("--json", help="also write the settings and rows here")
    parser.add_argument("--label", default="", help="a name for this run in the printout and JSON")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile each method's steps from the third on; print the top calls (and write them "
                             "beside --json); the rates are then lower than unprofiled ones")
    args = parser.parse_args()
    check_model_options(parser, args)
    if args.processes < 1:
        parser.error("--processes: at least 1")
    if args.profile and args.processes > 1:
        parser.error("--profile: only with --processes 1 (it profiles the training process itself)")
    hparams = {}  # spec -> its checked hyperparameters, before any model is built
    for spec in args.methods:
        try:
            hparams[spec] = method_spec(spec)[1]
        except argparse.ArgumentTypeError as err:
            parser.error(str(err))
    import pandas as pd

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the Trainer trains on CUDA whenever it sees a GPU

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = args.model
        if args.random_init:
            model = str(build_random_model(args.random_init, workdir / "model", num_layers=args.num_layers,
                                           overrides=dict(args.set)))
        elif model is None:
            from forgetbench.models.tiny import build_tiny_llama

            model = str(build_tiny_llama(workdir / "tiny"))
        from forgetbench.atomic import write_jsonl

        n = args.batch * args.steps * args.processes  # one epoch: no record is seen twice
        if args.train_jsonl:
            from forgetbench.data.records import read_jsonl

            records = read_jsonl(args.train_jsonl)[:n]
            if len(records) < n:
                print(f"note: {args.train_jsonl} has {len(records)} records for {n} samples: the Trainer repeats them",
                      file=sys.stderr)
        else:
            from forgetbench.data.medcalc_synth import generate

            records = generate(n, seed=0)
        write_jsonl(workdir / "train.jsonl", records)
        params = {"workdir": str(workdir), "model": model, "train": str(workdir / "train.jsonl"),
                  "steps": args.steps, "batch": args.batch, "seq": args.seq, "threads": args.threads,
                  "lr": args.lr, "format": args.format, "device": args.device, "precision": args.precision,
                  "random_base_losses": bool(args.random_init), "profile": args.profile,
                  "processes": args.processes}
        rows = []
        if args.device != "cpu":
            # On an H200 the first training process was the slowest in two runs of three (sft at 0.65-0.8x of
            # the methods after it): clocks ramping up, CUDA's lazy initialisation. A discarded warm-up run of
            # the first method keeps that out of the ratios.
            print(f"warm-up (discarded): {args.methods[0]}", flush=True)
            run_one(args.methods[0], hparams[args.methods[0]], params, workdir, args.timeout, env)
        for m in args.methods:
            rows.append(run_one(m, hparams[m], params, workdir, args.timeout, env))
            if args.json:  # what is done so far, in case the whole run is stopped from outside
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps({"label": args.label, "partial": True, "settings": vars(args),
                                                       "rows": rows}, indent=2, default=str))
            profile = workdir / f"{m}.profile.txt"
            if profile.exists():
                print(f"---- {m}: host time of its steps (cProfile)\n{profile.read_text()}", flush=True)
                if args.json:
                    shutil.copy(profile, Path(args.json).with_suffix(f".{m}.profile.txt"))

    table = pd.DataFrame(rows).set_index("method")
    ok = table["tokens_per_s"].notna() if "tokens_per_s" in table else pd.Series(False, index=table.index)
    device_names = sorted({r.get("device_name") for r in rows if r.get("device_name")})
    device_name = device_names[0] if device_names else None
    peak = args.peak_tflops or peak_tflops(device_name if device_name != "cpu" else None)
    if ok.any():
        if peak and device_name != "cpu":
            table["mfu"] = 6 * table["total_params"] * table["tokens_per_s"] / (peak * 1e12)
        if "sft" in table.index and ok.get("sft", False):
            sft = table.loc["sft"]
            table["throughput_vs_sft"] = table["tokens_per_s"] / sft["tokens_per_s"]
            table["memory_vs_sft"] = table["peak_mem_mb"] / sft["peak_mem_mb"]
    shown = [c for c in ["processes", "effective_batch", "tokens_per_s", "s_per_step", "peak_mem_mb",
                         "tree_rss_mb" if args.processes > 1 else None, "mfu", "throughput_vs_sft", "memory_vs_sft",
                         "tokens_per_step", "trainable_params", "error"] if c in table]
    changes = [f"{args.num_layers} layers"] * bool(args.num_layers) + [f"{k}={v}" for k, v in args.set]
    source = f"random-init {args.random_init}" + (f" ({', '.join(changes)})" if changes else "") \
        if args.random_init else model
    several = args.processes > 1
    batch = (f"batch {args.batch} per process x {args.processes} processes = effective batch "
             f"{args.batch * args.processes}" if several else f"batch {args.batch}")
    each = max(1, args.threads // args.processes)
    threads = f"{args.threads} threads" + (f" ({each} per process)" if several else "")
    memory = ("; peak_mem_mb = the peak RSS of the largest process (CUDA memory is not measured with several), "
              "tree_rss_mb = the largest sum of the processes' RSS, sampled every 0.2 s" if several else "")
    print(f"{args.label + ': ' if args.label else ''}model {source}, {args.steps} steps of {batch} x <= "
          f"{args.seq} tokens ({args.format}), precision {args.precision}, device {device_name or args.device}"
          + (f", MFU vs {peak:g} TFLOP/s bf16 dense" if peak and device_name != "cpu" else "")
          + (f", {threads}" if device_name in (None, "cpu") else "") + memory)
    print(table[shown].round(4).to_markdown())
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "label": args.label, "model": source, "settings": {k: v for k, v in vars(args).items()},
            "device_name": device_name, "peak_tflops": peak,
            "rows": json.loads(table.reset_index().to_json(orient="records")),
        }, indent=2))
    if not ok.all():
        sys.exit(1)


if __name__ == "__main__":
    main()
