"""When a training run has diverged, so that its cell is recorded as `diverged` rather than `finished`.

A run diverges when a logged loss or gradient norm is not finite, or when a logged loss rises above
`training.divergence_factor` (default DEFAULT_FACTOR) times its starting level, the median of the first
BASELINE_STEPS logged losses. A loss that explodes (1.45 → 7,836 at learning rate 10) stays finite for many
steps, and a model trained that far is broken though nothing is NaN; a healthy run's loss rarely leaves its
starting level by more than a few times (the 51 logs of the default and its variants on the development
machine, LR up to 2e-4: at most 6.4x). Nothing here imports torch: the rule is plain arithmetic on the logged
records.
"""

from __future__ import annotations

import math
import statistics

DEFAULT_FACTOR = 10.0
BASELINE_STEPS = 3  # logged steps whose median loss is the run's starting level


def divergence_factor(training: dict) -> float | None:
    """The configured factor; null in the config turns the loss-level rule off (non-finite values still count)."""
    return training.get("divergence_factor", DEFAULT_FACTOR)


def baseline_loss(history: list[dict]) -> float | None:
    """The median of the first BASELINE_STEPS logged finite losses (fewer while fewer exist), None before any."""
    first = [r["loss"] for r in history[:BASELINE_STEPS] if _finite(r.get("loss"))]
    return statistics.median(first) if first else None


def divergence(record: dict, history: list[dict], factor: float | None = DEFAULT_FACTOR) -> dict | None:
    """Why the logged `record` is diverged, given the records logged before it, or None when it is not.

    The answer is what run.json records as `diverged_at`: the step, loss, gradient norm and the reason."""
    loss, grad_norm = record.get("loss"), record.get("grad_norm")
    found = {"step": record.get("step"), "loss": loss, "grad_norm": grad_norm}
    if not _finite(loss) or (grad_norm is not None and not _finite(grad_norm)):
        return {**found, "reason": f"loss {loss}, grad norm {grad_norm}: not finite"}
    start = baseline_loss(history)
    if factor is not None and start is not None and start > 0 and loss > factor * start:
        return {**found, "baseline_loss": start,
                "reason": f"loss {loss:.4g} above {factor:g}x the first logged steps' level {start:.4g} "
                          f"(training.divergence_factor)"}
    return None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
