"""Confidence intervals from the evaluated items: a seeded, paired bootstrap.

Every model of a comparison is scored on the same items (each task's seeded subset is drawn once per
experiment), so one resample of the items serves every evaluation of a model: the difference of two cells is
computed on the same resampled items, which is the paired bootstrap, and its interval is much narrower than
the two cells' own intervals would suggest. Per resample:

- a task's score is Σ num / Σ den over the resampled items: `num` is the item's metric and `den` 1 for an
  accuracy, `num` −log-likelihood and `den` the item's bytes (bits per byte, over ln 2) or tokens (the
  per-token loss) for the losses — a ratio of sums, as lm-eval aggregates them; items are resampled within
  each lm-eval leaf task (strata), so a group task keeps its composition;
- the general average is the mean of the general tasks' scores, each task resampled on its own;
- a method × LR with several seeds is the mean over seeds drawn with replacement (seeds resampled too).

Intervals are percentile intervals at 95 %. A difference is marked when its interval excludes 0, or, with
`correction="holm"`, when its Holm–Bonferroni-adjusted two-sided bootstrap p-value (twice the smaller share of
resampled differences on either side of 0) is below 0.05 across the comparisons of one table.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONFIDENCE = 0.95
FEW_ITEMS = 10  # below this an interval is printed but flagged: a percentile bootstrap of a handful is unreliable
# metric -> factor on Σ(−log-likelihood) / Σ(weight) for metrics logged per item as [log-likelihood, weight]
RATIO_METRICS = {"bits_per_byte": 1 / math.log(2), "nll_per_token": 1.0}


@dataclass
class ItemScores:
    """One task's items of one evaluation: the (leaf, doc id) keys, numerators and denominators."""

    keys: list[tuple[str, int]]
    num: np.ndarray
    den: np.ndarray

    @property
    def score(self) -> float:
        return float(self.num.sum() / self.den.sum())


def scores_from_pairs(values: list[tuple[tuple[str, int], object]], metric: str, where: str) -> ItemScores:
    """ItemScores of one task from its (key, value) pairs, as the runner wrote them (`forgetbench.evaluation.runner.item_scores`)."""
    keys, num, den = [], [], []
    for key, value in sorted(values):
        keys.append(key)
        if metric in RATIO_METRICS:
            loglikelihood, weight = value
            num.append(-loglikelihood * RATIO_METRICS[metric])
            den.append(weight)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            num.append(float(value))
            den.append(1.0)
        else:
            raise ValueError(f"{where}: item {key} of metric {metric} is {value!r}, not a number")
    return ItemScores(keys, np.asarray(num, dtype=float), np.asarray(den, dtype=float))


def read_items(path: str | Path, metrics: dict) -> dict[str, ItemScores]:
    """Task -> ItemScores of one evaluation's items file; each task's score recomputed from its items must equal
    the one lm-eval reported (else the items are not the ones scored, and every interval would be wrong)."""
    by_task: dict[str, list] = {}
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        by_task.setdefault(record["task"], []).append(((record["leaf"], record["doc_id"]), record["value"]))
    out = {}
    for task, values in by_task.items():
        if task not in metrics:
            raise ValueError(f"{path}: items of task '{task}', which has no metrics")
        scores = scores_from_pairs(values, metrics[task]["metric"], str(path))
        reported = metrics[task]["score"]
        if reported is not None and not math.isclose(scores.score, reported, rel_tol=1e-6, abs_tol=1e-9):
            raise ValueError(f"{path}: task '{task}' scores {scores.score:.6g} from its {len(scores.keys)} items "
                             f"but {reported:.6g} in its metrics")
        out[task] = scores
    return out


def stable_rng(seed: int, *names: str) -> np.random.Generator:
    """A generator fixed by the seed and the names (not by Python's per-process string hash)."""
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def resampled_scores(evaluations: list[ItemScores | None], n_resamples: int, rng: np.random.Generator,
                     where: str) -> np.ndarray:
    """[n_resamples, evaluations] scores of one task, every evaluation on the same resampled items (NaN for an
    evaluation without items, e.g. a diverged cell)."""
    present = [e for e in evaluations if e is not None]
    if not present:
        return np.full((n_resamples, len(evaluations)), np.nan)
    keys = present[0].keys
    for e in present[1:]:
        if e.keys != keys:
            raise ValueError(f"{where}: evaluations were scored on different items ({len(e.keys)} vs {len(keys)}): "
                             "a paired comparison needs the same subset (same evaluation seed and limits)")
    leaves = np.array([leaf for leaf, _ in keys])
    counts = np.zeros((n_resamples, len(keys)))
    for leaf in dict.fromkeys(leaves):
        (columns,) = np.nonzero(leaves == leaf)
        counts[:, columns] = rng.multinomial(len(columns), np.full(len(columns), 1 / len(columns)), size=n_resamples)
    nan = np.full(len(keys), np.nan)
    num = np.stack([nan if e is None else e.num for e in evaluations])
    den = np.stack([nan if e is None else e.den for e in evaluations])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts @ num.T) / (counts @ den.T)


def resample_units(resampled: np.ndarray, units: list[list[int]], rng: np.random.Generator) -> np.ndarray:
    """[n_resamples, units]: each unit (the seeds of one method × LR, as evaluation columns) is the mean of its
    seeds, the seeds drawn with replacement in every resample; `resampled` may have a leading quantity axis
    ([quantities, n_resamples, evaluations]), all quantities using the same seed draws."""
    n = resampled.shape[-2]
    out = np.empty(resampled.shape[:-1] + (len(units),))
    for u, columns in enumerate(units):
        columns = np.asarray(columns)
        if len(columns) == 1:
            out[..., u] = resampled[..., columns[0]]
            continue
        drawn = columns[rng.integers(0, len(columns), size=(n, len(columns)))]  # [n, seeds]
        out[..., u] = np.take_along_axis(resampled, np.broadcast_to(drawn, resampled.shape[:-1] + drawn.shape[-1:]),
                                         axis=-1).mean(axis=-1)
    return out


def interval(resampled: np.ndarray) -> tuple[float, float]:
    """Percentile interval of a resampled quantity (NaN when any resample is NaN)."""
    if np.isnan(resampled).any():
        return math.nan, math.nan
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return float(low), float(high)


def p_value(resampled_difference: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a difference against 0 (ties count on both sides)."""
    if np.isnan(resampled_difference).any():
        return math.nan
    below, above = (resampled_difference <= 0).mean(), (resampled_difference >= 0).mean()
    return float(min(1.0, 2 * min(below, above)))


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni-adjusted p-values (NaN stays NaN and is not counted)."""
    valid = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(valid)):
        running = max(running, min(1.0, (len(valid) - rank) * p))
        adjusted[i] = running
    return adjusted


def marks(low: list[float], high: list[float], p_values: list[float], correction: str | None) -> list[bool]:
    """Which differences are marked: interval excluding 0, or Holm-adjusted p < 1 − CONFIDENCE."""
    if correction == "holm":
        return [not math.isnan(p) and p < 1 - CONFIDENCE for p in holm(p_values)]
    if correction is not None:
        raise ValueError(f"unknown correction {correction!r}: use holm or none")
    return [lo > 0 or hi < 0 for lo, hi in zip(low, high)]
