"""How the processes of a training run share the model (no torch import: the workflow decides it while parsing
the config, for the memory check)."""

from __future__ import annotations

STRATEGIES = ("auto", "ddp", "fsdp")


def sharding_strategy(requested: str, method, processes: int, gpus: bool) -> str:
    """How the processes of a run share the model: 'none' for one process. `auto` shards the weights, gradients
    and optimizer state over GPUs (FSDP full sharding) for full-parameter methods and replicates a LoRA model
    (DDP: its frozen base needs no optimizer state and the adapters are small). accelerate shards only over
    GPUs: processes on a CPU (the tests' stand-in for GPUs) replicate the model, so `auto` is DDP there and
    `fsdp` is refused rather than silently replicated."""
    if requested not in STRATEGIES:
        raise ValueError(f"training.strategy: '{requested}' is not one of {', '.join(STRATEGIES)}")
    if processes <= 1:
        return "none"
    if requested == "fsdp" and not gpus:
        raise ValueError("training.strategy: fsdp shards over GPUs only (accelerate replicates the model over CPU "
                         "processes); use ddp or auto without GPUs")
    if requested == "auto":
        return "fsdp" if gpus and method.name != "lora" else "ddp"
    return requested
