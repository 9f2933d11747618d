"""Score domain data with a model (one forward pass per batch, no gradients): the training data once with the
pre-trained model θ₀, and the test data with each scaling checkpoint (the fine-tuning loss). A job with GPUs
scores on them (`scoring_device`), in float32 as on a CPU.

It writes what two methods need from θ₀: each sample's mean token loss (FLOW's weights are computed from them)
and the distribution of θ₀'s token probabilities on response tokens — the statistic of Lin et al. (2025) that
most SFT tokens are easy and a sparse set of low-probability tokens carries most of the loss.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from forgetbench.atomic import write_json, write_jsonl
from forgetbench.data.records import read_jsonl
from forgetbench.training.collate import Collator
from forgetbench.training.tokenize import DEFAULT_MAX_TRUNCATED_SHARE, Encoded, encode_records, uses_chat_template
from forgetbench.training.trainer import token_logprobs

THRESHOLDS = (0.05, 0.1, 0.2, 0.5)
HISTOGRAM_BINS = 20


def token_statistics(probs: np.ndarray) -> dict:
    """Share of tokens below each threshold, the share of the loss they carry, and a histogram on [0, 1]."""
    if probs.size == 0:
        raise ValueError("no response tokens to summarise")
    losses = -np.log(np.clip(probs, 1e-12, 1.0))
    counts, edges = np.histogram(probs, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return {
        "tokens": int(probs.size),
        "mean_prob": float(probs.mean()),
        "median_prob": float(np.median(probs)),
        "fraction_below": {f"{t:g}": float((probs < t).mean()) for t in THRESHOLDS},
        "loss_share_below": {f"{t:g}": float(losses[probs < t].sum() / losses.sum()) for t in THRESHOLDS},
        "histogram": {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist()},
    }


def load_tokenizer(model_dir: str):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def scoring_device(gpus: int) -> str:
    """Where a job with `gpus` GPUs scores: 'cpu'; 'cuda' (one GPU); 'auto' (several: accelerate spreads the
    layers over all of them, so a float32 copy too large for one GPU still fits the job's)."""
    return "cpu" if gpus <= 0 else "cuda" if gpus == 1 else "auto"


def load_weights(model_dir: str, adapter_dir: str | None = None, device: str = "cpu"):
    """The float32 model in eval mode on `device` (scoring_device's names); a LoRA adapter is merged in. float32
    on a GPU too (TF32 stays off, torch's default), so the scores equal the CPU's to rounding."""
    placed = {"device_map": "auto"} if device == "auto" else {}
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **placed)
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    return (model if placed else model.to(device)).eval()


def input_device(model) -> torch.device:
    """Where a batch goes: the embedding's device (under device_map='auto' the first GPU)."""
    return model.get_input_embeddings().weight.device


@torch.no_grad()
def score_records(model, tokenizer, encoded: Encoded, batch_size: int = 8) -> tuple[list[dict], np.ndarray]:
    """Each record's mean response-token loss (rows of id, mean_loss, tokens) and every response token's
    probability, in one forward pass per batch on the model's device; the per-token results come back to the
    CPU once per batch, and the means are taken there exactly as on a CPU-only run."""
    examples, ids = encoded.examples, encoded.ids
    print(encoded.summary(), flush=True)
    collate, device = Collator(tokenizer), input_device(model)
    rows, probs = [], []
    for start in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in collate(examples[start:start + batch_size]).items()}
        labels = batch.pop("labels")
        logits = model(**batch).logits
        logprobs, mask = (t.cpu() for t in token_logprobs(logits, labels.to(logits.device)))
        counts = mask.sum(-1)
        for i, record_id in enumerate(ids[start:start + batch_size]):
            rows.append({"id": record_id, "mean_loss": float(-logprobs[i][mask[i]].mean()), "tokens": int(counts[i])})
        probs.append(torch.exp(logprobs[mask]).numpy())
        print(f"scored {min(start + batch_size, len(examples))}/{len(examples)} samples", flush=True)
    return rows, np.concatenate(probs) if probs else np.array([])


def score_with_base(model_dir: str, train_jsonl: str, fmt: str, max_len: int, chat_template: str,
                    out_losses: str, out_stats: str, batch_size: int = 8,
                    max_truncated_share: float = DEFAULT_MAX_TRUNCATED_SHARE, assistant_turns: str = "all",
                    device: str = "cpu") -> dict:
    """θ₀'s scores of the training examples exactly as training encodes them, on `device` (scoring_device); the
    data that training would refuse for cut responses is refused here too, before the model loads (this job is
    the first with both the tokenizer and the data)."""
    tokenizer = load_tokenizer(model_dir)
    chat = uses_chat_template(tokenizer, chat_template)
    encoded = encode_records(tokenizer, read_jsonl(train_jsonl), fmt, max_len, chat, assistant_turns)
    encoded.check(max_truncated_share, train_jsonl)
    model = load_weights(model_dir, device=device)
    rows, probs = score_records(model, tokenizer, encoded, batch_size)
    stats = token_statistics(probs)
    write_jsonl(out_losses, rows)
    write_json(out_stats, {"model_dir": model_dir, "format": fmt, "chat_template": chat,
                           "truncated_responses": len(encoded.truncated), "truncated_share": encoded.share,
                           **({"split_documents": encoded.split_documents, "windows": encoded.windows}
                              if encoded.chunked else {}), **stats})
    return stats


def domain_loss(model_dir: str, test_jsonl: str, fmt: str, max_len: int, chat_template: str,
                adapter_dir: str | None = None, batch_size: int = 8, assistant_turns: str = "all",
                device: str = "cpu") -> float:
    """The fine-tuning loss on the domain's test split: the token-mean cross-entropy of the gold responses,
    computed on `device` (scoring_device)."""
    tokenizer, model = load_tokenizer(model_dir), load_weights(model_dir, adapter_dir, device)
    chat = uses_chat_template(tokenizer, chat_template)
    encoded = encode_records(tokenizer, read_jsonl(test_jsonl), fmt, max_len, chat, assistant_turns)
    rows, _ = score_records(model, tokenizer, encoded, batch_size)
    del model  # its GPU memory back before the evaluation that follows (vLLM, in a child process, claims 90 %)
    if device != "cpu":
        torch.cuda.empty_cache()
    tokens = sum(r["tokens"] for r in rows)
    return sum(r["mean_loss"] * r["tokens"] for r in rows) / tokens
