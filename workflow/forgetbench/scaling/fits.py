"""Fits of the forgetting scaling laws of Kalajdzievski (2024), "Scaling Laws for Forgetting When Fine-Tuning
Large Language Models" (arXiv:2401.05605), with bootstrap confidence intervals and an extrapolation check.

Two laws, both on the tidy scaling table (one row per evaluated checkpoint):

- linear: forgetting is linear in the fine-tuning loss, F = intercept + slope·L_ft (the paper's inverse
  relation, F = a − b·L_ft, so a good fit has slope = −b < 0);
- power law: forgetting is a shifted power law in the number of fine-tuned parameters N and update steps t,

      F(N, t) = A · (N^β · t)^α + B

  the form of the paper's power law in N and t (its Eq. for forgetting vs. parameters and steps).

What N and t are is settled by the paper's abstract (arxiv.org/html/2401.05605v1): forgetting "increases as a
shifted power law in the number of parameters fine-tuned and the number of update steps", so N = fine-tuned
(trainable) parameters and t = optimizer steps, as scaling/table.py counts them. Not settled: where the exponents
sit (A·(N^β·t)^α + B here, one exponent on the product and β on N) and the paper's fitted values; its body could
not be read from here (2026-12), so the form is kept with this reason. A third-party note cites "alpha_ft~0.04,
beta_ft~0.12" without the form: check against the paper's fit section before comparing exponents.

Degenerate input raises a plain ValueError with a one-line message (never ConfigError: this is data, not
configuration).
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

log = logging.getLogger(__name__)

POWER_LAW_PARAMS = ("A", "alpha", "beta", "B")
LINEAR_PARAMS = ("slope", "intercept")
# Bounds of the exponents: forgetting grows with t (α > 0, as the paper finds); β may be negative so that data
# where more parameters forget *less* are fitted honestly instead of being pinned at β = 0.
ALPHA_BOUNDS = (1e-3, 5.0)
BETA_BOUNDS = (-5.0, 5.0)
# Starting grid for (α, β); for each pair the model is linear in (A, B), so each start is one lstsq.
_ALPHA_GRID = (0.05, 0.1, 0.2, 0.35, 0.6, 1.0, 2.0)
_BETA_GRID = (-0.5, 0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
_N_STARTS = 3
_EXP_CLIP = 700.0  # keeps exp() finite while the optimiser explores extreme exponents


def _robust_loss(robust: bool | str) -> str:
    if robust is False or robust is None:
        return "linear"
    if robust is True:
        return "soft_l1"
    if robust in ("soft_l1", "huber", "cauchy", "arctan"):
        return str(robust)
    raise ValueError(f"robust must be True/False or one of soft_l1, huber, cauchy, arctan, got {robust!r}")


def _check_inputs(
    law: str, min_points: int, response: str, columns: Mapping[str, ArrayLike], positive: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """Float arrays of `columns` after the degenerate-input checks; the first column failing raises."""
    arrays = {name: np.asarray(values, dtype=float).ravel() for name, values in columns.items()}
    lengths = {name: a.size for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{law}: columns have different lengths: {lengths}")
    n = next(iter(lengths.values()))
    for name, a in arrays.items():
        bad = int((~np.isfinite(a)).sum())
        if bad:
            raise ValueError(f"{law}: column '{name}' has {bad} NaN/inf value{'s' if bad != 1 else ''} (of {n})")
    if n < min_points:
        raise ValueError(f"{law} needs at least {min_points} points, got {n}")
    for name in positive:
        bad = int((arrays[name] <= 0).sum())
        if bad:
            raise ValueError(
                f"{law}: column '{name}' must be > 0, got {bad} non-positive value{'s' if bad != 1 else ''} "
                f"(min {arrays[name].min():g})"
            )
    for name, a in arrays.items():
        if np.ptp(a) <= 1e-12 * max(1.0, float(np.abs(a).max())):
            role = "response" if name == response else "predictor"
            raise ValueError(f"{law}: column '{name}' is constant (zero variance in the {role})")
    return arrays


def _goodness(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    resid = y - pred
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return float(np.sqrt(np.mean(resid**2))), 1.0 - float((resid**2).sum()) / ss_tot


@dataclass(frozen=True)
class LinearFit:
    """F = intercept + slope·L_ft; rmse and r2 on the plain residuals, n points."""

    slope: float
    intercept: float
    rmse: float
    r2: float
    n: int

    @property
    def params(self) -> dict[str, float]:
        return {"slope": self.slope, "intercept": self.intercept}

    def predict(self, ft_loss: ArrayLike) -> np.ndarray:
        return self.intercept + self.slope * np.asarray(ft_loss, dtype=float)


@dataclass(frozen=True)
class PowerLawFit:
    """F(N, t) = A·(N^β·t)^α + B; rmse and r2 on the plain residuals (also for a robust fit), n points."""

    A: float
    alpha: float
    beta: float
    B: float
    rmse: float
    r2: float
    n: int
    loss: str = "linear"

    @property
    def params(self) -> dict[str, float]:
        return {"A": self.A, "alpha": self.alpha, "beta": self.beta, "B": self.B}

    def predict(self, n_params: ArrayLike, steps: ArrayLike) -> np.ndarray:
        log_term = self.alpha * (self.beta * np.log(np.asarray(n_params, float)) + np.log(np.asarray(steps, float)))
        return self.A * np.exp(np.clip(log_term, -_EXP_CLIP, _EXP_CLIP)) + self.B


def fit_linear(ft_loss: ArrayLike, forgetting: ArrayLike, robust: bool | str = False) -> LinearFit:
    """Least-squares line of forgetting on fine-tuning loss (Kalajdzievski 2024, the linear law)."""
    a = _check_inputs("linear law", 3, "forgetting", {"ft_loss": ft_loss, "forgetting": forgetting})
    x, y = a["ft_loss"], a["forgetting"]
    slope, intercept = np.polyfit(x, y, 1)
    loss = _robust_loss(robust)
    if loss != "linear":
        scale = _mad(y - (intercept + slope * x), y)
        res = least_squares(lambda p: p[1] + p[0] * x - y, [slope, intercept], loss=loss, f_scale=scale)
        slope, intercept = res.x
    rmse, r2 = _goodness(y, intercept + slope * x)
    return LinearFit(float(slope), float(intercept), rmse, r2, int(x.size))


def _mad(resid: np.ndarray, y: np.ndarray) -> float:
    """Robust residual scale (normal-consistent MAD), floored so a perfect start does not make f_scale zero."""
    mad = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    return max(mad, 1e-6 * float(np.std(y)), 1e-12)


def _grid_starts(x: np.ndarray, y: np.ndarray, f: np.ndarray) -> list[np.ndarray]:
    """Best (log A', α, β, B) starts: for fixed (α, β) the law is linear in (A', B), solved in closed form."""
    starts = []
    for alpha, beta in itertools.product(_ALPHA_GRID, _BETA_GRID):
        z = alpha * (beta * x + y)
        top = z.max()
        u = np.exp(z - top)  # scaled so the design stays well conditioned whatever the exponent
        du = u - u.mean()
        var = float(du @ du)
        if var <= 0:
            continue
        c = float(du @ f) / var  # simple regression of F on u: slope c = A'·exp(-top), intercept b = B
        b = float(f.mean() - c * u.mean())
        if not np.isfinite(c) or c <= 0:
            continue
        sse = float(((c * u + b - f) ** 2).sum())
        starts.append((sse, np.array([np.log(c) - top, alpha, beta, b])))
    starts.sort(key=lambda s: s[0])
    return [s for _, s in starts[:_N_STARTS]]


def fit_power_law(
    n_params: ArrayLike,
    steps: ArrayLike,
    forgetting: ArrayLike,
    robust: bool | str = False,
    f_scale: float | None = None,
) -> PowerLawFit:
    """Fit F(N, t) = A·(N^β·t)^α + B (Kalajdzievski 2024, arXiv:2401.05605; N and t as its abstract names them,
    the placement of the exponents not read: the module docstring).

    Solved with bounded `scipy.optimize.least_squares` in a log-space parametrisation: log N and log t are
    centred, and the fitted amplitude is log A' = log A + α(β·mean log N + mean log t), the size of the power
    term at the data's centre. That keeps the problem conditioned (raw A spans dozens of orders of magnitude
    with α and β) and A > 0 by construction; A is mapped back at the end.

    Bounds: α in [1e-3, 5], β in [-5, 5], log A' in [-100, 100], B in [min F − 10·s, max F] with
    s = max(range of F, |mean F|). Starts: the 3 best of a 7×7 (α, β) grid, each with (A', B) from linear least
    squares; the lowest-cost optimum wins. `robust` True/'soft_l1'/'huber' down-weights outliers (f_scale
    defaults to the MAD of the starting residuals). Needs at least 5 points, finite values, N > 0, t > 0, and
    variation in N, t and F.
    """
    a = _check_inputs(
        "power law", 5, "forgetting", {"n_params": n_params, "steps": steps, "forgetting": forgetting},
        positive=("n_params", "steps"),
    )
    loss = _robust_loss(robust)
    f = a["forgetting"]
    log_n, log_t = np.log(a["n_params"]), np.log(a["steps"])
    cn, ct = log_n.mean(), log_t.mean()
    x, y = log_n - cn, log_t - ct

    def power_term(p: np.ndarray) -> np.ndarray:
        return np.exp(np.clip(p[0] + p[1] * (p[2] * x + y), -_EXP_CLIP, _EXP_CLIP))

    def residuals(p: np.ndarray) -> np.ndarray:
        return power_term(p) + p[3] - f

    def jacobian(p: np.ndarray) -> np.ndarray:
        e = power_term(p)
        return np.column_stack([e, e * (p[2] * x + y), e * p[1] * x, np.ones_like(e)])

    s = max(float(np.ptp(f)), abs(float(f.mean())))
    lower = np.array([-100.0, ALPHA_BOUNDS[0], BETA_BOUNDS[0], f.min() - 10 * s])
    upper = np.array([100.0, ALPHA_BOUNDS[1], BETA_BOUNDS[1], f.max()])
    starts = _grid_starts(x, y, f) or [np.array([np.log(s), 0.5, 0.5, f.min() - s])]
    if loss != "linear" and f_scale is None:
        f_scale = _mad(residuals(starts[0]), f)
    best = None
    for p0 in starts:
        p0 = np.clip(p0, lower + 1e-9 * (upper - lower), upper - 1e-9 * (upper - lower))
        res = least_squares(
            residuals, p0, jac=jacobian, bounds=(lower, upper), loss=loss, f_scale=f_scale or 1.0,
            x_scale="jac", max_nfev=2000,
        )
        if best is None or res.cost < best.cost:
            best = res
    log_a_centre, alpha, beta, b = best.x
    rmse, r2 = _goodness(f, f + residuals(best.x))
    amplitude = float(np.exp(log_a_centre - alpha * (beta * cn + ct)))
    return PowerLawFit(amplitude, float(alpha), float(beta), float(b), rmse, r2, int(f.size), loss)


@dataclass
class BootstrapResult:
    """Point fit on all rows, percentile CIs per parameter, and the resamples whose refit failed."""

    estimate: Any
    ci: float
    ci_low: dict[str, float]
    ci_high: dict[str, float]
    n_boot: int
    n_failed: int
    failures: Counter = field(default_factory=Counter)
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)

    def table(self) -> pd.DataFrame:
        """One row per parameter: estimate, ci_low, ci_high."""
        return pd.DataFrame(
            [
                {"parameter": k, "estimate": v, "ci_low": self.ci_low[k], "ci_high": self.ci_high[k]}
                for k, v in self.estimate.params.items()
            ]
        )


def bootstrap(
    fit_fn: Callable[..., Any],
    data: Mapping[str, ArrayLike] | pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> BootstrapResult:
    """Nonparametric bootstrap over cells: resample rows with replacement, refit, percentile CIs.

    `data` maps fit_fn's keyword arguments to equal-length columns (a DataFrame's columns are used as is), e.g.
    ``bootstrap(fit_power_law, {"n_params": N, "steps": t, "forgetting": F})``; `fit_fn` returns an object with
    a `.params` dict (use functools.partial for options such as robust=True). The fit on all rows must succeed
    (its ValueError propagates); a resample whose refit raises is counted in `n_failed`, its message tallied in
    `failures`, and left out of the CIs, which are NaN when every resample failed.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    columns = {k: np.asarray(v) for k, v in data.items()}
    n = len(next(iter(columns.values())))
    estimate = fit_fn(**columns)
    names = list(estimate.params)
    rng = np.random.default_rng(seed)
    draws, failures = [], Counter()
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        try:
            fit = fit_fn(**{k: v[idx] for k, v in columns.items()})
            draws.append([fit.params[k] for k in names])
        # A resample can be degenerate (e.g. one N only) or fail to converge; that is a statistic, not a crash.
        except (ValueError, RuntimeError, FloatingPointError, ArithmeticError, np.linalg.LinAlgError) as err:
            failures[f"{type(err).__name__}: {err}"] += 1
    samples = pd.DataFrame(draws, columns=names, dtype=float)
    tail = 100 * (1 - ci) / 2
    if len(samples):
        low = dict(zip(names, np.percentile(samples.to_numpy(), tail, axis=0)))
        high = dict(zip(names, np.percentile(samples.to_numpy(), 100 - tail, axis=0)))
    else:
        low = high = dict.fromkeys(names, float("nan"))
    n_failed = sum(failures.values())
    if n_failed:
        log.warning("bootstrap: %d of %d refits failed; most common: %s", n_failed, n_boot, failures.most_common(1))
    return BootstrapResult(
        estimate, ci, {k: float(v) for k, v in low.items()}, {k: float(v) for k, v in high.items()},
        n_boot, n_failed, failures, samples,
    )


@dataclass
class HoldoutResult:
    """Fit on the cells with split variable <= threshold, errors on the others."""

    fit: PowerLawFit
    split_by: str
    threshold: float
    n_train: int
    n_test: int
    mae: float
    rmse: float
    rel_error: float  # MAE / mean |observed| on the held-out cells (stable when some forgetting is near 0)
    predictions: pd.DataFrame

    def summary(self) -> dict[str, float | int | str]:
        return {k: getattr(self, k) for k in ("split_by", "threshold", "n_train", "n_test", "mae", "rmse", "rel_error")}


def holdout_check(
    n_params: ArrayLike,
    steps: ArrayLike,
    forgetting: ArrayLike,
    split_by: str = "n_params",
    threshold: float | None = None,
    quantile: float = 0.5,
    robust: bool | str = False,
) -> HoldoutResult:
    """Extrapolation check of the power law: fit on the smaller N (split_by="n_params") or the earlier steps
    (split_by="step"), predict the rest. Without `threshold`, it is the `quantile` of the distinct values
    (rounded down to one of them), and training keeps the cells at or below it."""
    if split_by not in ("n_params", "step"):
        raise ValueError(f"split_by must be 'n_params' or 'step', got {split_by!r}")
    a = _check_inputs(
        "power law", 5, "forgetting", {"n_params": n_params, "steps": steps, "forgetting": forgetting},
        positive=("n_params", "steps"),
    )
    key = a["n_params"] if split_by == "n_params" else a["steps"]
    if threshold is None:
        if not 0 <= quantile < 1:
            raise ValueError(f"quantile must be in [0, 1), got {quantile}")
        threshold = float(np.quantile(np.unique(key), quantile, method="lower"))
    train = key <= threshold
    if train.all():
        raise ValueError(f"holdout: no cells with {split_by} > {threshold:g} to predict")
    try:
        fit = fit_power_law(a["n_params"][train], a["steps"][train], a["forgetting"][train], robust=robust)
    except ValueError as err:
        raise ValueError(f"holdout training split ({split_by} <= {threshold:g}): {err}") from None
    test = ~train
    observed = a["forgetting"][test]
    predicted = fit.predict(a["n_params"][test], a["steps"][test])
    err = predicted - observed
    mae = float(np.abs(err).mean())
    predictions = pd.DataFrame(
        {"n_params": a["n_params"][test], "step": a["steps"][test], "observed": observed, "predicted": predicted}
    )
    return HoldoutResult(
        fit, split_by, float(threshold), int(train.sum()), int(test.sum()), mae, float(np.sqrt(np.mean(err**2))),
        mae / float(np.abs(observed).mean()) if np.abs(observed).mean() > 0 else float("inf"), predictions,
    )
