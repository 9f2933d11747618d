"""DFT, dynamic fine-tuning (Wu et al., 2025): token loss times its detached probability.

Declared so that configs and the registry already know it; its training code comes with the methods issue,
and selecting it fails config validation until then (see ../shared/docs/methods.md for the formula).
"""

from forgetbench.methods.base import NotImplementedMethod
from forgetbench.methods.registry import register


@register
class DFT(NotImplementedMethod):
    name = "dft"
    kind = "train"
    hparams_schema = {}
