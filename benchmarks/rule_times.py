"""Where the time of a run went, from Snakemake's `benchmark:` files: one line per rule (jobs, total, mean and
longest wall seconds, total CPU seconds, peak RSS) and the sum over all rules. Wall time counts waiting for a core
when jobs share a machine; CPU time is what a rule costs on any machine of the same speed.

    python benchmarks/rule_times.py results/default
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def rule_times(results_dir: str | Path) -> pd.DataFrame:
    root = Path(results_dir) / "benchmarks"
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        rule = tsv.relative_to(root).parts[0].removesuffix(".tsv")
        bench = pd.read_csv(tsv, sep="\t")
        # One line per run of the job; more only under the benchmark's repeat(), whose last run is kept.
        last = bench.iloc[-1]
        rows.append({"rule": rule, "s": float(last["s"]), "cpu_s": float(last["cpu_time"]),
                     "max_rss_mb": float(last["max_rss"])})
    if not rows:
        raise SystemExit(f"{root}: no benchmark files (has the workflow run?)")
    jobs = pd.DataFrame(rows)
    table = jobs.groupby("rule").agg(jobs=("s", "size"), total_s=("s", "sum"), mean_s=("s", "mean"),
                                     max_s=("s", "max"), cpu_s=("cpu_s", "sum"), peak_rss_mb=("max_rss_mb", "max"))
    table = table.sort_values("total_s", ascending=False)
    table.loc["all rules"] = [len(jobs), jobs["s"].sum(), jobs["s"].mean(), jobs["s"].max(), jobs["cpu_s"].sum(),
                              jobs["max_rss_mb"].max()]
    return table.round(1)


if __name__ == "__main__":
    print(rule_times(sys.argv[1] if len(sys.argv) > 1 else "results/default").to_markdown())
