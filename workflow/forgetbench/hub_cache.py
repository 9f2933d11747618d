"""Whether the Hugging Face hub may be reached, and what its local caches hold: one place for every check of the
models, datasets and evaluation tasks that come from the hub."""

from __future__ import annotations

import os
from pathlib import Path


def offline_env() -> bool:
    """HF_HUB_OFFLINE or HF_DATASETS_OFFLINE set: nothing may be downloaded."""
    flags = (os.environ.get(v, "").strip().lower() for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(flag in ("1", "true", "yes", "on") for flag in flags)


def dataset_cached(dataset: str) -> bool:
    """Whether a hub dataset has a copy in the local Hugging Face caches (hub files or datasets' Arrow cache)."""
    from datasets import config as ds_config
    from huggingface_hub import constants

    hub = Path(constants.HF_HUB_CACHE) / f"datasets--{dataset.replace('/', '--')}"
    arrow = Path(ds_config.HF_DATASETS_CACHE) / dataset.replace("/", "___")
    return hub.exists() or arrow.exists()
