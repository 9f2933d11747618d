"""Fit table and figures of the forgetting scaling study, made from tables alone (scaling.csv and the fit
table), never from models, so they can be redrawn without recomputing anything.

Laws from Kalajdzievski (2024), "Scaling Laws for Forgetting When Fine-Tuning Large Language Models"; the
domain-against-general view with its Pareto front follows Biderman et al. (2024), "LoRA Learns Less and Forgets
Less".
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from forgetbench.atomic import atomic_path, write_text  # noqa: E402
from forgetbench.aggregation.plots import draw_pareto_front, pareto_front, save_figure  # noqa: E402,F401
from forgetbench.scaling.fits import LinearFit, PowerLawFit, bootstrap, fit_linear, fit_power_law  # noqa: E402

REQUIRED = ("n_params", "step", "forgetting", "ft_loss")
STAT_COLUMNS = (
    "law", "parameter", "estimate", "ci_low", "ci_high", "ci", "r2", "rmse", "n", "n_boot", "n_failed",
)
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
            for name, value in fit.params.items():
                rows.append(
                    {
                        **group, "law": law, "parameter": name, "estimate": value,
                        "ci_low": result.ci_low[name], "ci_high": result.ci_high[name], "ci": ci, "r2": fit.r2,
                        "rmse": fit.rmse, "n": fit.n, "n_boot": n_boot, "n_failed": result.n_failed,
                    }
                )
    return pd.DataFrame(rows)


def _group_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in STAT_COLUMNS]


def _fits(table: pd.DataFrame) -> list[tuple[dict, LinearFit | None, PowerLawFit | None]]:
    """Fit objects rebuilt from the fit table (which may have been read back from CSV), per group."""
    out = []
    for group, part in _groups(table, _group_columns(table)):
        p = {law: dict(zip(g["parameter"], g["estimate"])) for law, g in part.groupby("law")}
        stats = {law: g.iloc[0] for law, g in part.groupby("law")}
        lin = pw = None
        if "linear" in p:
            s = stats["linear"]
            lin = LinearFit(p["linear"]["slope"], p["linear"]["intercept"], s["rmse"], s["r2"], int(s["n"]))
        if "power_law" in p:
            s, q = stats["power_law"], p["power_law"]
            pw = PowerLawFit(q["A"], q["alpha"], q["beta"], q["B"], s["rmse"], s["r2"], int(s["n"]))
        out.append((group, lin, pw))
    return out


def _select(df: pd.DataFrame, group: dict) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for k, v in group.items():
        if k in df.columns:
            mask &= (df[k] == v).to_numpy() if not pd.isna(v) else df[k].isna().to_numpy()
    return df[mask]


def _title(group: dict) -> str:
    return ", ".join(f"{v}" if k == "model" else f"{k}={v}" for k, v in group.items()) or "all cells"


# --- tables ---------------------------------------------------------------------------------------------

_TEX_PARAM = {
    "A": "$A$", "alpha": r"$\alpha$", "beta": r"$\beta$", "B": "$B$", "slope": "slope", "intercept": "intercept",
}


def _display(table: pd.DataFrame, latex: bool) -> pd.DataFrame:
    """Paper-shaped view: estimate with its CI in one cell, 4 significant digits."""
    fmt = "{:.4g}".format
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


def write_fit_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write the fit table atomically; the format follows the suffix: .csv (raw numbers), .md or .tex."""
    path = Path(path)
    if path.suffix == ".csv":
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
    elif path.suffix == ".md":
        write_text(path, fit_table_markdown(table))
    elif path.suffix == ".tex":
        write_text(path, fit_table_latex(table))
    else:
        raise ValueError(f"{path}: fit table format must be .csv, .md or .tex")


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


def plot_forgetting_vs_steps(scaling_df: pd.DataFrame, fits: pd.DataFrame, out_png: str | Path) -> None:
    """(a) Forgetting against update steps (log axis), one colour per N, the fitted power law as curves."""
    groups = _fits(fits)
    fig, axes = _panels(len(groups))
    for ax, (group, _, pw) in zip(axes, groups):
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
        ax.set_xlabel("update steps t")
        ax.set_ylabel("forgetting (Δ general CE)")
        ax.set_title(_title(group) + (f"  (power law R²={pw.r2:.3f})" if pw is not None else ""))
        ax.legend(fontsize=7, frameon=False)
    save_figure(fig, out_png)


def plot_forgetting_vs_ft_loss(scaling_df: pd.DataFrame, fits: pd.DataFrame, out_png: str | Path) -> None:
    """(b) Forgetting against fine-tuning loss, one colour per method, the fitted linear law as a line."""
    groups = _fits(fits)
    fig, axes = _panels(len(groups))
    for ax, (group, lin, _) in zip(axes, groups):
        part = _select(scaling_df, group)
        hue = "method" if "method" in part.columns else None
        sns.scatterplot(data=part, x="ft_loss", y="forgetting", hue=hue, s=22, alpha=0.75, ax=ax)
        if lin is not None:
            xs = np.linspace(part["ft_loss"].min(), part["ft_loss"].max(), 50)
            ax.plot(xs, lin.predict(xs), color="black", lw=1.4, label=f"linear fit (R²={lin.r2:.3f})")
        ax.set_xlabel("fine-tuning loss (domain test CE)")
        ax.set_ylabel("forgetting (Δ general CE)")
        ax.set_title(_title(group))
        ax.legend(fontsize=7, frameon=False)
    save_figure(fig, out_png)


def plot_observed_vs_predicted(scaling_df: pd.DataFrame, fits: pd.DataFrame, out_png: str | Path) -> None:
    """(c) Observed forgetting against the power law's prediction, with the identity line."""
    groups = [g for g in _fits(fits) if g[2] is not None]
    if not groups:
        raise ValueError("fit table has no power-law fit to plot")
    fig, axes = _panels(len(groups), width=4.0, height=4.0)
    for ax, (group, _, pw) in zip(axes, groups):
        part = _select(scaling_df, group)
        part = part[part["step"] > 0]
        predicted = pw.predict(part["n_params"], part["step"])
        colours = _n_palette(part["n_params"])
        ax.scatter(predicted, part["forgetting"], c=[colours[n] for n in part["n_params"]], s=18, alpha=0.75)
        lo = float(min(predicted.min(), part["forgetting"].min()))
        hi = float(max(predicted.max(), part["forgetting"].max()))
        ax.plot([lo, hi], [lo, hi], color="black", lw=1, ls="--")
        ax.set_xlabel("predicted forgetting (power law)")
        ax.set_ylabel("observed forgetting")
        ax.set_title(f"{_title(group)}  (R²={pw.r2:.3f}, RMSE={pw.rmse:.3g})")
    save_figure(fig, out_png)


def plot_domain_vs_general(
    scaling_df: pd.DataFrame, out_png: str | Path, x: str = "domain", y: str = "general_avg", by: str = "model"
) -> None:
    """(d) The "LoRA Learns Less and Forgets Less" view (Biderman et al., 2024): domain score against general
    score across training steps, one curve per method and LR (and per N where a method has several; seeds
    averaged), the Pareto front of all cells marked; one panel per model."""
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
        draw_pareto_front(ax, part, x, y)
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(y.replace("_", " "))
        ax.set_title(_title(group))
        ax.legend(fontsize=6, frameon=False)
    save_figure(fig, out_png)


def _curve_label(key: str, value) -> str:
    if key == "lr":
        return f"lr={value:g}"
    if key == "_n":
        return _n_label(value)
    return str(value)
