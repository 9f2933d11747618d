"""DFT, dynamic fine-tuning (Wu et al., 2025, "On the Generalization of SFT: A Reinforcement Learning
Perspective with Reward Rectification"): each token's loss is multiplied by its own probability, detached:

    L = −Σₜ mₜ · sg(pₜ) · ℓₜ / Σₜ mₜ,   pₜ = exp(ℓₜ)

so tokens the model finds very unlikely barely move it. TRL calls this `loss_type="dft"`.
"""

from __future__ import annotations

from forgetbench.methods.base import Method
from forgetbench.methods.registry import register


def token_weights(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sg(pₜ) on response tokens, 0 elsewhere; `[batch, seq]`."""
    import torch
    return torch.exp(logprobs.detach()) * mask.to(logprobs.dtype)


@register
class DFT(Method):
    name = "dft"

    # Denominator: the step's response tokens.
    def loss_terms(self, token_logprobs, mask, *, model=None, batch=None, step=None):
        return -(token_weights(token_logprobs, mask) * token_logprobs).sum()
