"""What every method shares: its hyperparameter schema, how it changes the model, and its per-token loss."""

from __future__ import annotations

from typing import ClassVar

import jsonschema

from forgetbench.errors import ConfigError


def masked_token_mean(token_losses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Plain SFT: the mean of the token losses over response tokens of the batch."""
    mask = mask.to(token_losses.dtype)
    return (token_losses * mask).sum() / mask.sum().clamp_min(1.0)


class Method:
    """Base class. `kind` is 'train' for methods that run the Trainer and 'posthoc' for those that derive their
    weights from another method's checkpoint without training (WiSE-FT, LiNeS)."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "train"
    # JSON schema `properties` of the method's hyperparameters, with defaults and bounds.
    hparams_schema: ClassVar[dict] = {}
    # Bumped when the method's code changes what it computes.
    version: ClassVar[int] = 1

    def __init__(self, **hparams):
        self.hparams = hparams

    @classmethod
    def validate_hparams(cls, hparams: dict | None, where: str) -> dict:
        """Fill defaults and check bounds; unknown keys and out-of-range values raise ConfigError naming `where`."""
        hparams = dict(hparams or {})
        schema = {"type": "object", "properties": cls.hparams_schema, "additionalProperties": False}
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(hparams), key=lambda e: list(e.path))
        if errors:
            err = errors[0]
            key = ".".join(str(p) for p in err.path)
            raise ConfigError(f"{where}{'.' + key if key else ''}: {err.message}")
        for key, prop in cls.hparams_schema.items():
            if "default" in prop:
                hparams.setdefault(key, prop["default"])
        return hparams

    def prepare_model(self, model, *, seed: int):
        """Wrap or freeze the model before training (LoRA, HFT); full fine-tuning returns it as is."""
        return model

    # True for methods that weight samples by the pre-trained model's loss (FLOW): the workflow then scores the
    # training data with θ₀ once per model and the batches carry a `sample_weight`.
    needs_base_scores: ClassVar[bool] = False

    def loss(self, token_logprobs: torch.Tensor, mask: torch.Tensor, *, model=None, batch=None) -> torch.Tensor:
        """Scalar loss from per-token log-probabilities `[batch, seq]` of the target tokens and the response mask;
        `batch` holds extra per-sample fields (sample_weight)."""
        return masked_token_mean(-token_logprobs, mask)

