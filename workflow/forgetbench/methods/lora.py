"""LoRA through peft (Hu et al., 2021; compared with full fine-tuning in "LoRA Learns Less and Forgets Less",
Biderman et al., 2024). Only the adapter is trained and saved; evaluation loads it on top of the base model."""

from forgetbench.methods.base import Method
from forgetbench.methods.registry import register


@register
class LoRA(Method):
    name = "lora"
    hparams_schema = {
        "r": {"type": "integer", "minimum": 1, "maximum": 4096, "default": 16},
        "alpha": {"type": "number", "exclusiveMinimum": 0, "default": 32},
        "dropout": {"type": "number", "minimum": 0, "maximum": 1, "exclusiveMaximum": 1, "default": 0.05},
        "target_modules": {
            "oneOf": [
                {"type": "string", "enum": ["all-linear"]},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ],
            "default": "all-linear",
        },
    }

    def targeted(self, shape) -> dict[str, tuple[int, int]]:
        """The projections of a decoder layer that carry an adapter (all-linear: all of them)."""
        names = self.hparams["target_modules"]
        shapes = shape.linear_shapes()
        return shapes if names == "all-linear" else {n: s for n, s in shapes.items() if n in names}

    def trainable_params(self, shape) -> int:
        return shape.layers * self.hparams["r"] * sum(a + b for a, b in self.targeted(shape).values())

    def extra_activation_bytes(self, shape, compute_bytes: int) -> int:
        # dropout keeps a mask of each adapter's input (about a byte per input value, measured on an H100)
        if not self.hparams["dropout"]:
            return 0
        return sum(a for a, _ in self.targeted(shape).values())

    def prepare_model(self, model, *, seed: int):
        # peft imports all of transformers (seconds): imported here, not while the workflow parses its config.
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=self.hparams["r"],
            lora_alpha=self.hparams["alpha"],
            lora_dropout=self.hparams["dropout"],
            target_modules=self.hparams["target_modules"],
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, config)
