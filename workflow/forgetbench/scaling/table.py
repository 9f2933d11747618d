"""The scaling table: one row per (model, run, step) with the number of fine-tuned parameters N, update steps t,
forgetting (rise of the general text's loss over the base model), the fine-tuning loss (domain test loss), the
domain score and the general average. Step 0 of every run is its model's base evaluation.

The domain score `domain` is the mean of the domain-score tasks' scores at the checkpoint
(forgetbench.evaluation.tasks.domain_score_tasks; the columns as the trade-off table opens them,
forgetbench.aggregation.table): the answer-scored `domain` task itself by default, or the `domain.eval` lm-eval
tasks, each also a column of its own (`domain.<task>`). Without a domain-score task (a TRL-format domain without
`domain.eval`) there is no `domain` column: the fine-tuning loss is then the domain's only measure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from forgetbench.aggregation.table import DEFAULT_DOMAIN, domain_columns


def build_scaling_table(paths: list[str | Path], general: list[str], domain_tasks=DEFAULT_DOMAIN) -> pd.DataFrame:
    opening, own = domain_columns(domain_tasks)
    rows = []
    for path in paths:
        result = json.loads(Path(path).read_text())
        cell, metrics = result["cell"], result["metrics"]
        missing = [t for t in ["general_text", *domain_tasks, *general] if t not in metrics]
        if missing:
            raise ValueError(f"{path}: no score for {', '.join(missing)}")
        domain = {task: metrics[task]["score"] for task in own or opening}
        if own:  # the domain score: the mean of its tasks' scores, each also a column
            domain = {"domain": float(np.mean([domain[t] for t in own])), **domain}
        rows.append({
            "model": cell["model"], "method": cell["method"], "lr": cell["lr"], "seed": cell["seed"],
            "n_params": cell["n_params"], "step": cell["step"],
            "general_text": metrics["general_text"]["score"], "ft_loss": result["ft_loss"],
            **domain,
            **{task: metrics[task]["score"] for task in general},
            "general_avg": float(np.mean([metrics[t]["score"] for t in general])) if general else np.nan,
        })
    table = pd.DataFrame(rows)
    base = table[table["method"] == "base"].set_index("model")
    missing = sorted(set(table["model"]) - set(base.index))
    if missing:
        raise ValueError(f"no base (step 0) evaluation for model '{missing[0]}'")
    table["forgetting"] = table["general_text"] - table["model"].map(base["general_text"])
    runs = table[table["method"] != "base"].drop_duplicates(["model", "method", "lr", "seed"])
    # Each run's curve starts at the base model: copy the base row under the run's name and N.
    starts = runs[["model", "method", "lr", "seed", "n_params"]].merge(
        table[table["method"] == "base"].drop(columns=["method", "lr", "seed", "n_params"]), on="model")
    out = pd.concat([starts, table[table["method"] != "base"]], ignore_index=True)
    return out.sort_values(["model", "n_params", "step"], kind="mergesort").reset_index(drop=True)
