"""HFT, half fine-tuning (Hui et al., 2024, "HFT: Half Fine-Tuning for Large Language Models").

In every transformer block a seeded random half of the attention projections and half of the MLP projections
are frozen during full fine-tuning; embeddings and the LM head are frozen too, norms train. With an
odd number of matrices in a group, blocks alternate between rounding down and up so that about half train.

What could be checked (2026-12; the paper's body could not be read from here): the abstract, "half of the
parameters are selected to learn new tasks while the other half are frozen", and its Figure 2 caption as a review
quotes it (liner.com): "we selectively freeze half of the parameters at the category-level and update the other
half", which is the per-block attention / MLP halves here. Not settled: whether embeddings and the LM head train;
frozen here (our choice: HFT's point is to keep the pre-trained parameters it does not select).
"""

import random
import re

from forgetbench.methods.base import Method
from forgetbench.methods.registry import register

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
BLOCK = re.compile(r"layers\.(\d+)\.")


def choose_trainable(num_layers: int, fraction: float, seed: int) -> dict[int, set[str]]:
    """Per block index, the projection names that train."""
    rng = random.Random(seed)
    chosen = {}
    for layer in range(num_layers):
        names = set()
        for group in (ATTENTION, MLP):
            exact = fraction * len(group)
            count = int(exact) + (1 if exact % 1 and layer % 2 else 0)
            names.update(rng.sample(group, count))
        chosen[layer] = names
    return chosen


@register
class HFT(Method):
    name = "hft"
    hparams_schema = {
        "fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.5,
                     "description": "share of each block's attention and MLP projections that train"},
    }

    def trainable_params(self, shape) -> int:
        # the chosen share of the projections, and the blocks' norms
        return int((1 - self.hparams["fraction"]) * shape.block_linear_params) + shape.layers * 2 * shape.hidden

    def prepare_model(self, model, *, seed: int):
        trainable = choose_trainable(model.config.num_hidden_layers, self.hparams["fraction"], seed)
        for name, param in model.named_parameters():
            block = BLOCK.search(name)
            if block is None:
                param.requires_grad = False  # embeddings, final norm, LM head
                continue
            projection = next((p for p in ATTENTION + MLP if f".{p}." in name), None)
            param.requires_grad = projection is None or projection in trainable[int(block.group(1))]
        return model
