"""WiSE-FT model averaging (Wortsman et al., 2022, "Robust fine-tuning of zero-shot models"), a baseline of
Lin et al., 2025:

    θ(α) = (1 − α)·θ₀ + α·θ_sft

for every floating-point tensor; α = 0 gives the base model and α = 1 the SFT model, exactly. One SFT run
feeds one averaged model per α in the config (no retraining).
"""

from forgetbench.errors import ConfigError
from forgetbench.methods.posthoc import PosthocMethod, check_same_keys, is_float
from forgetbench.methods.registry import register


def interpolate(base_state: dict, tuned_state: dict, alpha: float) -> dict:
    check_same_keys(base_state, tuned_state)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = {}
    for name, base in base_state.items():
        tuned = tuned_state[name]
        if not is_float(base) or alpha == 1.0:
            out[name] = tuned.clone()
        elif alpha == 0.0:
            out[name] = base.clone()  # exactly θ₀: (1−0)·b + 0·t would turn inf/nan in t into nan
        else:
            out[name] = ((1.0 - alpha) * base.double() + alpha * tuned.double()).to(base.dtype)
    return out


@register
class WiSE(PosthocMethod):
    name = "wise"
    hparams_schema = {
        "alphas": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}, "minItems": 1,
                   "uniqueItems": True, "default": [0.25, 0.5, 0.75]},
    }

    def variants(self):
        out = {}
        for alpha in self.hparams["alphas"]:
            name = f"{alpha:g}"
            if name in out:
                raise ConfigError(f"alphas: {out[name]['alpha']:.17g} and {alpha:.17g} give the same cell name "
                                  f"'wise-{name}'")
            out[name] = {"alpha": float(alpha)}
        return out

    def combine(self, base_state, tuned_state, num_layers, settings):
        return interpolate(base_state, tuned_state, settings["alpha"])


