"""TALR, token-adaptive loss reweighting (Lin et al., 2025, "SFT Doesn't Always Hurt General Capabilities",
arXiv 2509.20758).

A sparse set of tokens that the model finds very unlikely drives the updates that damage general ability, so
their loss is down-weighted (not dropped). Two readings of the weights are offered (`weights:`):

- `softmax` (the default; the paper's reading): the weights minimise Σₜ wₜ·(−ℓₜ) − τ·H(w) over the simplex of
  the batch's response tokens, which gives the closed form

      wₜ = mₜ · exp(ℓₜ / τ) / Σₛ mₛ · exp(ℓₛ / τ)

  and the loss Σₜ wₜ · (−ℓₜ), with nothing left to divide by since the weights sum to 1.
- `power` (a third-party reimplementation): unnormalised weights wₜ = max(pₜ^(1/τ), 0.01) = max(exp(ℓₜ/τ), 0.01)
  and the loss Σₜ wₜ · (−ℓₜ) / (response tokens), the token mean of the other methods.

Both are computed from the current model at every step and detached. τ = None takes the median loss of the
batch: of its tokens (`tau_from: tokens`, the paper's reading, the default) or of its sequences' mean token
losses (`tau_from: sequences`, the reimplementation's); a number fixes it. An even count's median is the mean of
the two middle values. Larger τ approaches plain SFT.
"The batch" is the optimizer step: with gradient accumulation or several processes, τ and the softmax's
normaliser are taken over every micro-batch and process of the step (the trainer scores them in a
gradient-free pass first, `step_statistics`), the set the other methods' token mean runs over.
Checked against what of the paper could be read (2026-12; its body could not: the stored arXiv page,
arxiv.org/html/2509.20758v1, holds the abstract and introduction, which give no formula):
- τ = the batch's median loss: settled as far as secondary sources go. ICLR 2026 review 1 of the paper (OpenReview,
  archived in a public GitHub file): "The dynamic heuristic for setting the τ hyperparameter (using the batch median
  loss) ... The ablation study only compares it to a single fixed value (τ=1)"; a third-party summary
  (en.papernotes.org): "τ is set to the median of token losses within the batch", "w* ∝ p_θ(x_i)^{1/τ}" from
  "minimizing weighted loss with entropy regularization over the simplex" (the `softmax` reading here).
- Not settled, kept as config values (`weights:`, `tau_from:`): whether the simplex is the batch's tokens or
  each sequence's, and whether the weights are rescaled to SFT's scale. The reading here: the whole step's tokens,
  weights summing to 1, not rescaled. No official code ("Code: Not released", the same summary); the `power`
  reading is the DiSC repository's (`src/disc/objectives.py`).
"""

from __future__ import annotations

from forgetbench.methods.base import Method
from forgetbench.methods.flow import per_sample_loss
from forgetbench.methods.registry import register

MIN_TAU = 1e-6  # a batch whose median loss is 0 would otherwise divide by zero
POWER_FLOOR = 0.01  # the reimplementation's floor: no token's weight vanishes


def median(values: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """The median of `values` where `keep` (all of them when None), the mean of the two middle values for an even
    count (torch's median takes the lower one); NaN when nothing is kept. No host-device synchronisation."""
    import torch

    values = values.flatten()
    if values.numel() == 0:
        return values.new_tensor(float("nan"))
    keep = torch.ones_like(values, dtype=torch.bool) if keep is None else keep.flatten().bool()
    count = keep.sum()
    ordered = values.masked_fill(~keep, float("inf")).sort().values  # the kept values first
    middle = torch.stack([(count - 1) // 2, count // 2]).clamp(0, values.numel() - 1)
    return torch.where(count > 0, ordered.index_select(0, middle).mean(), float("nan"))


def batch_tau(logprobs: torch.Tensor, mask: torch.Tensor, tau_from: str = "tokens") -> torch.Tensor:
    """The median loss of a batch `[batch, seq]`: of its response tokens, or of its sequences' mean token losses."""
    if tau_from == "tokens":
        return median(-logprobs, mask)
    return median(per_sample_loss(logprobs, mask), mask.bool().any(-1))


def token_weights(logprobs: torch.Tensor, mask: torch.Tensor, tau: float | None = None,
                  log_normalizer: torch.Tensor | None = None, *, weights: str = "softmax",
                  tau_from: str = "tokens") -> torch.Tensor:
    """The detached weight of every token `[batch, seq]`, 0 on masked tokens. `softmax`: a softmax of ℓₜ/τ over
    the batch's response tokens (summing to 1; an all-masked batch gets all-zero weights); with `log_normalizer`
    (log Σ exp(ℓ/τ) over a whole optimizer step, from `step_statistics`, which also gives that step's τ) this
    micro-batch's share of the step's softmax. `power`: max(exp(ℓₜ/τ), POWER_FLOOR)."""
    import torch

    # No host-device synchronisation (no float(), no `if tensor`): the GPU never waits for the CPU here.
    logprobs = logprobs.detach()
    mask = mask.bool()
    if tau is None:
        tau = batch_tau(logprobs, mask, tau_from)  # NaN when all is masked
    tau = torch.as_tensor(tau, dtype=logprobs.dtype, device=logprobs.device).clamp_min(MIN_TAU)
    if weights == "power":
        return torch.where(mask, torch.exp(logprobs / tau).clamp_min(POWER_FLOOR), 0.0)
    scores = (logprobs / tau).masked_fill(~mask, float("-inf"))
    if log_normalizer is not None:
        return torch.exp(scores - log_normalizer.to(scores.dtype))
    softmax = torch.softmax(scores.flatten(), dim=0).view_as(logprobs)
    return torch.nan_to_num(softmax, nan=0.0)  # an all-masked batch: softmax of only -inf (or τ NaN)


def step_statistics(step_logprobs: torch.Tensor, sequence_losses: torch.Tensor, tau: float | None = None, *,
                    weights: str = "softmax", tau_from: str = "tokens") -> dict:
    """τ (the median token or sequence loss unless fixed) and, for the softmax, log Σ exp(ℓ/τ) over an optimizer
    step: `step_logprobs` `[tokens]` are its response tokens and `sequence_losses` `[sequences]` its sequences'
    mean token losses, of all micro-batches and processes."""
    import torch

    logprobs = step_logprobs.detach()
    if tau is None:
        tau = median(-logprobs) if tau_from == "tokens" else median(sequence_losses.detach())
    tau = torch.as_tensor(tau, dtype=logprobs.dtype, device=logprobs.device).clamp_min(MIN_TAU)
    if weights == "power":
        return {"tau": tau}
    return {"tau": tau, "log_normalizer": torch.logsumexp(logprobs / tau, dim=0)}


@register
class TALR(Method):
    name = "talr"
    version = 2  # τ of an even count is the mean of the two middle values
    needs_step_logprobs = True
    hparams_schema = {
        "tau": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None,
                "description": "temperature; null = median loss of the batch (see tau_from)"},
        "weights": {"enum": ["softmax", "power"], "default": "softmax",
                    "description": "softmax: exp(ℓ/τ) normalised over the batch's tokens (the paper); "
                                   "power: max(exp(ℓ/τ), 0.01), loss over the token count (a reimplementation)"},
        "tau_from": {"enum": ["tokens", "sequences"], "default": "tokens",
                     "description": "median of the token losses (the paper) or of the sequences' mean losses"},
    }

    def __init__(self, **hparams):
        super().__init__(**self.validate_hparams(hparams, "methods.talr"))
        power = self.hparams["weights"] == "power"
        # softmax weights sum to 1 over the step: nothing left to divide by
        self.unit = "tokens" if power else "step"
        # a fixed τ makes the power weights local to each token
        self.needs_step_logprobs = not (power and self.hparams["tau"] is not None)

    def step_statistics(self, step_logprobs, sequence_losses):
        return step_statistics(step_logprobs, sequence_losses, tau=self.hparams["tau"],
                               weights=self.hparams["weights"], tau_from=self.hparams["tau_from"])

    def loss_terms(self, token_logprobs, mask, *, model=None, batch=None, step=None):
        step = step or {}  # None: this micro-batch is the whole step
        weights = token_weights(token_logprobs, mask, tau=step.get("tau", self.hparams["tau"]),
                                log_normalizer=step.get("log_normalizer"), weights=self.hparams["weights"],
                                tau_from=self.hparams["tau_from"])
        return -(weights * token_logprobs).sum()
