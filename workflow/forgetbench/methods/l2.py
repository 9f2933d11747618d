"""L2 toward the pre-trained weights (L2-SP, Xuhong et al., 2018), as compared in Lin et al., 2025.

Declared so that configs and the registry already know it; its training code comes with the methods issue,
and selecting it fails config validation until then (see ../shared/docs/methods.md for the formula).
"""

from forgetbench.methods.base import NotImplementedMethod
from forgetbench.methods.registry import register


@register
class L2(NotImplementedMethod):
    name = "l2"
    kind = "train"
    hparams_schema = {"lam": {"type": "number", "minimum": 0, "default": 0.01}}
