"""Fit table and figures of the forgetting scaling study, made from tables alone (scaling.csv and the fit
table), never from models, so they can be redrawn without recomputing anything.

Laws from Kalajdzievski (2024), "Scaling Laws for Forgetting When Fine-Tuning Large Language Models"; the
domain-against-general view with its Pareto front follows Biderman et al. (2024), "LoRA Learns Less and Forgets
Less".
"""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from forgetbench.atomic import atomic_path, write_text  # noqa: E402
from forgetbench.aggregation.html import table_html  # noqa: E402
from forgetbench.aggregation.plots import (  # noqa: E402,F401
    draw_pareto_front,
    has_domain_score,
    pareto_front,
    save_figure,
)
from forgetbench.scaling.fits import (  # noqa: E402
    ALPHA_BOUNDS,
    BETA_BOUNDS,
    LinearFit,
    PowerLawFit,
    bootstrap,
    fit_linear,
    fit_power_law,
    holdout_check,
)

REQUIRED = ("n_params", "step", "forgetting", "ft_loss")
STAT_COLUMNS = (
    "law", "parameter", "estimate", "ci_low", "ci_high", "ci", "r2", "rmse", "n", "n_boot", "n_failed", "flag",
    "holdout", "holdout_split", "holdout_threshold", "holdout_mae", "holdout_rel_error",
)
# Distinct values a law needs before its fit says anything: the power law's exponent of t (α) trades off
# against its offset B through two steps per N, and β against A through two N; the line needs a third point
# to have a residual.
NEEDS_DISTINCT = {"linear": {"ft_loss": 3}, "power_law": {"n_params": 3, "step": 3}}
HOLDOUT_LAW = "power_law_holdout"  # rows of the fit table holding the held-out fit's parameters, for the plots
LAW_FORMS = {"linear": "F = intercept + slope·L_ft", "power_law": "F = A·(N^β·t)^α + B"}


def _groups(df: pd.DataFrame, by: Sequence[str]) -> list[tuple[dict, pd.DataFrame]]:
    by = [c for c in by if c in df.columns]
    if not by:
        return [({}, df)]
    return [(dict(zip(by, key)), part) for key, part in df.groupby(by, sort=True, dropna=False)]


def fit_table(
    scaling_df: pd.DataFrame,
    by: Sequence[str] = ("model",),
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    robust: bool | str = False,
) -> pd.DataFrame:
    """One row per group (`by`, default per model), law and parameter: estimate, bootstrap percentile CI
    (ci_low, ci_high at level ci), r2, rmse, n, n_boot and n_failed (refits that failed). The power law uses the
    rows with step > 0 only (a step-0 row is the base model, where log t is undefined); the linear law uses
    every row. A group's degenerate data raises ValueError prefixed with the group, e.g. "model=x: ..."."""
    missing = [c for c in REQUIRED if c not in scaling_df.columns]
    if missing:
        raise ValueError(f"scaling table lacks column(s): {', '.join(missing)}")
    rows = []
    for group, part in _groups(scaling_df, by):
        label = ", ".join(f"{k}={v}" for k, v in group.items()) or "all rows"
        trained = part[part["step"] > 0]
        jobs = [
            ("linear", fit_linear, {"ft_loss": part["ft_loss"], "forgetting": part["forgetting"]}),
            (
                "power_law",
                functools.partial(fit_power_law, robust=robust),
                {"n_params": trained["n_params"], "steps": trained["step"], "forgetting": trained["forgetting"]},
            ),
        ]
        for law, fit_fn, data in jobs:
            try:
                result = bootstrap(fit_fn, data, n_boot=n_boot, seed=seed, ci=ci)
            except ValueError as err:
                raise ValueError(f"{label}: {err}") from None
            fit = result.estimate
            columns = {"ft_loss": part["ft_loss"], "n_params": trained["n_params"], "step": trained["step"]}
            flags = [f"underdetermined ({columns[c].nunique()} distinct {c}; needs {k})"
                     for c, k in NEEDS_DISTINCT[law].items() if columns[c].nunique() < k]
            flags += _bound_flags(law, result, trained["forgetting"])
            held = _holdout(trained, robust) if law == "power_law" else {}
            flags += _holdout_flags(held, trained["forgetting"])
            for name, value in fit.params.items():
                rows.append(
                    {
                        **group, "law": law, "parameter": name, "estimate": value,
                        "ci_low": result.ci_low[name], "ci_high": result.ci_high[name], "ci": ci, "r2": fit.r2,
                        "rmse": fit.rmse, "n": fit.n, "n_boot": n_boot, "n_failed": result.n_failed,
                        "flag": "; ".join(flags), **{k: v for k, v in held.items() if k != "fit"},
                    }
                )
            if held.get("fit") is not None:
                rows += [{**group, "law": HOLDOUT_LAW, "parameter": name, "estimate": value, "ci": ci,
                          "r2": held["fit"].r2, "rmse": held["fit"].rmse, "n": held["fit"].n,
                          **{k: v for k, v in held.items() if k != "fit"}}
                         for name, value in held["fit"].params.items()]
    return pd.DataFrame(rows)


def _bound_flags(law: str, result, forgetting: pd.Series) -> list[str]:
    """A parameter whose bootstrap interval reaches the bound the fit imposes is not estimated by the data."""
    if law != "power_law":
        return []
    bounds = {"alpha": ALPHA_BOUNDS, "beta": BETA_BOUNDS, "B": (-np.inf, float(forgetting.max()))}
    flags = []
    for name, (low, high) in bounds.items():
        width = (high - low) if np.isfinite(high - low) else max(abs(high), 1.0)
        if result.ci_low[name] <= low + 1e-3 * width or result.ci_high[name] >= high - 1e-3 * width:
            flags.append(f"CI of {name} reaches its bound")
    return flags


def _holdout_flags(held: dict, forgetting: pd.Series) -> list[str]:
    """A law that extrapolates worse than the spread of what it predicts (its held-out mean absolute error above
    the standard deviation of the observed forgetting) predicts no better than their mean."""
    mae, spread = held.get("holdout_mae", np.nan), float(forgetting.std(ddof=0))
    if np.isfinite(mae) and mae > spread:
        return [f"held-out error {mae:.3g} above the observed spread {spread:.3g}"]
    return []


def _holdout(trained: pd.DataFrame, robust) -> dict:
    """The power law's extrapolation check: fit on the smaller N (else the earlier steps), predict the rest."""
    reasons = []
    for split_by in ("n_params", "step"):
        try:
            result = holdout_check(trained["n_params"], trained["step"], trained["forgetting"], split_by=split_by,
                                   robust=robust)
        except ValueError as err:
            reasons.append(f"{split_by}: {err}")
            continue
        return {"fit": result.fit, "holdout": f"fit on {split_by} <= {result.threshold:g} ({result.n_train} cells), "
                f"predicts {result.n_test}", "holdout_split": split_by, "holdout_threshold": result.threshold,
                "holdout_mae": result.mae, "holdout_rel_error": result.rel_error}
    return {"fit": None, "holdout": "not possible: " + "; ".join(reasons), "holdout_split": None,
            "holdout_threshold": np.nan, "holdout_mae": np.nan, "holdout_rel_error": np.nan}


def _group_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in STAT_COLUMNS]


def _fits(table: pd.DataFrame) -> list[tuple[dict, LinearFit | None, PowerLawFit | None]]:
    """Fit objects rebuilt from the fit table (which may have been read back from CSV), per group."""
    out = []
    for group, part in _groups(table, _group_columns(table)):
        p = {law: dict(zip(g["parameter"], g["estimate"])) for law, g in part.groupby("law")}
        stats = {law: g.iloc[0] for law, g in part.groupby("law")}
        lin = pw = held = None
        if "linear" in p:
            s = stats["linear"]
            lin = LinearFit(p["linear"]["slope"], p["linear"]["intercept"], s["rmse"], s["r2"], int(s["n"]))
        if "power_law" in p:
            s, q = stats["power_law"], p["power_law"]
            pw = PowerLawFit(q["A"], q["alpha"], q["beta"], q["B"], s["rmse"], s["r2"], int(s["n"]))
        if HOLDOUT_LAW in p:
            s, q = stats[HOLDOUT_LAW], p[HOLDOUT_LAW]
            held = (PowerLawFit(q["A"], q["alpha"], q["beta"], q["B"], s["rmse"], s["r2"], int(s["n"])),
                    s["holdout_split"], float(s["holdout_threshold"]))
        out.append((group, lin, pw, held))
    return out


def _select(df: pd.DataFrame, group: dict) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for k, v in group.items():
        if k in df.columns:
            mask &= (df[k] == v).to_numpy() if not pd.isna(v) else df[k].isna().to_numpy()
    return df[mask]


def _title(group: dict) -> str:
    return ", ".join(f"{v}" if k == "model" else f"{k}={v}" for k, v in group.items()) or "all cells"


LAW_NAMES = {"linear": "linear law", "power_law": "power law"}


def fit_note(stats: pd.Series) -> str:
    """What a figure may say about one fit (a row of the fit table), so a figure never claims more than
    scaling_fits.md: its `flag` (computed once, in fit_table) comes first; an underdetermined fit shows no R²
    (its parameters trade off, so a high R² says nothing), another flagged fit shows R² and RMSE only after
    its flag, an unflagged one shows them plainly; then the held-out error, or "no held-out error"."""
    flag = "" if pd.isna(stats.get("flag")) else str(stats["flag"])
    name, fit = LAW_NAMES.get(stats["law"], stats["law"]), f"R²={stats['r2']:.3f}, RMSE={stats['rmse']:.3g}"
    if "underdetermined" in flag:
        note = f"{name}: {flag} — not a determined fit"
    elif flag:
        note = f"{name}: {flag} — {fit} of a flagged fit"
    else:
        note = f"{name}: {fit}"
    mae, rel = stats.get("holdout_mae", np.nan), stats.get("holdout_rel_error", np.nan)
    return note + ("; no held-out error" if pd.isna(mae) else f"; held-out MAE {mae:.3g} ({rel:.0%})")


def _fit_title(fits: pd.DataFrame, group: dict, law: str) -> str:
    """A panel's title: the group, then fit_note of its `law` fit wrapped to the panel's width."""
    rows = _select(fits, group)
    rows = rows[rows["law"] == law]
    if rows.empty:
        return _title(group)
    return _title(group) + "\n" + textwrap.fill(fit_note(rows.iloc[0]), 56, break_on_hyphens=False)


# --- tables ---------------------------------------------------------------------------------------------

_TEX_PARAM = {
    "A": "$A$", "alpha": r"$\alpha$", "beta": r"$\beta$", "B": "$B$", "slope": "slope", "intercept": "intercept",
}


def _display(table: pd.DataFrame, latex: bool) -> pd.DataFrame:
    """Paper-shaped view: estimate with its CI in one cell, 4 significant digits."""
    fmt = "{:.4g}".format
    table = table[table["law"] != HOLDOUT_LAW].reset_index(drop=True)
    groups = _group_columns(table)
    law_names = {"linear": "linear", "power_law": "power law"}
    out = table[groups].copy()
    if latex:
        for c in groups:
            out[c] = out[c].map(lambda v: str(v).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&"))
    out["law"] = table["law"].map(law_names)
    out["parameter"] = table["parameter"].map(_TEX_PARAM) if latex else table["parameter"]
    out["estimate"] = table["estimate"].map(fmt)
    level = f"{100 * table['ci'].iloc[0]:g}% CI" if "ci" in table.columns and len(table) else "CI"
    cis = [f"[{fmt(lo)}, {fmt(hi)}]" for lo, hi in zip(table["ci_low"], table["ci_high"])]
    out[level.replace("%", r"\%") if latex else level] = cis
    out["$R^2$" if latex else "R²"] = table["r2"].map("{:.3f}".format)
    out["RMSE"] = table["rmse"].map(fmt)
    out["n"] = table["n"].astype(int)
    if "holdout_mae" in table.columns:
        out["held-out MAE (rel.)"] = [
            "—" if pd.isna(mae) else f"{fmt(mae)} ({rel:.0%})".replace("%", r"\%" if latex else "%")
            for mae, rel in zip(table["holdout_mae"], table["holdout_rel_error"])]
        out["flag"] = table["flag"].fillna("").map(lambda f: f.replace("_", r"\_") if latex else f)
    return out


def fit_table_markdown(table: pd.DataFrame) -> str:
    return _display(table, latex=False).to_markdown(index=False) + "\n"


def fit_table_latex(table: pd.DataFrame, caption: str | None = None) -> str:
    body = _display(table, latex=True)
    caption = caption or (
        "Forgetting scaling-law fits (Kalajdzievski, 2024): linear law $F = a + b\\,L_{ft}$ and power law "
        "$F = A\\,(N^{\\beta} t)^{\\alpha} + B$; bootstrap percentile CIs."
    )
    return body.to_latex(index=False, escape=False, caption=caption, label="tab:scaling-fits")


def fit_table_html(table: pd.DataFrame) -> str:
    """The fit table as the report shows it: the Markdown view's columns on an HTML page."""
    return table_html(
        _display(table, latex=False), "Forgetting laws fitted per model (scaling study)",
        "Linear law F = intercept + slope·L_ft in the fine-tuning loss, and power law F = A·(N^β·t)^α + B in the "
        "fine-tuned parameters N and update steps t (Kalajdzievski, 2024); estimates with bootstrap percentile "
        "intervals over the checkpoints (n: checkpoints fitted). held-out MAE: the power law fitted on the smaller N "
        "(or earlier steps) and scored on the rest; flag: a fit that cannot be trusted.")


def write_fit_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write the fit table atomically; the format follows the suffix: .csv (raw numbers), .md, .tex or .html (the
    report's view)."""
    path = Path(path)
    if path.suffix == ".csv":
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
    elif path.suffix == ".md":
        write_text(path, fit_table_markdown(table))
    elif path.suffix == ".tex":
        write_text(path, fit_table_latex(table))
    elif path.suffix == ".html":
        write_text(path, fit_table_html(table))
    else:
        raise ValueError(f"{path}: fit table format must be .csv, .md, .tex or .html")


# --- Pareto front ---------------------------------------------------------------------------------------


# --- plots ----------------------------------------------------------------------------------------------


def _panels(n: int, width: float = 4.4, height: float = 3.8) -> tuple[plt.Figure, list[plt.Axes]]:
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, list(axes[0])


def _n_label(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"N={n / scale:.3g}{unit}"
    return f"N={n:g}"


def _n_palette(values: Sequence[float]) -> dict[float, tuple]:
    values = sorted(set(values))
    return dict(zip(values, sns.color_palette("viridis", len(values))))


FORGETTING_LABEL = "forgetting (Δ bpb of general text)"
LABELS = {"domain": "domain score (accuracy)", "general_avg": "general average (accuracy)",
          "retained": "−forgetting (−Δ bpb of general text; higher = less forgotten)",
          "ft_loss": "domain test loss (nats/token; lower is better)"}
LOWER_IS_BETTER = {"ft_loss"}  # axes the Pareto front minimises


def _plain_log_ticks(axis, values) -> None:
    """Log-axis ticks at the data's own values, printed as plain numbers (not 2×10⁰)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = sorted(set(float(v) for v in values))
    if len(ticks) > 8:
        ticks = list(np.geomspace(ticks[0], ticks[-1], 6).round(0))
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _few_ticks(axis) -> None:
    """At most 5 ticks: long labels such as -0.0025 would otherwise run into each other."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins=4))


def plot_forgetting_vs_steps(scaling_df: pd.DataFrame, fits: pd.DataFrame, out_png: str | Path) -> plt.Figure:
    """(a) Forgetting against update steps (log axis), one colour per N, the fitted power law as curves, its
    flags and statistics in the title (fit_note). Saved to out_png; the Figure is returned."""
    groups = _fits(fits)
    fig, axes = _panels(len(groups))
    for ax, (group, _, pw, _) in zip(axes, groups):
        part = _select(scaling_df, group)
        part = part[part["step"] > 0]
        colours = _n_palette(part["n_params"])
        steps = np.geomspace(part["step"].min(), part["step"].max(), 100)
        for n, colour in colours.items():
            rows = part[part["n_params"] == n]
            ax.scatter(rows["step"], rows["forgetting"], color=colour, s=18, alpha=0.7, label=_n_label(n))
            if pw is not None:
                ax.plot(steps, pw.predict(np.full_like(steps, n), steps), color=colour, lw=1.4)
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis, part["step"])
        ax.set_xlabel("update steps t")
        ax.set_ylabel(FORGETTING_LABEL)
        ax.set_title(_fit_title(fits, group, "power_law"), fontsize=8)
        ax.legend(fontsize=7, frameon=False)
    save_figure(fig, out_png)
    return fig


def plot_forgetting_vs_ft_loss(scaling_df: pd.DataFrame, fits: pd.DataFrame, out_png: str | Path) -> plt.Figure:
    """(b) Forgetting against fine-tuning loss, one colour per method, the fitted linear law as a line, its
    flags and statistics in the title (fit_note). Saved to out_png; the Figure is returned."""
    groups = _fits(fits)
    fig, axes = _panels(len(groups))
    for ax, (group, lin, _, _) in zip(axes, groups):
        part = _select(scaling_df, group)
        hue = "method" if "method" in part.columns else None
        sns.scatterplot(data=part, x="ft_loss", y="forgetting", hue=hue, s=22, alpha=0.75, ax=ax)
        if lin is not None:
            xs = np.linspace(part["ft_loss"].min(), part["ft_loss"].max(), 50)
            ax.plot(xs, lin.predict(xs), color="black", lw=1.4, label="linear fit (see title)")
        ax.set_xlabel("fine-tuning loss (domain test loss, nats/token)")
        ax.set_ylabel(FORGETTING_LABEL)
        _few_ticks(ax.xaxis)
        ax.set_title(_fit_title(fits, group, "linear"), fontsize=8)
        ax.legend(fontsize=7, frameon=False)
    save_figure(fig, out_png)
    return fig


def plot_observed_vs_predicted(scaling_df: pd.DataFrame, fits: pd.DataFrame, out_png: str | Path) -> plt.Figure:
    """(c) Observed forgetting against the power law's prediction, with the identity line, the fit's flags,
    statistics and held-out error in the title (fit_note). Saved to out_png; the Figure is returned."""
    groups = [g for g in _fits(fits) if g[2] is not None]
    if not groups:
        raise ValueError("fit table has no power-law fit to plot")
    fig, axes = _panels(len(groups), width=4.0, height=4.0)
    for ax, (group, _, pw, held) in zip(axes, groups):
        part = _select(scaling_df, group)
        part = part[part["step"] > 0]
        predicted = pw.predict(part["n_params"], part["step"])
        colours = _n_palette(part["n_params"])
        ax.scatter(predicted, part["forgetting"], c=[colours[n] for n in part["n_params"]], s=18, alpha=0.75,
                   label="fit on all cells")
        lo = float(min(predicted.min(), part["forgetting"].min()))
        hi = float(max(predicted.max(), part["forgetting"].max()))
        if held is not None:
            # The extrapolation check: cells beyond the split, predicted by a fit that never saw them.
            fit, split_by, threshold = held
            out = part[part[split_by] > threshold]
            guess = fit.predict(out["n_params"], out["step"])
            name = "N" if split_by == "n_params" else "t"
            ax.scatter(guess, out["forgetting"], facecolors="none", edgecolors="crimson", s=46, lw=1.2,
                       label=f"held out: {name} > {threshold:g}, fit on the rest")
            lo, hi = min(lo, float(guess.min())), max(hi, float(guess.max()))
        ax.plot([lo, hi], [lo, hi], color="black", lw=1, ls="--")
        ax.set_xlabel("predicted forgetting (power law, Δ bpb)")
        ax.set_ylabel("observed forgetting (Δ bpb)")
        _few_ticks(ax.xaxis)
        ax.legend(fontsize=7, frameon=False)
        ax.set_title(_fit_title(fits, group, "power_law"), fontsize=8)
    save_figure(fig, out_png)
    return fig


def plot_domain_vs_general(
    scaling_df: pd.DataFrame, out_png: str | Path, x: str = "domain", y: str = "general_avg", by: str = "model"
) -> None:
    """(d) The "LoRA Learns Less and Forgets Less" view (Biderman et al., 2024): domain score against general
    score across training steps, one curve per method and LR (and per N where a method has several; seeds
    averaged), the Pareto front of all cells marked (minimising x where it is a loss, LOWER_IS_BETTER); one panel
    per model."""
    missing = [c for c in (x, y, "step") if c not in scaling_df.columns]
    if missing:
        raise ValueError(f"scaling table lacks column(s) for the trade-off plot: {', '.join(missing)}")
    groups = _groups(scaling_df, [by])
    fig, axes = _panels(len(groups), width=5.0, height=4.2)
    for ax, (group, part) in zip(axes, groups):
        keys = [c for c in ("method", "lr") if c in part.columns]
        if "n_params" in part.columns and "method" in part.columns:
            several = part.groupby("method")["n_params"].nunique() > 1
            part = part.assign(_n=np.where(part["method"].map(several), part["n_params"], np.nan))
            keys.append("_n")
        ax.scatter(part[x], part[y], s=8, color="0.7", alpha=0.5, zorder=1)
        curves = part.groupby(keys, dropna=False, sort=True) if keys else [((), part)]
        palette = iter(sns.color_palette("tab10", n_colors=max(len(curves), 1)))
        for key, curve in curves:
            key = key if isinstance(key, tuple) else (key,)
            mean = curve.groupby("step")[[x, y]].mean().sort_index()
            label = " ".join(_curve_label(k, v) for k, v in zip(keys, key) if not pd.isna(v))
            ax.plot(mean[x], mean[y], marker="o", ms=3, lw=1.3, color=next(palette), label=label, zorder=3)
        draw_pareto_front(ax, part, x, y, lower_x_better=x in LOWER_IS_BETTER)
        ax.set_xlabel(LABELS.get(x, x.replace("_", " ")))
        ax.set_ylabel(LABELS.get(y, y.replace("_", " ")))
        _few_ticks(ax.xaxis)
        ax.set_title(_title(group))
        ax.legend(fontsize=6, frameon=False)
    save_figure(fig, out_png)


def learning_vs_forgetting_axes(scaling_df: pd.DataFrame) -> tuple[str, str]:
    """The (x, y) columns of the learning-vs-forgetting view: the domain score, or without one (a domain measured
    by its loss only) the domain test loss; the general average, or without general benchmarks at the
    checkpoints the negated forgetting (`retained`)."""
    x = "domain" if has_domain_score(scaling_df) else "ft_loss"
    y = "general_avg" if "general_avg" in scaling_df and scaling_df["general_avg"].notna().any() else "retained"
    return x, y


def plot_learning_vs_forgetting(scaling_df: pd.DataFrame, out_png: str | Path) -> None:
    """(d) on the axes the scaling table has (learning_vs_forgetting_axes)."""
    x, y = learning_vs_forgetting_axes(scaling_df)
    if y == "retained":
        scaling_df = scaling_df.assign(retained=-scaling_df["forgetting"])
    plot_domain_vs_general(scaling_df, out_png, x=x, y=y)


def _curve_label(key: str, value) -> str:
    if key == "lr":
        return f"lr={value:g}"
    if key == "_n":
        return _n_label(value)
    return str(value)
