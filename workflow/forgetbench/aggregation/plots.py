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



DODGE_SHARE = 0.025  # per rank in its cluster a marker moves this share of its panel's x range: about its width
COINCIDE_NOTE = "points indistinguishable within their 95 % intervals"


def spread_ties(x: pd.Series, y: pd.Series, share: float = DODGE_SHARE, span: float | None = None,
                y_span: float | None = None) -> pd.Series:
    """x moved apart for markers that would cover each other, so five cells with the same scores do not draw one
    marker. A cluster is a single-linkage group of points each within `share` of the x span and of the y span of
    another member; its k members, ranked by x then table order (deterministic), move by (rank - (k-1)/2) · share
    · span, so two tied points end exactly share · span apart. `span` and `y_span` are the panel's ranges
    (default: those of x and y); a lone point does not move."""
    span, y_span = span or _span(x), y_span or _span(y)
    tol_x, tol_y = share * span, share * y_span
    offsets, position = pd.Series(0.0, index=x.index), {i: n for n, i in enumerate(x.index)}
    for members in _clusters(x, y, tol_x, tol_y):
        ranked = sorted(members, key=lambda i: (x[i], position[i]))
        for rank, i in enumerate(ranked):
            offsets[i] = (rank - (len(ranked) - 1) / 2) * share * span
    return x + offsets


def _span(values: pd.Series) -> float:
    """Range of the finite values; 1.0 where there is none (nothing to scale by)."""
    finite = values[np.isfinite(values.astype(float))]
    width = float(finite.max() - finite.min()) if len(finite) else 0.0
    return width if width > 0 else 1.0


def _clusters(x: pd.Series, y: pd.Series, tol_x: float, tol_y: float) -> list[list]:
    """Index groups linked by pairs within tol_x and tol_y of each other (union-find; panels hold tens of cells)."""
    parent = {i: i for i in x.index}

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in ((a, b) for n, a in enumerate(x.index) for b in x.index[n + 1:]):
        if abs(x[a] - x[b]) <= tol_x and abs(y[a] - y[b]) <= tol_y:
            parent[root(b)] = root(a)
    groups: dict = {}
    for i in x.index:
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def indistinguishable(frame: pd.DataFrame, x: str, y: str) -> bool:
    """Whether a panel's cells (`frame`: the fine-tuned cells; the base star is the reference, not compared)
    coincide within their intervals: at least two points with both values, and for
    every pair the intervals [c_lo, c_hi] overlap on both axes (c = x and c = y; a point without an interval is
    the zero-width interval at its value, as its bars draw it). Intervals on a line overlap pairwise exactly when
    they share a point, so each axis is one test: max of the lower ends <= min of the upper ends. Overlapping
    95 % intervals do not prove two cells equal (the tables' paired differences can still separate them); the
    figure says only that it cannot tell them apart."""
    drawn = frame[frame[x].notna() & frame[y].notna()]
    if len(drawn) < 2:
        return False
    for column in (x, y):
        low = drawn[f"{column}_lo"].fillna(drawn[column]).clip(upper=drawn[column])
        high = drawn[f"{column}_hi"].fillna(drawn[column]).clip(lower=drawn[column])
        if low.max() > high.min():
            return False
    return True


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
                 base_marker: bool, front: bool, reference_lines: bool = False,
                 lower_x_better: bool = False) -> plt.Figure:
    """One panel per model, one point per cell with its intervals on both axes, a shared legend; saved to
    `out_png` and returned, so tests can read what it shows."""
    cells = table[table["method"] != "base"]
    palette, markers = _styles(cells)
    models = list(dict.fromkeys(table["model"]))
    # Two panels a row at most, in seaborn's notebook type sizes: the HTML report shrinks a figure to the width
    # of its content pane (about 850-1000 px beside the sidebar), and a row of three panels in paper sizes left
    # tick labels of 7 px there.
    columns = min(PANELS_PER_ROW, len(models))
    rows = -(-len(models) // columns)
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    handles = {}
    for ax, model in zip(axes.flat, models):
        mine = cells[cells["model"] == model]
        drawn = table[(table["model"] == model) & (base_marker | (table["method"] != "base"))]
        spans = (_span(_with_intervals(drawn, x)), _span(_with_intervals(drawn, y)))
        _cell_points(ax, mine, x, y, palette, markers, handles, spans)
        if base_marker:
            b = table[(table["model"] == model) & (table["method"] == "base")]
            handles["base"] = ax.errorbar(b[x], b[y], xerr=_interval_errors(b, x), yerr=_interval_errors(b, y),
                                          fmt="*", ms=14, color="black", elinewidth=0.8, capsize=2, zorder=5)
        if front:
            draw_pareto_front(ax, table[table["model"] == model], x, y, lower_x_better=lower_x_better)
        if reference_lines:
            ax.axhline(0, color="grey", lw=0.8, zorder=1)
            ax.axvline(0, color="grey", lw=0.8, zorder=1)
        if indistinguishable(mine, x, y):
            ax.text(0.02, 0.98, COINCIDE_NOTE, transform=ax.transAxes, ha="left", va="top", fontsize=7, zorder=6,
                    bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6", "alpha": 0.9})
        ax.set_title(model)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    save_figure(fig, out_png)
    return fig


PANELS_PER_ROW = 2


def _with_intervals(frame: pd.DataFrame, column: str) -> pd.Series:
    """The values and interval ends of `column`: what the axis autoscales to (before its margins)."""
    return pd.concat([frame[column], frame[f"{column}_lo"], frame[f"{column}_hi"]])


def _cell_points(ax: plt.Axes, mine: pd.DataFrame, x: str, y: str, palette: dict, markers: dict,
                 handles: dict, spans: tuple[float, float]) -> None:
    """The cells of one panel. Markers that would cover each other are dodged along x (spread_ties, by
    DODGE_SHARE of the panel's x range with its intervals and the base, `spans`); the horizontal interval bar
    stays at the cell's true x, so its ends still read the interval off the axis, and the vertical bar moves
    with its marker (a horizontal move does not change what it says about y)."""
    from forgetbench.aggregation.table import display_lr

    shown_x = spread_ties(mine[x], mine[y], span=spans[0], y_span=spans[1])
    for (method, lr), group in mine.groupby(["method", "lr"], sort=True):
        style = {"color": palette[method], "elinewidth": 0.8, "capsize": 2, "alpha": 0.9, "zorder": 3}
        ax.errorbar(group[x], group[y], xerr=_interval_errors(group, x), fmt="none", **style)
        artist = ax.errorbar(shown_x[group.index], group[y], yerr=_interval_errors(group, y), fmt=markers[lr],
                             ms=6, **style)
        handles.setdefault(f"{method}, LR {display_lr(lr)}", artist)


DOMAIN_LOSS_LABEL = "domain loss (nats/token; lower is better)"


def has_domain_score(table: pd.DataFrame) -> bool:
    """Whether the aggregated table has a domain score (it has none for a domain measured by its loss only)."""
    return "domain" in table and table["domain"].notna().any()


def tradeoff_plot(table: pd.DataFrame, out_png: str) -> plt.Figure:
    """General average against domain score: one point per cell, one panel per model, the base model a star;
    95 % intervals on both axes. A table without a domain score (a TRL-format domain without domain.eval) puts
    the domain loss on the domain axis instead (lower is better; the Pareto front minimises it). Cells whose
    markers would cover each other are dodged along x by DODGE_SHARE (2.5 %) of the panel's x range per rank,
    their horizontal bars left at the true x (_cell_points); a panel whose cells coincide within their
    intervals says so (indistinguishable). Saved to out_png; the Figure is returned."""
    if has_domain_score(table):
        return _cell_panels(table, "domain", "general_avg", out_png, "domain score (accuracy)",
                            "general average (accuracy)", base_marker=True, front=True)
    return _cell_panels(table, "domain_loss", "general_avg", out_png, DOMAIN_LOSS_LABEL, "general average (accuracy)",
                        base_marker=True, front=True, lower_x_better=True)


def loss_forgetting_plot(table: pd.DataFrame, out_png: str) -> plt.Figure:
    """The low-variance view: Δ domain test loss (left = learnt) against forgetting (Δ bits per byte of the
    general text; down = kept), one point per cell with 95 % paired intervals on both axes; markers dodged and
    coinciding panels noted as in tradeoff_plot. Saved to out_png; the Figure is returned."""
    return _cell_panels(table, "delta_domain_loss", "forgetting", out_png,
                        # two lines each: on one, neighbouring panels' labels ran into each other
                        "Δ domain test loss vs base\n(nats/token; < 0: learnt)",
                        "forgetting: Δ general-text bpb\nvs base (> 0: forgot)", base_marker=False, front=False,
                        reference_lines=True)


def token_probability_plot(hist: pd.DataFrame, out_png: str) -> None:
    """Histogram of θ₀'s probability of each response token, one bar series per model (from the token table)."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sns.barplot(data=hist, x="prob", y="share", hue="model", ax=ax, native_scale=True, width=0.9)
    ax.set_xlabel("probability under the pre-trained model (bin lower edge)")
    ax.set_ylabel("share of response tokens")
    save_figure(fig, out_png)
