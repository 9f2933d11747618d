"""FLOW (Sanyal et al., 2024, "Upweighting easy samples in fine-tuning mitigates forgetting").

Before training, each training sample i is scored once with the pre-trained model θ₀: Lᵢ = its mean token
loss (mean, not sum: not settled against the paper, kept with its reason below). Its weight is

    wᵢ = exp(−Lᵢ / τ),  τ = median of the Lᵢ (default),  normalised so the weights average 1 over the dataset,

fixed for the whole run (computed once per model × dataset by the `score_base` rule and shared by every LR
and seed). The training loss is Σᵢ wᵢ · Lᵢ(θ) / (samples in the optimizer step, over every accumulated
micro-batch and process), Lᵢ(θ) the sample's mean token loss.

Mean or sum: the paper's abstract (ICML 2025, proceedings.mlr.press/v267/sanyal25a.html) says only "a sample
weighting scheme for the fine-tuning data solely based on the pre-trained model's losses"; its body and its code
(github.com/sanyalsunny111/FLOW_finetuning) could not be read from here (2026-12). The mean keeps a long response
from dominating τ = the median; a sum would scale each Lᵢ with its length.
"""

from __future__ import annotations

from forgetbench.methods.base import Method
from forgetbench.methods.registry import register


def sample_weights(losses: torch.Tensor, tau: float | None = None) -> torch.Tensor:
    """exp(−Lᵢ/τ) normalised to mean 1 over `losses` `[n_samples]`; τ = median of the losses when None."""
    import torch
    losses = losses.detach().double()
    if losses.numel() == 0:
        raise ValueError("FLOW needs at least one sample loss")
    if not torch.isfinite(losses).all():
        raise ValueError("FLOW sample losses must be finite")
    if tau is None:
        tau = float(losses.median())
    tau = max(float(tau), 1e-6)
    # Subtracting the minimum keeps exp() in range; the constant cancels in the normalisation.
    raw = torch.exp(-(losses - losses.min()) / tau)
    return (raw / raw.mean()).float()


def per_sample_loss(token_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean token loss of each sample `[batch]` (0 for a sample without response tokens)."""
    mask = mask.to(token_logprobs.dtype)
    return -(token_logprobs * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


@register
class FLOW(Method):
    name = "flow"
    needs_base_scores = True
    hparams_schema = {
        "tau": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None,
                "description": "temperature; null = median sample loss under the pre-trained model"},
    }

    # Denominator: the step's samples. Each sample's weight travels with it in the batch (`sample_weight`).
    unit = "samples"

    def loss_terms(self, token_logprobs, mask, *, model=None, batch=None, step=None):
        if batch is None or "sample_weight" not in batch:
            raise ValueError("FLOW needs a `sample_weight` per sample: train with the `score_base` rule's output")
        return (batch["sample_weight"].to(token_logprobs.dtype) * per_sample_loss(token_logprobs, mask)).sum()
