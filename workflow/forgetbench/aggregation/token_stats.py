"""TALR's token analysis across models: the share of response tokens to which the pre-trained model gives a
probability below each threshold, and the share of the loss those tokens carry."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from forgetbench.aggregation.html import table_html

TITLE = "Pre-trained model's token probabilities on the domain's response tokens"
NOTE = ("p: the pre-trained model's probability of each response token of the training data; "
        "\"tokens with p < x\": their share of all response tokens; \"loss share\": the share of the summed "
        "token loss (−log p) they carry.")


def token_stats_table(paths: list[str | Path], models: list[str]) -> pd.DataFrame:
    """One row per model; histogram counts in long form under `hist_<lower edge>` columns."""
    rows = []
    for model, path in zip(models, paths):
        stats = json.loads(Path(path).read_text())
        row = {"model": model, "tokens": stats["tokens"], "mean_prob": stats["mean_prob"],
               "median_prob": stats["median_prob"]}
        row.update({f"frac_p<{t}": v for t, v in stats["fraction_below"].items()})
        row.update({f"loss_share_p<{t}": v for t, v in stats["loss_share_below"].items()})
        edges, counts = stats["histogram"]["edges"], stats["histogram"]["counts"]
        row.update({f"hist_{edges[i]:.2f}": c for i, c in enumerate(counts)})
        rows.append(row)
    return pd.DataFrame(rows)


def histogram_long(table: pd.DataFrame) -> pd.DataFrame:
    """model, bin lower edge, share of tokens: what the histogram plot draws."""
    hist = table.melt(id_vars="model", value_vars=[c for c in table if c.startswith("hist_")],
                      var_name="bin", value_name="count")
    hist["prob"] = hist["bin"].str.removeprefix("hist_").astype(float)
    hist["share"] = hist["count"] / hist.groupby("model")["count"].transform("sum")
    return hist


def display_name(column: str) -> str:
    """`frac_p<0.05` -> "tokens with p < 0.05", `loss_share_p<0.05` -> "loss share of p < 0.05"."""
    for prefix, text in (("frac_p<", "tokens with p < "), ("loss_share_p<", "loss share of p < ")):
        if column.startswith(prefix):
            return text + column.removeprefix(prefix)
    return {"model": "Model", "tokens": "response tokens", "mean_prob": "mean p", "median_prob": "median p"}.get(column, column)


def _shown(table: pd.DataFrame) -> pd.DataFrame:
    return table[[c for c in table if not c.startswith("hist_")]].rename(columns=display_name)


def to_markdown(table: pd.DataFrame) -> str:
    return f"# {TITLE}\n\n{_shown(table).to_markdown(index=False, floatfmt='.3f')}\n\n{NOTE}\n"


def to_html(table: pd.DataFrame) -> str:
    """The report's view of the table: the Markdown view's cells on an HTML page."""
    return table_html(_shown(table), TITLE, NOTE, float_format=".3f")
