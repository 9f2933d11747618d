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


def draw_pareto_front(ax: plt.Axes, df: pd.DataFrame, x: str, y: str, label: str = "Pareto front",
                      lower_x_better: bool = False) -> pd.DataFrame:
    """Mark the Pareto front of `df` on `ax` as a staircase through open circles; returns the front rows. y is
    maximised, x too unless `lower_x_better` (a loss on the x axis)."""
    if lower_x_better:
        front = pareto_front(df.assign(_neg_x=-df[x]), "_neg_x", y).drop(columns="_neg_x")
        front = front.sort_values(x, kind="mergesort")
    else:
        front = pareto_front(df, x, y)
    if len(front):
        # the staircase bounds what the front dominates: its step is at the better end of each x interval
        ax.plot(front[x], front[y], drawstyle="steps-post" if lower_x_better else "steps-pre", color="black", lw=1.0,
                ls="--", zorder=4, label=label)
        ax.scatter(front[x], front[y], s=90, facecolors="none", edgecolors="black", lw=1.2, zorder=5)
    return front



def spread_ties(x: pd.Series, y: pd.Series, share: float = 0.012) -> pd.Series:
    """x moved apart for points that share (x, y) to 3 decimals, by `share` of the x range each, centred: five
    cells with the same scores would otherwise draw one marker."""
    span = (x.max() - x.min()) if x.notna().any() and x.max() > x.min() else 1.0
    keys = list(zip(x.round(3), y.round(3)))
    offsets = pd.Series(0.0, index=x.index)
    for key in dict.fromkeys(keys):
        members = [i for i, k in zip(x.index, keys) if k == key]
        for rank, i in enumerate(members):
            offsets[i] = (rank - (len(members) - 1) / 2) * share * span
    return x + offsets


def _styles(cells: pd.DataFrame) -> tuple[dict, dict]:
    # One colour per method and one marker per LR across all panels, so one shared legend names them all.
    methods = sorted(cells["method"].unique())
    palette = dict(zip(methods, sns.color_palette(n_colors=len(methods))))
    lrs = sorted(cells["lr"].unique())
    markers = dict(zip(lrs, ["o", "X", "s", "P", "D", "^", "v", "<", ">", "p"] * 4))
    return palette, markers


def _interval_errors(frame: pd.DataFrame, column: str) -> np.ndarray:
    """[2, rows] distances to the interval's ends, for matplotlib's errorbar (0 where there is no interval)."""
    low = (frame[column] - frame[f"{column}_lo"]).clip(lower=0).fillna(0)
    high = (frame[f"{column}_hi"] - frame[column]).clip(lower=0).fillna(0)
    return np.vstack([low.to_numpy(), high.to_numpy()])


def _cell_panels(table: pd.DataFrame, x: str, y: str, out_png: str, xlabel: str, ylabel: str,
                 base_marker: bool, front: bool, reference_lines: bool = False, lower_x_better: bool = False) -> None:
    """One panel per model, one point per cell with its intervals on both axes, a shared legend."""
    from forgetbench.aggregation.table import display_lr

    cells = table[table["method"] != "base"]
    palette, markers = _styles(cells)
    models = list(dict.fromkeys(table["model"]))
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, len(models), figsize=(4.4 * len(models), 3.9), squeeze=False)
    handles = {}
    for ax, model in zip(axes[0], models):
        mine = cells[cells["model"] == model]
        shown_x = spread_ties(mine[x], mine[y])
        for (method, lr), group in mine.groupby(["method", "lr"], sort=True):
            artist = ax.errorbar(shown_x[group.index], group[y], xerr=_interval_errors(group, x),
                                 yerr=_interval_errors(group, y), fmt=markers[lr], color=palette[method], ms=6,
                                 elinewidth=0.8, capsize=2, alpha=0.9, zorder=3)
            handles.setdefault(f"{method}, LR {display_lr(lr)}", artist)
        if base_marker:
            b = table[(table["model"] == model) & (table["method"] == "base")]
            handles["base"] = ax.errorbar(b[x], b[y], xerr=_interval_errors(b, x), yerr=_interval_errors(b, y),
                                          fmt="*", ms=14, color="black", elinewidth=0.8, capsize=2, zorder=5)
        if front:
            draw_pareto_front(ax, table[table["model"] == model], x, y, lower_x_better=lower_x_better)
        if reference_lines:
            ax.axhline(0, color="grey", lw=0.8, zorder=1)
            ax.axvline(0, color="grey", lw=0.8, zorder=1)
        ax.set_title(model)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    save_figure(fig, out_png)


DOMAIN_LOSS_LABEL = "domain loss (nats/token; lower is better)"


def has_domain_score(table: pd.DataFrame) -> bool:
    """Whether the aggregated table has a domain score (it has none for a domain measured by its loss only)."""
    return "domain" in table and table["domain"].notna().any()


def tradeoff_plot(table: pd.DataFrame, out_png: str) -> None:
    """General average against domain score: one point per cell, one panel per model, the base model a star;
    95 % intervals on both axes. A table without a domain score (a TRL-format domain without domain.eval) puts
    the domain loss on the domain axis instead (lower is better; the Pareto front minimises it)."""
    if has_domain_score(table):
        _cell_panels(table, "domain", "general_avg", out_png, "domain score (accuracy)", "general average (accuracy)",
                     base_marker=True, front=True)
    else:
        _cell_panels(table, "domain_loss", "general_avg", out_png, DOMAIN_LOSS_LABEL, "general average (accuracy)",
                     base_marker=True, front=True, lower_x_better=True)


def loss_forgetting_plot(table: pd.DataFrame, out_png: str) -> None:
    """The low-variance view: Δ domain test loss (left = learnt) against forgetting (Δ bits per byte of the
    general text; down = kept), one point per cell with 95 % paired intervals on both axes."""
    _cell_panels(table, "delta_domain_loss", "forgetting", out_png,
                 "Δ domain test loss vs base (nats/token; < 0: learnt)",
                 "forgetting: Δ general-text bpb vs base (> 0: forgot)", base_marker=False, front=False,
                 reference_lines=True)


def token_probability_plot(hist: pd.DataFrame, out_png: str) -> None:
    """Histogram of θ₀'s probability of each response token, one bar series per model (from the token table)."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sns.barplot(data=hist, x="prob", y="share", hue="model", ax=ax, native_scale=True, width=0.9)
    ax.set_xlabel("probability under the pre-trained model (bin lower edge)")
    ax.set_ylabel("share of response tokens")
    save_figure(fig, out_png)
