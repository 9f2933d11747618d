"""TALR, token-adaptive loss reweighting (Lin et al., 2025, "SFT Doesn't Always Hurt General Capabilities",
arXiv 2509.20758).

A sparse set of tokens that the model finds very unlikely drives the updates that damage general ability, so
their loss is down-weighted (not dropped). The weights minimise Σₜ wₜ·(−ℓₜ) − τ·H(w) over the simplex of the
batch's response tokens, which gives the closed form

    wₜ = mₜ · exp(ℓₜ / τ) / Σₛ mₛ · exp(ℓₛ / τ)

computed from the current model at every step and detached; the loss is Σₜ wₜ · (−ℓₜ). τ = None takes the
median token loss of the batch (the paper's default); a number fixes it. Larger τ approaches plain SFT.
"The batch" is the optimizer step: with gradient accumulation or several processes, τ and the softmax's
normaliser are taken over the response tokens of every micro-batch and process of the step (the trainer
scores them in a gradient-free pass first, `step_statistics`), the set the other methods' token mean runs
over; the denominator is then 1, as the weights sum to 1 over the step.
[confirm] normalisation over the whole batch with weights summing to 1 (shared/docs/methods.md).
"""

from __future__ import annotations

from forgetbench.methods.base import Method
from forgetbench.methods.registry import register

MIN_TAU = 1e-6  # a batch whose median loss is 0 would otherwise divide by zero


def token_weights(logprobs: torch.Tensor, mask: torch.Tensor, tau: float | None = None,
                  log_normalizer: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax of ℓₜ/τ over the batch's response tokens (summing to 1), 0 on masked tokens; detached.
    An all-masked batch gets all-zero weights. With `log_normalizer` (log Σ exp(ℓ/τ) over a whole optimizer
    step, from `step_statistics`, which also gives that step's τ) the weights are this micro-batch's share of
    the step's softmax."""
    import torch

    # No host-device synchronisation (no float(), no `if tensor`): the GPU never waits for the CPU here.
    logprobs = logprobs.detach()
    mask = mask.bool()
    if tau is None:
        tau = (-logprobs).masked_fill(~mask, float("nan")).flatten().nanmedian()  # NaN when all is masked
    tau = torch.as_tensor(tau, dtype=logprobs.dtype, device=logprobs.device).clamp_min(MIN_TAU)
    scores = (logprobs / tau).masked_fill(~mask, float("-inf"))
    if log_normalizer is not None:
        return torch.exp(scores - log_normalizer.to(scores.dtype))
    weights = torch.softmax(scores.flatten(), dim=0).view_as(logprobs)
    return torch.nan_to_num(weights, nan=0.0)  # an all-masked batch: softmax of only -inf (or τ NaN)


def step_statistics(step_logprobs: torch.Tensor, tau: float | None = None) -> dict:
    """τ (the median token loss unless fixed) and log Σ exp(ℓ/τ) over every response token of an optimizer
    step, `step_logprobs` `[tokens]` (all micro-batches and processes)."""
    import torch

    logprobs = step_logprobs.detach()
    if tau is None:
        tau = (-logprobs).median() if logprobs.numel() else torch.tensor(float("nan"))
    tau = torch.as_tensor(tau, dtype=logprobs.dtype, device=logprobs.device).clamp_min(MIN_TAU)
    return {"tau": tau, "log_normalizer": torch.logsumexp(logprobs / tau, dim=0)}


@register
class TALR(Method):
    name = "talr"
    unit = "step"  # the weights sum to 1 over the optimizer step: nothing left to divide by
    needs_step_logprobs = True
    hparams_schema = {
        "tau": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None,
                "description": "temperature; null = median token loss of the batch"},
    }

    def step_statistics(self, step_logprobs):
        return step_statistics(step_logprobs, tau=self.hparams.get("tau"))

    def loss_terms(self, token_logprobs, mask, *, model=None, batch=None, step=None):
        if step is None:  # this micro-batch is the whole step
            weights = token_weights(token_logprobs, mask, tau=self.hparams.get("tau"))
        else:
            weights = token_weights(token_logprobs, mask, tau=step["tau"], log_normalizer=step["log_normalizer"])
        return -(weights * token_logprobs).sum()
