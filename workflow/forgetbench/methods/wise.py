"""WiSE-FT model averaging (Wortsman et al., 2022): theta = (1 - alpha) theta_0 + alpha theta_sft.

Declared so that configs and the registry already know it; its training code comes with the methods issue,
and selecting it fails config validation until then (see ../shared/docs/methods.md for the formula).
"""

from forgetbench.methods.base import NotImplementedMethod
from forgetbench.methods.registry import register


@register
class WiSE(NotImplementedMethod):
    name = "wise"
    kind = "posthoc"
    hparams_schema = {"alphas": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}, "minItems": 1, "default": [0.25, 0.5, 0.75]}}
