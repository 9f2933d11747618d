"""Full supervised fine-tuning with the token-mean cross-entropy on response tokens (the baseline of every paper)."""

from forgetbench.methods.base import Method
from forgetbench.methods.registry import register


@register
class SFT(Method):
    name = "sft"
