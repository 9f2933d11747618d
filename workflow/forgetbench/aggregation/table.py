"""The tidy table of every evaluation (one row per base model and per cell) and its paper-shaped views."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

ID_COLUMNS = ["model", "method", "lr", "seed"]


def load_metrics(paths: list[str | Path], general: list[str]) -> pd.DataFrame:
    """Rows of model, method, lr, seed, domain, each general task, general_avg, general_text, status."""
    rows = []
    for path in paths:
        result = json.loads(Path(path).read_text())
        cell = result["cell"]
        metrics = result["metrics"]
        missing = [t for t in ["domain", *general] if t not in metrics]
        if missing:
            raise ValueError(f"{path}: no score for {', '.join(missing)}")
        row = {key: cell[key] for key in ID_COLUMNS}
        score = {task: np.nan if m.get("score") is None else m["score"] for task, m in metrics.items()}
        row["domain"] = score["domain"]
        row.update({task: score[task] for task in general})
        row["general_avg"] = float(np.mean([score[t] for t in general])) if general else np.nan
        row["general_text"] = score.get("general_text", np.nan)
        row["status"] = result.get("status", "finished")
        rows.append(row)
    return pd.DataFrame(rows)


def add_deltas(table: pd.DataFrame) -> pd.DataFrame:
    """Δ vs the base model of the same model: domain and general score, and the forgetting (rise of the general
    text's loss in bits per byte)."""
    base = table[table["method"] == "base"].set_index("model")
    if base.index.duplicated().any():
        raise ValueError("more than one base evaluation for a model")
    out = table.copy()
    for column, delta in [("domain", "delta_domain"), ("general_avg", "delta_general"), ("general_text", "forgetting")]:
        out[delta] = out[column] - out["model"].map(base[column])
    return out


def build_table(paths: list[str | Path], general: list[str]) -> pd.DataFrame:
    table = add_deltas(load_metrics(paths, general))
    table["is_base"] = table["method"] == "base"
    order = table.assign(_b=~table["is_base"]).sort_values(["model", "_b", "method", "lr", "seed"])
    return order.drop(columns=["_b"]).reset_index(drop=True)


def paper_table(table: pd.DataFrame, general: list[str]) -> pd.DataFrame:
    """Rows method × LR per model (base first), columns domain, each general benchmark, general average, Δ and
    forgetting; seeds are averaged, with ± the standard deviation where there are several."""
    value_columns = ["domain", *general, "general_avg", "delta_general", "forgetting"]
    grouped = table.groupby(["model", "method", "lr"], dropna=False, sort=False)
    # Positional: NaN learning rates (the base rows) cannot be looked up by label in a MultiIndex.
    means, stds, counts = grouped[value_columns].mean(), grouped[value_columns].std(), grouped.size()
    diverged = grouped["status"].agg(lambda s: int((s == "diverged").sum()))
    rows = []
    for (model, method, lr), mean, std, count, n_diverged in zip(means.index, means.itertuples(index=False),
                                                                  stds.itertuples(index=False), counts, diverged):
        label = f"{method} (diverged {n_diverged}/{count})" if n_diverged else method
        row = {"Model": model, "Method": label, "LR": "—" if pd.isna(lr) else f"{lr:g}"}
        for column, value, spread in zip(value_columns, mean, std):
            text = "—" if pd.isna(value) else f"{round(value, 3) + 0.0:.3f}"  # + 0.0: no "-0.000"
            if count > 1 and not pd.isna(spread):
                text += f" ± {spread:.3f}"
            row[DISPLAY.get(column, column)] = text
        rows.append(row)
    return pd.DataFrame(rows)


DISPLAY = {
    "domain": "Domain",
    "general_avg": "General avg",
    "delta_general": "Δ general",
    "forgetting": "Forgetting (Δ bpb)",
    "arc_easy": "ARC-Easy",
    "hellaswag": "HellaSwag",
    "piqa": "PIQA",
    "boolq": "BoolQ",
    "gsm8k": "GSM8K",
    "humaneval": "HumanEval",
    "ifeval": "IFEval",
    "mmlu": "MMLU",
    "arc_challenge": "ARC-Challenge",
}


def to_markdown(paper: pd.DataFrame, title: str) -> str:
    return f"# {title}\n\n" + paper.to_markdown(index=False) + "\n"


def to_latex(paper: pd.DataFrame, caption: str) -> str:
    body = paper.replace({"±": r"$\\pm$", "Δ": r"$\\Delta$"}, regex=True)
    body.columns = [c.replace("Δ", r"$\Delta$") for c in body.columns]
    return body.to_latex(index=False, caption=caption, label="tab:tradeoff", escape=False, column_format="lll" + "r" * (len(body.columns) - 3))
