"""Fine-tuning methods, one file each, registered by config name (see registry.py).

Importing the package imports every module in it (`registry.discover`): a new method file registers itself
with `@register`, with no import to add here.
"""

from forgetbench.methods.registry import discover, get_method, method_names, register

discover(__name__, __path__)

__all__ = ["discover", "get_method", "method_names", "register"]
