"""Figures drawn from the aggregated table alone, so they can be redrawn without recomputing anything."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from forgetbench.atomic import atomic_path  # noqa: E402


def save_figure(fig: plt.Figure, out_png) -> None:
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format="png")
    plt.close(fig)


def pareto_front(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The non-dominated rows, maximising both x and y, sorted by x; rows with NaN in x or y are ignored. A row
    is dominated when another is at least as good in both and strictly better in one, so exact ties all stay."""
    valid = df[df[x].notna() & df[y].notna()]
    if valid.empty:
        return valid
    order = valid.sort_values([x, y], ascending=[False, False], kind="mergesort")
    keep, best_y = [], -np.inf
    for _, same_x in order.groupby(x, sort=False):
        top = same_x[y].max()
        if top > best_y:  # anything with larger x and y >= top would dominate these
            keep.extend(same_x.index[same_x[y] == top])
            best_y = top
    return valid.loc[keep].sort_values(x, kind="mergesort")


def draw_pareto_front(ax: plt.Axes, df: pd.DataFrame, x: str, y: str, label: str = "Pareto front") -> pd.DataFrame:
    """Mark the Pareto front of `df` on `ax` as a staircase through open circles; returns the front rows."""
    front = pareto_front(df, x, y)
    if len(front):
        ax.plot(front[x], front[y], drawstyle="steps-pre", color="black", lw=1.0, ls="--", zorder=4, label=label)
        ax.scatter(front[x], front[y], s=90, facecolors="none", edgecolors="black", lw=1.2, zorder=5)
    return front



def tradeoff_plot(table: pd.DataFrame, out_png: str) -> None:
    """General average against domain score: one point per cell, one panel per model, the base model a star."""
    cells = table[table["method"] != "base"].copy()
    cells["LR"] = cells["lr"].map(lambda lr: f"{lr:g}")
    base = table[table["method"] == "base"]
    models = list(dict.fromkeys(table["model"]))
    # One colour and one marker per method and LR across all panels: seaborn would otherwise map each panel's
    # own methods onto the start of the palette, and the shared legend would name the wrong ones.
    methods = sorted(cells["method"].unique())
    palette = dict(zip(methods, sns.color_palette(n_colors=len(methods))))
    lrs = [f"{lr:g}" for lr in sorted(cells["lr"].unique())]
    markers = dict(zip(lrs, ["o", "X", "s", "P", "D", "^", "v", "<", ">", "p"] * 4))
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.8), squeeze=False, sharey=False)
    for ax, model in zip(axes[0], models):
        sns.scatterplot(
            data=cells[cells["model"] == model], x="domain", y="general_avg", hue="method", style="LR",
            hue_order=methods, palette=palette, style_order=lrs, markers=markers, s=70, ax=ax,
            legend=ax is axes[0][-1],
        )
        b = base[base["model"] == model]
        ax.scatter(b["domain"], b["general_avg"], marker="*", s=220, color="black", label="base", zorder=5)
        draw_pareto_front(ax, table[table["model"] == model], "domain", "general_avg")
        ax.set_title(model)
        ax.set_xlabel("domain score")
        ax.set_ylabel("general average")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    if axes[0][-1].get_legend():
        axes[0][-1].get_legend().remove()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    save_figure(fig, out_png)


def token_probability_plot(hist: pd.DataFrame, out_png: str) -> None:
    """Histogram of θ₀'s probability of each response token, one bar series per model (from the token table)."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sns.barplot(data=hist, x="prob", y="share", hue="model", ax=ax, native_scale=True, width=0.9)
    ax.set_xlabel("probability under the pre-trained model (bin lower edge)")
    ax.set_ylabel("share of response tokens")
    save_figure(fig, out_png)
