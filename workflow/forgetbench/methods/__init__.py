"""Fine-tuning methods, one file each, registered by config name (see registry.py)."""

from forgetbench.methods import dft, flow, hft, l2, lines, lora, sft, talr, wise  # noqa: F401  (registers them)
from forgetbench.methods.registry import get_method, method_names, register

__all__ = ["get_method", "method_names", "register"]
