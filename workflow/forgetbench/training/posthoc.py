"""Build a post-hoc method's model (WiSE-FT, LiNeS) from the pre-trained model and an SFT checkpoint."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from safetensors.torch import load_file, save_file

from forgetbench.atomic import atomic_directory, write_json
from forgetbench.methods import get_method
from forgetbench.provenance import provenance

WEIGHTS = "model.safetensors"


def load_state(model_dir: str | Path) -> dict:
    path = Path(model_dir)
    shards = sorted(path.glob("model*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"{path}: no safetensors weights (a LoRA adapter cannot be averaged; use sft)")
    state = {}
    for shard in shards:
        state.update(load_file(shard))
    return state


def combine_checkpoints(base_dir: str, tuned_dir: str, out_dir: str, out_run: str, cell: dict,
                        tuned_run: str | None = None) -> dict:
    """`cell` holds the method's registry name, its hparams and the variant's settings (e.g. {"alpha": 0.5}).
    A diverged source run makes this one diverged too (`tuned_run` is the source's run.json)."""
    started = time.time()
    method = get_method(cell["registry_name"])(**cell["hparams"])
    config = json.loads((Path(tuned_dir) / "config.json").read_text())
    num_layers = config.get("num_hidden_layers") or config.get("text_config", {}).get("num_hidden_layers")
    state = method.combine(load_state(base_dir), load_state(tuned_dir), num_layers, cell["variant_settings"])
    with atomic_directory(out_dir) as tmp:
        for item in Path(tuned_dir).iterdir():
            if item.is_file() and not item.name.startswith("model") and item.suffix != ".safetensors":
                shutil.copy2(item, tmp / item.name)
        save_file({k: v.contiguous() for k, v in state.items()}, tmp / WEIGHTS, metadata={"format": "pt"})
    source_status = json.loads(Path(tuned_run).read_text())["status"] if tuned_run else "finished"
    summary = {"status": source_status, "tensors": len(state), "num_layers": num_layers,
               "seconds": round(time.time() - started, 1), "source_checkpoint": tuned_dir}
    write_json(out_run, {**summary, **provenance(cell)})
    return summary
