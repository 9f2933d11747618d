"""How long `snakemake -n` takes on a paper-scale config (3 models × 9 methods × 5 LRs × 3 seeds, every
evaluation, a scaling sweep), and how the time grows with the number of cells (1×, 4×, 16× the seeds).

    python benchmarks/dag_scale.py                 # prints a table; the goal: under 10 s at 1×, growth ~linear
    python benchmarks/dag_scale.py --scales 1 4    # fewer points
    python benchmarks/dag_scale.py --per-task      # one evaluation job per task instead of per family
    python benchmarks/dag_scale.py --quiet         # `snakemake -n --quiet rules`: without printing every job

The general suite is the TALR paper's (IFEval, GSM8K with 8 exemplars, HumanEval, offline copies). Evaluation
jobs are grouped in two families (the general suite in one job, the domain in another: one vLLM engine start
each on a cluster), whatever config.yaml groups for its CPU default; `--per-task` makes every
task its own job (2.2x the jobs). Snakemake spends a few ms on each job (wildcards, input, params and resources
functions, the script's source), so the time follows the job count.

The parse-time checks read each hub model's config.json from the local Hugging Face cache (offline, as on a
login node): the benchmark builds a cache holding only those files, from the repository's test fixtures
(gemma-3-4b stands in with a Qwen config: only its jobs are counted), unless --hub-cache names a real one.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def paper_config(seeds: int, per_task: bool = False) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["experiment"] = f"paper-x{seeds}"
    config["models"] = {
        "qwen2.5-3b": {"source": "hub", "id": "Qwen/Qwen2.5-3B-Instruct"},
        "qwen2.5-7b": {"source": "hub", "id": "Qwen/Qwen2.5-7B-Instruct", "gpus": 2},
        "gemma3-4b": {"source": "hub", "id": "google/gemma-3-4b-it"},
    }
    config["learning_rates"] = [1e-6, 2e-6, 5e-6, 1e-5, 2e-5]
    config["seeds"] = list(range(seeds))
    config["training"]["precision"] = "bf16"  # fp32 full fine-tuning of the 7B would not fit 2 x 80 GB
    config["evaluation"]["general"] = {"ifeval": {}, "gsm8k": {"num_fewshot": 8}, "humaneval": {}}
    # a cluster's grouping, whatever the CPU default groups: the general suite in one job, the domain in another
    config["evaluation"]["families"] = {"general": [*config["evaluation"]["general"], "general_text"],
                                        "domain": ["domain", "domain_loss"]}
    if per_task:
        config["evaluation"].pop("families")
    config["scaling"].update(models=["qwen2.5-3b"], lora_ranks=[2, 8, 32, 128], steps=[100, 200, 400, 800])
    return config


def expected_jobs(config: dict) -> int:
    """The job count the DAG should have, counted from the config: a cross-check of the workflow's expansion."""
    from forgetbench.config.tasks import eval_families
    from forgetbench.methods import get_method

    models, cells = len(config["models"]), len(config["models"]) * len(config["learning_rates"]) * len(config["seeds"])
    methods = {name: get_method(name) for name in config["methods"]}
    trained = sum(m.kind == "train" for m in methods.values())
    posthoc = sum(len(m(**config["methods"][name]).variants()) for name, m in methods.items() if m.kind == "posthoc")
    evaluated = cells * (trained + posthoc) + models  # every cell, and each base model once
    families = len(eval_families(config["evaluation"], "paper-scale config"))
    scaling = config["scaling"]
    runs = len(scaling["models"]) * (len(scaling["lora_ranks"]) + bool(scaling["full"]))
    return (1 + 3 * models  # prepare_domain; prepare_model, score_base and base_checked per model
            + cells * (trained + posthoc)  # train, combine_posthoc
            + evaluated * (families + 1)  # evaluate per family, merge_evaluations
            + runs * (1 + len(scaling["steps"])) + len(scaling["models"])  # train_scaling, its checkpoints, step 0
            + 3 + 3 + 1)  # the trade-off, token-stats and scaling tables, their plots, `all`


FIXTURE_CONFIGS = {"Qwen/Qwen2.5-3B-Instruct": "qwen2.5-3b-instruct", "Qwen/Qwen2.5-7B-Instruct": "qwen2.5-7b-instruct",
                   "google/gemma-3-4b-it": "qwen2.5-3b-instruct"}


def config_only_hub_cache(root: Path) -> Path:
    """A Hugging Face cache with only each paper model's config.json: what a login node holds after
    `huggingface-cli download ID config.json`, and all that a dry run reads of a hub model."""
    for repo_id, fixture in FIXTURE_CONFIGS.items():
        snapshot = root / f"models--{repo_id.replace('/', '--')}" / "snapshots" / ("0" * 40)
        snapshot.mkdir(parents=True, exist_ok=True)
        (snapshot.parents[1] / "refs").mkdir(exist_ok=True)
        (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
        (snapshot / "config.json").write_text((REPO / "tests/fixtures/models" / fixture / "config.json").read_text())
    return root


def dry_run(config: dict, workdir: Path, quiet: bool = False, hub_cache: Path | None = None) -> tuple[float, int]:
    path = workdir / f"{config['experiment']}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "HF_HUB_CACHE": str(hub_cache or config_only_hub_cache(workdir / "hub"))}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", *(["--quiet", "rules"] if quiet else []),
                          "--snakefile", str(REPO / "Snakefile"), "--configfile", str(path), "--directory",
                          str(workdir)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit((out.stderr.strip() or out.stdout)[-3000:])
    total = re.search(r"^total\s+(\d+)", out.stdout + out.stderr, re.M)
    return seconds, int(total.group(1)) if total else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16], help="multiples of the 3 seeds")
    parser.add_argument("--per-task", action="store_true", help="one evaluation job per task, not per family")
    parser.add_argument("--quiet", action="store_true", help="--quiet rules: the job table without each job's block")
    parser.add_argument("--repeat", type=int, default=1, help="dry runs per scale (each is printed; the median counts)")
    parser.add_argument("--hub-cache", type=Path, help="a Hugging Face cache holding the paper models (default: "
                        "one with only their config.json, built from the test fixtures)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            config = paper_config(3 * scale, args.per_task)
            cells = len(config["models"]) * 9 * len(config["learning_rates"]) * len(config["seeds"])
            times = []
            for _ in range(args.repeat):
                seconds, jobs = dry_run(config, Path(tmp), args.quiet, args.hub_cache)
                times.append(seconds)
            if args.repeat > 1:
                print(f"{scale}x: " + ", ".join(f"{t:.1f}" for t in times) + " s", flush=True)
            rows.append((scale, cells, jobs, expected_jobs(config), statistics.median(times)))
    print(f"{'scale':>5} {'cells':>6} {'jobs':>7} {'expected':>8} {'dry run s':>10} {'ms/job':>7}")
    for scale, cells, jobs, expected, seconds in rows:
        print(f"{scale:>4}× {cells:>6} {jobs:>7} {expected:>8} {seconds:>10.1f} {1000 * seconds / jobs:>7.2f}")
    if len(rows) > 1:
        (_, _, j0, _, s0), (_, _, j1, _, s1) = rows[0], rows[-1]
        print(f"growth: jobs ×{j1 / j0:.1f}, time ×{s1 / s0:.1f} (linear or better when time grows no faster)")
    if any(jobs != expected for _, _, jobs, expected, _ in rows):
        sys.exit("the DAG's job count differs from the count expected from the config")


if __name__ == "__main__":
    main()
