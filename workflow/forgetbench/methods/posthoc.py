"""What the post-hoc methods (WiSE-FT, LiNeS) share: they derive new weights from the pre-trained model and the
SFT checkpoint of the same model, LR and seed, with no training."""

from __future__ import annotations

from typing import ClassVar

from forgetbench.methods.base import Method


class PosthocMethod(Method):
    kind = "posthoc"
    # The trained method whose checkpoint is transformed.
    source_method: ClassVar[str] = "sft"

    def variants(self) -> dict[str, dict]:
        """Folder suffix → settings; one evaluated model per variant from one training run."""
        return {"": {}}

    def combine(self, base_state: dict, tuned_state: dict, num_layers: int, settings: dict) -> dict:
        raise NotImplementedError

    def loss(self, token_logprobs, mask, *, model=None, batch=None):
        raise NotImplementedError(f"method '{self.name}' does not train; it combines checkpoints after training")


def is_float(tensor: torch.Tensor) -> bool:
    import torch
    return torch.is_floating_point(tensor)


def check_same_keys(base_state: dict, tuned_state: dict) -> None:
    if base_state.keys() != tuned_state.keys():
        missing = sorted(base_state.keys() ^ tuned_state.keys())
        raise ValueError(f"state dicts differ in {len(missing)} tensors, e.g. '{missing[0]}'")
