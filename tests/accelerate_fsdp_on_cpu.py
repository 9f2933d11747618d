"""TEST ONLY: lets accelerate bring FSDP up on CPU processes (gloo), so that the Trainer's real FSDP2 path runs on
the 2-core CI machine. Never imported by the workflow.

Why a patch: accelerate 1.15 turns FSDP on only for GPU-like distributed types. `AcceleratorState.__init__`
(accelerate/state.py) sets `DistributedType.FSDP` inside `elif self.distributed_type in [MULTI_GPU, MULTI_MLU,
MULTI_SDAA, MULTI_MUSA, MULTI_NPU, MULTI_XPU, MULTI_HPU, MULTI_NEURON]`: MULTI_CPU is missing, so with
`TrainingArguments(fsdp=...)` on CPU processes the Trainer silently runs DDP. torch's FSDP2 itself (`fully_shard`)
runs on a CPU with gloo; only that gate stands in the way. `install()` wraps `AcceleratorState.__init__`: after
accelerate's own set-up, a first initialisation on MULTI_CPU with an FSDP plugin (or ACCELERATE_USE_FSDP=true)
does what accelerate's GPU branch does (distributed type FSDP, the plugin's mixed precision, the plugin kept).

forgetbench refuses `training.strategy: fsdp` without GPUs (forgetbench.training.sharding) precisely because of
that gate; with the gate lifted the refusal's reason is gone, so `install()` lifts it too, for `fsdp` only (`auto`
still means DDP on CPU processes, so LoRA runs with FSDP off). The production refusal is unchanged.

Loaded at start-up by every process of a test's torchrun (a `sitecustomize.py` on PYTHONPATH that calls
`install()`, see `sitecustomize_source`). The patches apply when the patched modules are first imported, so a
process that never imports accelerate pays nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys


def _lift_accelerate_gate(state_module) -> None:
    from accelerate.utils import DistributedType

    cls = state_module.AcceleratorState
    original = cls.__init__
    if getattr(original, "_fsdp_on_cpu", False):
        return

    def __init__(self, *args, fsdp_plugin=None, **kwargs):
        first = not state_module.AcceleratorState._shared_state
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        wants_fsdp = fsdp_plugin is not None or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
        if first and wants_fsdp and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            if self._mixed_precision != "no" and fsdp_plugin is not None:
                fsdp_plugin.set_mixed_precision(self._mixed_precision)
            self.fsdp_plugin = fsdp_plugin
            state_module.PartialState._shared_state["distributed_type"] = self.distributed_type

    __init__._fsdp_on_cpu = True
    cls.__init__ = __init__


def _lift_forgetbench_refusal(sharding_module) -> None:
    original = sharding_module.sharding_strategy

    def sharding_strategy(requested, method, processes, gpus):
        return original(requested, method, processes, gpus or requested == "fsdp")

    sharding_module.sharding_strategy = sharding_strategy


PATCHES = {"accelerate.state": _lift_accelerate_gate, "forgetbench.training.sharding": _lift_forgetbench_refusal}


class _AfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Applies PATCHES[name] right after module `name` is executed, before anyone imports names from it."""

    def find_spec(self, name, path, target=None):
        if name not in PATCHES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        self.loaders[name] = spec.loader
        spec.loader = self
        return spec

    def __init__(self):
        self.loaders = {}

    def create_module(self, spec):
        return self.loaders[spec.name].create_module(spec)

    def exec_module(self, module):
        self.loaders[module.__name__].exec_module(module)
        PATCHES[module.__name__](module)


def after_import(name: str, patch) -> None:
    """Run `patch(module)` once module `name` is imported (now if it already is): other test hooks use this."""
    if name in sys.modules:
        patch(sys.modules[name])
    else:
        PATCHES[name] = patch
        install()


def install() -> None:
    if any(isinstance(f, _AfterImport) for f in sys.meta_path):
        return
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _AfterImport())


def sitecustomize_source(extra: str = "") -> str:
    """A sitecustomize.py that installs the patches (and runs `extra`, more test hooks) in every process."""
    return f"import accelerate_fsdp_on_cpu\naccelerate_fsdp_on_cpu.install()\n{extra}"
