"""TALR, token-adaptive loss reweighting (Lin et al., 2025).

Declared so that configs and the registry already know it; its training code comes with the methods issue,
and selecting it fails config validation until then (see ../shared/docs/methods.md for the formula).
"""

from forgetbench.methods.base import NotImplementedMethod
from forgetbench.methods.registry import register


@register
class TALR(NotImplementedMethod):
    name = "talr"
    kind = "train"
    hparams_schema = {"tau": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None}}
