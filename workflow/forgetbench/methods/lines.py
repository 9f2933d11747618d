"""LiNeS (Wang et al., 2024): scale the fine-tuning update of each layer linearly with depth.

Declared so that configs and the registry already know it; its training code comes with the methods issue,
and selecting it fails config validation until then (see ../shared/docs/methods.md for the formula).
"""

from forgetbench.methods.base import NotImplementedMethod
from forgetbench.methods.registry import register


@register
class LiNeS(NotImplementedMethod):
    name = "lines"
    kind = "posthoc"
    hparams_schema = {"alpha": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.0}, "beta": {"type": "number", "minimum": 0, "maximum": 1, "default": 1.0}}
