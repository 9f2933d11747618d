"""HFT, half fine-tuning (Hui et al., 2024): freeze half of each block's weight matrices.

Declared so that configs and the registry already know it; its training code comes with the methods issue,
and selecting it fails config validation until then (see ../shared/docs/methods.md for the formula).
"""

from forgetbench.methods.base import NotImplementedMethod
from forgetbench.methods.registry import register


@register
class HFT(NotImplementedMethod):
    name = "hft"
    kind = "train"
    hparams_schema = {"fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.5}}
