"""What every method shares: its hyperparameter schema, how it changes the model, and its per-token loss."""

from __future__ import annotations

from typing import ClassVar

import jsonschema

from forgetbench.errors import ConfigError


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

    # Memory (forgetbench.training.memory, estimated from the model's shape before any job): the parameters the
    # optimizer updates, frozen copies of them the method keeps (L2's θ₀), and what the method adds to the
    # activations a layer saves per token (bytes).
    weight_copies: ClassVar[int] = 0

    def trainable_params(self, shape) -> int:
        return shape.params

    def extra_activation_bytes(self, shape, compute_bytes: int) -> int:
        return 0

    # True for methods that weight samples by the pre-trained model's loss (FLOW): the workflow then scores the
    # training data with θ₀ once per model and the batches carry a `sample_weight`.
    needs_base_scores: ClassVar[bool] = False
    # True for methods whose per-token weights depend on every token of the optimizer step (TALR's softmax):
    # with gradient accumulation or several processes the trainer first scores the step's tokens without
    # gradients and hands `step_statistics(their log-probabilities [tokens], the mean token loss of each
    # sequence [sequences])` to `loss_terms` as `step`.
    needs_step_logprobs: ClassVar[bool] = False

    def step_statistics(self, step_logprobs: torch.Tensor, sequence_losses: torch.Tensor) -> dict:
        raise NotImplementedError(f"method '{self.name}' uses no statistics of the whole step")

    # What one optimizer step's loss is normalised by (the method's denominator): "tokens", every response token
    # of the step (all accumulated micro-batches, all processes), as transformers and TRL do with
    # `num_items_in_batch`; "samples", every sample of the step; "step", nothing (the terms' weights already sum
    # to 1 over the step, as TALR's softmax).
    unit: ClassVar[str] = "tokens"

    def loss_terms(self, token_logprobs: torch.Tensor, mask: torch.Tensor, *, model=None, batch=None,
                   step=None) -> torch.Tensor:
        """The sum of this micro-batch's loss terms (one per `unit`), from per-token log-probabilities
        `[batch, seq]` of the target tokens and the response mask; `batch` holds extra per-sample fields
        (sample_weight), `step` the statistics of the whole optimizer step (forgetbench.training.trainer.StepStats)
        for methods that need them. The trainer divides by the step's count of units."""
        return -(token_logprobs * mask.to(token_logprobs.dtype)).sum()

    def on_step_start(self, model) -> None:
        """Called by the trainer before each optimizer step's forward passes, with the (wrapped) model."""

    def step_loss(self, model) -> torch.Tensor | None:
        """A term added once per optimizer step, not per unit (L2's penalty); None for most methods."""
        return None

    def loss(self, token_logprobs: torch.Tensor, mask: torch.Tensor, *, model=None, batch=None) -> torch.Tensor:
        """The scalar loss of one batch that is a whole optimizer step (one micro-batch, one process): the terms
        over their count, plus the step's own term."""
        count = {"tokens": mask.sum(), "samples": mask.new_tensor(mask.shape[0]), "step": mask.new_tensor(1)}[self.unit]
        loss = self.loss_terms(token_logprobs, mask, model=model, batch=batch) / count.to(token_logprobs.dtype).clamp_min(1.0)
        extra = self.step_loss(model)
        return loss if extra is None else loss + extra

