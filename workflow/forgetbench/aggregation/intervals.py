"""Confidence intervals from the evaluated items: a seeded, paired bootstrap.

Every model of a comparison is scored on the same items (each task's seeded subset is drawn once per
experiment), so one resample of the items serves every evaluation of a model: the difference of two cells is
computed on the same resampled items, which is the paired bootstrap, and its interval is much narrower than
the two cells' own intervals would suggest. Per resample:

- a task's score is Σ num / Σ den over the resampled items: `num` is the item's metric and `den` 1 for an
  accuracy, `num` −log-likelihood and `den` the item's bytes (bits per byte, over ln 2) or tokens (the
  per-token loss) for the losses — a ratio of sums, as lm-eval aggregates them; items are resampled within
  each lm-eval leaf task (strata), so a group task keeps its composition;
- a group task (items of several leaves) is scored as lm-eval aggregates it: the ratio of sums over all its
  items when lm-eval weights its leaves by size (`weight_by_size: true`, e.g. mmlu), else the weighted mean
  of its leaves' scores, with the weights of the task's `leaf_weights` in metrics.json ({leaf: weight}, as
  the evaluation records them) or, without them, equal weights where that and not the pooled score gives
  the reported score (`weight_by_size: false`); each resample computes the same statistic;
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
    """One task's items of one evaluation: the (leaf, doc id) keys, numerators and denominators, and for a
    group that lm-eval scores as a weighted mean of its leaves' scores the leaves' weights (None: the ratio of
    sums over all items, which is also lm-eval's size-weighted group score)."""

    keys: list[tuple[str, int]]
    num: np.ndarray
    den: np.ndarray
    leaf_weights: dict[str, float] | None = None

    @property
    def score(self) -> float:
        if self.leaf_weights is None:
            return float(self.num.sum() / self.den.sum())
        leaves = np.array([leaf for leaf, _ in self.keys])
        names = list(dict.fromkeys(leaves))
        weights = np.array([self.leaf_weights[leaf] for leaf in names], dtype=float)
        scores = np.array([self.num[leaves == leaf].sum() / self.den[leaves == leaf].sum() for leaf in names])
        return float((weights * scores).sum() / weights.sum())


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
        scores.leaf_weights = _leaf_weights(scores, metrics[task], path, task)
        if reported is not None and not _agrees(scores.score, reported):
            raise ValueError(f"{path}: task '{task}' scores {scores.score:.6g} from its {len(scores.keys)} items "
                             f"but {reported:.6g} in its metrics")
        out[task] = scores
    return out


def _agrees(recomputed: float, reported: float) -> bool:
    return math.isclose(recomputed, reported, rel_tol=1e-6, abs_tol=1e-9)


def _leaf_weights(scores: ItemScores, metrics: dict, path, task: str) -> dict[str, float] | None:
    """How the task's leaves make its score: the recorded `leaf_weights`, else None (ratio of sums over every item,
    lm-eval's size-weighted group score) unless only the unweighted mean of the leaves' scores gives the reported
    score (a group with `weight_by_size: false`)."""
    leaves = list(dict.fromkeys(leaf for leaf, _ in scores.keys))
    recorded = metrics.get("leaf_weights")
    if recorded is not None:
        if set(recorded) != set(leaves):
            raise ValueError(f"{path}: task '{task}' has items of leaves {', '.join(leaves)} but leaf_weights for "
                             f"{', '.join(sorted(recorded))}")
        return {leaf: float(recorded[leaf]) for leaf in leaves}
    reported = metrics.get("score")
    if len(leaves) < 2 or reported is None or _agrees(scores.score, reported):
        return None
    equal = {leaf: 1.0 for leaf in leaves}
    if _agrees(ItemScores(scores.keys, scores.num, scores.den, equal).score, reported):
        return equal
    return None


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
    # An evaluation whose leaves score alike gives the same score either way, so it names no weights (None); the
    # others must agree.
    named = {tuple(sorted(e.leaf_weights.items())) for e in present if e.leaf_weights is not None}
    if len(named) > 1:
        raise ValueError(f"{where}: evaluations weight the group's leaves differently ({sorted(named)})")
    weights = dict(named.pop()) if named else None
    leaves = np.array([leaf for leaf, _ in keys])
    counts = np.zeros((n_resamples, len(keys)))
    for leaf in dict.fromkeys(leaves):
        (columns,) = np.nonzero(leaves == leaf)
        counts[:, columns] = rng.multinomial(len(columns), np.full(len(columns), 1 / len(columns)), size=n_resamples)
    nan = np.full(len(keys), np.nan)
    num = np.stack([nan if e is None else e.num for e in evaluations])
    den = np.stack([nan if e is None else e.den for e in evaluations])
    with np.errstate(invalid="ignore", divide="ignore"):
        if weights is None:
            return (counts @ num.T) / (counts @ den.T)
        total = np.zeros((n_resamples, len(evaluations)))
        for leaf in dict.fromkeys(leaves):  # the weighted mean of the leaves' resampled scores
            columns = leaves == leaf
            total += weights[leaf] * (counts[:, columns] @ num[:, columns].T) / (counts[:, columns] @ den[:, columns].T)
        return total / sum(weights.values())


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
