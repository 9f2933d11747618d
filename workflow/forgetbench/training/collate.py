"""Batching: pad inputs and labels (labels with -100), and carry per-sample fields such as FLOW's weights."""

from __future__ import annotations

import torch
from transformers import DataCollatorForSeq2Seq

PER_SAMPLE_FIELDS = ("sample_weight",)


class Collator:
    def __init__(self, tokenizer):
        self.pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)

    def __call__(self, features: list[dict]) -> dict:
        extras = {k: torch.tensor([f[k] for f in features]) for k in PER_SAMPLE_FIELDS if k in features[0]}
        batch = self.pad([{k: v for k, v in f.items() if k not in PER_SAMPLE_FIELDS} for f in features])
        batch.update(extras)
        return batch
