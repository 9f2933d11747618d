"""What a job's GPUs must be: the ones it asked for, or it fails before anything loads."""

from __future__ import annotations

import os


def check_visible_gpus(asked: int, job: str, visible: int | None = None) -> None:
    """A job that asked for GPUs must see them: without this it would train on the CPU without a word."""
    if asked <= 0:
        return
    if visible is None:
        import torch

        visible = torch.cuda.device_count()
    if visible < asked:
        shown = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise RuntimeError(f"{job}: asked for {asked} GPU{'s' if asked > 1 else ''} but sees {visible} "
                           f"(CUDA_VISIBLE_DEVICES={shown if shown is not None else 'unset'}); not falling back to the CPU")


def job_device(gpus: int) -> str:
    """The torch device of a job that asked for `gpus` GPUs."""
    return "cuda" if gpus > 0 else "cpu"
