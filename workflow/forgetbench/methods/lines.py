"""LiNeS, layer-increasing network scaling (Wang et al., 2024, "LiNeS: Post-training Layer Scaling Prevents
Forgetting and Enhances Model Merging").

With τ = θ_sft − θ₀ per tensor and a tensor in transformer block ℓ of L (0-based), λ(ℓ) = α + β·ℓ/(L − 1),
and θ = θ₀ + λ(ℓ)·τ: shallow layers, which hold general features, keep close to the pre-trained weights.
Tensors outside the residual blocks (embeddings, the final norm, an untied LM head) get α, as in the LiNeS
reference code ("scale with alpha for layers outside residual blocks"); defaults α = 0, β = 1.

Settled against the reference code (github.com/wang-kee/LiNeS, src/eval/eval.py): for editing one fine-tuned
model (`single_task`) it calls `LiNeS_scaling(task_vector, alpha=scaling_coef, beta=1-scaling_coef, ...)` and
sweeps scaling_coef over `np.arange(0.0, 1.1, 0.1)` on validation data, keeping the best trade-off
(`find_optimal_coef_tradeoff`, target weight 2 by default: README). So β = 1 − α, α chosen per task; the
defaults here are the α = 0 end of that sweep, and a config sweeps α as named instances
(`lines-a0.5: {method: lines, alpha: 0.5, beta: 0.5}`).
"""

import re

from forgetbench.methods.posthoc import PosthocMethod, check_same_keys, is_float
from forgetbench.methods.registry import register

BLOCK = re.compile(r"layers\.(\d+)\.")


def layer_scale(name: str, num_layers: int, alpha: float, beta: float) -> float:
    block = BLOCK.search(name)
    if block is None:  # embeddings, final norm, LM head
        return alpha
    layer = int(block.group(1))
    return alpha + beta * (layer / (num_layers - 1) if num_layers > 1 else 1.0)


def scale(base_state: dict, tuned_state: dict, num_layers: int, alpha: float = 0.0, beta: float = 1.0) -> dict:
    check_same_keys(base_state, tuned_state)
    out = {}
    for name, base in base_state.items():
        tuned = tuned_state[name]
        if not is_float(base):
            out[name] = tuned.clone()
            continue
        factor = layer_scale(name, num_layers, alpha, beta)
        out[name] = (base.double() + factor * (tuned.double() - base.double())).to(base.dtype)
    return out


@register
class LiNeS(PosthocMethod):
    name = "lines"
    version = 2  # the final norm and LM head get α, no longer α + β
    hparams_schema = {
        "alpha": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.0},
        "beta": {"type": "number", "minimum": 0, "maximum": 1, "default": 1.0},
    }

    def combine(self, base_state, tuned_state, num_layers, settings):
        return scale(base_state, tuned_state, num_layers, alpha=self.hparams["alpha"], beta=self.hparams["beta"])
