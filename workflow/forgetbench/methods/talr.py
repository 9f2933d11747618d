"""TALR, token-adaptive loss reweighting (Lin et al., 2025, "SFT Doesn't Always Hurt General Capabilities",
arXiv 2509.20758).

A sparse set of tokens that the model finds very unlikely drives the updates that damage general ability, so
their loss is down-weighted (not dropped). The weights minimise Σₜ wₜ·(−ℓₜ) − τ·H(w) over the simplex of the
batch's response tokens, which gives the closed form

    wₜ = mₜ · exp(ℓₜ / τ) / Σₛ mₛ · exp(ℓₛ / τ)

computed from the current model at every step and detached; the loss is Σₜ wₜ · (−ℓₜ). τ = None takes the
median token loss of the batch (the paper's default); a number fixes it. Larger τ approaches plain SFT.
[confirm] normalisation over the whole batch with weights summing to 1 (shared/docs/methods.md).
"""

from __future__ import annotations

from forgetbench.methods.base import Method
from forgetbench.methods.registry import register

MIN_TAU = 1e-6  # a batch whose median loss is 0 would otherwise divide by zero


def token_weights(logprobs: torch.Tensor, mask: torch.Tensor, tau: float | None = None) -> torch.Tensor:
    """Softmax of ℓₜ/τ over the batch's response tokens (summing to 1), 0 on masked tokens; detached.
    An all-masked batch gets all-zero weights."""
    import torch

    # No host-device synchronisation (no float(), no `if tensor`): the GPU never waits for the CPU here.
    logprobs = logprobs.detach()
    mask = mask.bool()
    if tau is None:
        tau = (-logprobs).masked_fill(~mask, float("nan")).flatten().nanmedian()  # NaN when all is masked
    tau = torch.as_tensor(tau, dtype=logprobs.dtype, device=logprobs.device).clamp_min(MIN_TAU)
    scores = (logprobs / tau).masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores.flatten(), dim=0).view_as(logprobs)
    return torch.nan_to_num(weights, nan=0.0)  # an all-masked batch: softmax of only -inf (or τ NaN)


@register
class TALR(Method):
    name = "talr"
    hparams_schema = {
        "tau": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None,
                "description": "temperature; null = median token loss of the batch"},
    }

    def loss(self, token_logprobs, mask, *, model=None, batch=None):
        weights = token_weights(token_logprobs, mask, tau=self.hparams.get("tau"))
        return -(weights * token_logprobs).sum()
