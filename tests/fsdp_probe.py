"""TEST ONLY: what each process of a torchrun training run holds, written to $FSDP_PROBE_DIR/rank<R>.json for
tests/test_fsdp_cpu.py: the resident memory right after the model is loaded (when the Trainer is built), and, once
the Trainer has wrapped the model (on_train_begin), every parameter's type, placements and local bytes."""

from __future__ import annotations

import json
import os
import resource


def resident() -> dict[str, int]:
    """Resident bytes: all (VmRSS) and anonymous (RssAnon: the process's own memory; VmRSS also counts the pages
    of memory-mapped files it has read, such as a safetensors checkpoint, which the page cache shares)."""
    with open("/proc/self/status", encoding="ascii") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {"rss": int(fields["VmRSS"].split()[0]) * 1024, "anon": int(fields["RssAnon"].split()[0]) * 1024}


def _parameters(model) -> list[dict]:
    from torch.distributed.tensor import DTensor, Shard

    out = []
    for name, p in model.named_parameters():
        local = p.to_local() if isinstance(p, DTensor) else p
        out.append({"name": name, "dtensor": isinstance(p, DTensor), "requires_grad": p.requires_grad,
                    "shard_dims": [x.dim if isinstance(x, Shard) else str(x) for x in getattr(p, "placements", ())],
                    "local_bytes": local.numel() * local.element_size(), "full_bytes": p.numel() * p.element_size()})
    return out


def _patch_trainer(module) -> None:
    init, cls = module.MethodTrainer.__init__, module.ProgressLog

    def __init__(self, *args, **kwargs):
        self._probe = {"loaded": resident(), "peak_loaded": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
        init(self, *args, **kwargs)

    def on_train_begin(self, args, state, control, **kwargs):
        probe = {**self.trainer._probe, "wrapped": resident(),
                 "peak_wrapped": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                 "parameters": _parameters(self.trainer.model_wrapped)}
        rank = os.environ.get("RANK", "0")
        with open(os.path.join(os.environ["FSDP_PROBE_DIR"], f"rank{rank}.json"), "w", encoding="utf-8") as f:
            json.dump(probe, f)

    module.MethodTrainer.__init__ = __init__
    cls.on_train_begin = on_train_begin


def install() -> None:
    from accelerate_fsdp_on_cpu import after_import

    after_import("forgetbench.training.trainer", _patch_trainer)
