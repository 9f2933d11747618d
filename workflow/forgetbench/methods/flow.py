"""FLOW (Sanyal et al., 2024): per-sample weights from the pre-trained model's loss.

Declared so that configs and the registry already know it; its training code comes with the methods issue,
and selecting it fails config validation until then (see ../shared/docs/methods.md for the formula).
"""

from forgetbench.methods.base import NotImplementedMethod
from forgetbench.methods.registry import register


@register
class FLOW(NotImplementedMethod):
    name = "flow"
    kind = "train"
    hparams_schema = {"tau": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None}}
