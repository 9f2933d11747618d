"""Figures drawn from the aggregated table alone, so they can be redrawn without recomputing anything."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from forgetbench.atomic import atomic_path  # noqa: E402


def tradeoff_plot(table: pd.DataFrame, out_png: str) -> None:
    """General average against domain score: one point per cell, one panel per model, the base model a star."""
    cells = table[table["method"] != "base"].copy()
    cells["LR"] = cells["lr"].map(lambda lr: f"{lr:g}")
    base = table[table["method"] == "base"]
    models = list(dict.fromkeys(table["model"]))
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.8), squeeze=False, sharey=False)
    for ax, model in zip(axes[0], models):
        sns.scatterplot(
            data=cells[cells["model"] == model], x="domain", y="general_avg", hue="method", style="LR",
            s=70, ax=ax, legend=ax is axes[0][-1],
        )
        b = base[base["model"] == model]
        ax.scatter(b["domain"], b["general_avg"], marker="*", s=220, color="black", label="base", zorder=5)
        ax.set_title(model)
        ax.set_xlabel("domain score")
        ax.set_ylabel("general average")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    if axes[0][-1].get_legend():
        axes[0][-1].get_legend().remove()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format="png")
    plt.close(fig)


def token_probability_plot(hist: pd.DataFrame, out_png: str) -> None:
    """Histogram of θ₀'s probability of each response token, one bar series per model (from the token table)."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sns.barplot(data=hist, x="prob", y="share", hue="model", ax=ax, native_scale=True, width=0.9)
    ax.set_xlabel("probability under the pre-trained model (bin lower edge)")
    ax.set_ylabel("share of response tokens")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format="png")
    plt.close(fig)
