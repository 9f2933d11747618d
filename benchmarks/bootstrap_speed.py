"""How long the `aggregate` rule's paired bootstrap takes on a sweep of a given size: synthetic metrics and item
files (accuracy items for the general tasks, [log-likelihood, bytes] for the general text, [log-likelihood,
tokens] for the domain loss), written to a temporary folder, then `build_tables` timed as the rule runs it.

    python benchmarks/bootstrap_speed.py --models 2 --cells 200 --tasks 3 --items 1000 --resamples 1000

The goal (issue 16): a paper-scale sweep, 400 cells x 3 tasks x 1,000 items x 1,000 resamples, under a minute.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from forgetbench.aggregation.table import build_tables

METHODS = ["sft", "lora", "l2", "wise", "lines", "flow", "talr", "dft", "hft"]


def write_sweep(folder: Path, models: int, cells: int, tasks: int, items: int, seed: int = 0):
    """Metrics and item files of `models` x (1 base + `cells`) evaluations, scores consistent with the items."""
    rng = np.random.default_rng(seed)
    general = [f"task{i}" for i in range(tasks)]
    metric_paths, item_paths = [], []
    for m in range(models):
        keys = [("base", None, None)] + [(METHODS[c % len(METHODS)], 10.0 ** -(3 + c // (len(METHODS) * 4) % 3),
                                          c // len(METHODS) % 4) for c in range(cells)]
        for index, (method, lr, cell_seed) in enumerate(keys):
            records, metrics = [], {}
            for task in general + ["domain"]:
                values = (rng.random(items) < 0.5).astype(float)
                records += [{"task": task, "leaf": task, "doc_id": i, "value": v} for i, v in enumerate(values)]
                metrics[task] = {"score": float(values.mean()), "metric": "acc"}
            for task, metric, unit in (("general_text", "bits_per_byte", np.log(2)), ("domain_loss", "nll_per_token", 1.0)):
                weights = rng.integers(50, 500, items)
                ll = -rng.uniform(0.5, 2.0, items) * weights * unit
                records += [{"task": task, "leaf": task, "doc_id": i, "value": [float(a), int(b)]}
                            for i, (a, b) in enumerate(zip(ll, weights))]
                metrics[task] = {"score": float(-ll.sum() / weights.sum() / unit), "metric": metric}
            name = folder / f"m{m}-{index}"
            name.with_suffix(".json").write_text(json.dumps(
                {"cell": {"model": f"model{m}", "method": method, "lr": lr, "seed": cell_seed}, "metrics": metrics}))
            name.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
            metric_paths.append(name.with_suffix(".json"))
            item_paths.append(name.with_suffix(".jsonl"))
    return metric_paths, item_paths, general


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--cells", type=int, default=200, help="cells per model (besides its base)")
    parser.add_argument("--tasks", type=int, default=3, help="general tasks")
    parser.add_argument("--items", type=int, default=1000, help="items per task")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        metric_paths, item_paths, general = write_sweep(Path(tmp), args.models, args.cells, args.tasks, args.items)
        written = time.perf_counter() - start
        start = time.perf_counter()
        tidy, grouped = build_tables(metric_paths, item_paths, general, n_resamples=args.resamples)
        took = time.perf_counter() - start
    print(f"wrote {len(metric_paths)} evaluations in {written:.1f} s")
    print(f"bootstrap: {len(tidy)} evaluations, {len(grouped)} method x LR rows, {args.tasks} general tasks + "
          f"domain, domain loss, general text, {args.items} items, {args.resamples} resamples: {took:.1f} s")


if __name__ == "__main__":
    main()
