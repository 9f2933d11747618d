"""transformers' Trainer with the method's loss: per-token log-probabilities are computed once per step from
the model's logits, and the method turns them (with the response mask) into the scalar loss."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from transformers import Trainer, TrainerCallback

from forgetbench.atomic import atomic_directory
from forgetbench.training.collate import PER_SAMPLE_FIELDS
from forgetbench.training.divergence import DEFAULT_FACTOR, divergence
from forgetbench.training.memory import LOGPROB_CHUNK  # the memory estimate counts one chunk
from forgetbench.training.tokenize import IGNORE_INDEX




def _chunk_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log p of `targets` [batch, chunk] under float32 `logits` [batch, chunk, vocab]."""
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                           reduction="none").view(targets.shape)


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(y_t | y_<t) of each target token `[batch, seq-1]` and the response mask, from next-token logits.

    The methods need only the target tokens' log-probabilities, so they are taken a chunk of positions at a
    time, and under autograd each chunk is recomputed in the backward pass rather than kept: beside the logits
    themselves only one chunk's float32 log-softmax `[batch, chunk, vocab]` exists at a time, never a second
    `[batch, seq, vocab]` tensor (cross-entropy would otherwise save its float32 log-softmax of every chunk)."""
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    parts = []
    for start in range(0, targets.size(1), LOGPROB_CHUNK):
        stop = min(start + LOGPROB_CHUNK, targets.size(1))
        chunk, chunk_targets = logits[:, start:stop, :], targets[:, start:stop].clamp_min(0)
        if chunk.requires_grad:
            parts.append(checkpoint(_chunk_nll, chunk, chunk_targets, use_reentrant=False))
        else:
            parts.append(_chunk_nll(chunk, chunk_targets))
    nll = torch.cat(parts, dim=1) if parts else logits.new_zeros(targets.shape, dtype=torch.float32)
    return -nll * mask, mask


@dataclass
class StepStats:
    """What one optimizer step holds, over all its accumulated micro-batches and all processes: the counts
    the methods' losses are normalised by, and the statistics some methods take over the whole step."""

    tokens: float
    samples: float
    micro_batches: int
    processes: int
    method: dict | None = None

    def count(self, unit: str) -> float:
        return {"tokens": self.tokens, "samples": self.samples, "step": 1.0}[unit]


class MethodTrainer(Trainer):
    """Trainer whose loss is the method's: per micro-batch, `method.loss_terms(...)` over the optimizer step's
    count of the method's unit (response tokens, samples) across accumulated micro-batches and processes, as
    transformers does with `num_items_in_batch`, plus `method.step_loss` once per step. The micro-batch losses
    of a step (and of every process, whose gradients DDP and FSDP average) then add up to the loss of the whole
    step, whatever its split into micro-batches and processes."""

    loss_is_scaled_for_ga = True  # compute_loss normalises by the whole step itself

    def __init__(self, *args, method, **kwargs):
        super().__init__(*args, **kwargs)
        self.method = method
        self.tokens_seen = 0
        self.flops_per_token = None
        self.step_stats: StepStats | None = None

    def _step_stats(self, batches: list[dict], device) -> StepStats:
        # Response tokens as token_logprobs counts them: the targets of positions 1.. (labels shifted by one).
        local = torch.tensor([float(sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches)),
                              float(sum(b["labels"].shape[0] for b in batches))], dtype=torch.float64, device=device)
        processes = self.accelerator.num_processes
        if processes > 1:
            local = self.accelerator.reduce(local, reduction="sum")
        statistics = None
        if self.method.needs_step_logprobs and (len(batches) > 1 or processes > 1):
            statistics = self.method.step_statistics(*self._step_logprobs(batches, device))
        return StepStats(float(local[0]), float(local[1]), len(batches), processes, statistics)

    def _step_logprobs(self, batches: list[dict], device) -> tuple[torch.Tensor, torch.Tensor]:
        """The log-probability of every response token of the step and the mean token loss of every sequence with
        response tokens, all processes' included, without gradients."""
        tokens, sequences = [], []
        with torch.no_grad():
            for batch in batches:
                inputs = self._prepare_inputs({k: v for k, v in batch.items() if k != "labels" and k not in PER_SAMPLE_FIELDS})
                logprobs, mask = token_logprobs(self.model_wrapped(**inputs).logits, batch["labels"].to(device))
                tokens.append(logprobs[mask])
                sequences.append(-logprobs.sum(-1) / mask.sum(-1))  # NaN without response tokens: dropped below
        return self._gather(torch.cat(tokens)), self._gather(torch.cat(sequences))

    def _gather(self, local: torch.Tensor) -> torch.Tensor:
        """Every process's `local` values, concatenated, without NaNs (the padding between processes, sequences
        without response tokens)."""
        if self.accelerator.num_processes > 1:
            local = self.accelerator.gather(self.accelerator.pad_across_processes(local, dim=0, pad_index=float("nan")))
        return local[~torch.isnan(local)]

    # Two per-step walks over every module, which the Trainer makes and which cost a LoRA model (~2,500 modules
    # with the adapters' containers) 45 ms of host time a step on an H100, against a 100 ms step of full
    # fine-tuning of the same 135M model (benchmarks/train_throughput.py --profile); both are done once instead.

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        if batch_samples:
            self.method.on_step_start(self.model_wrapped)
            self.step_stats = self._step_stats(batch_samples, device)
        return batch_samples, num_items_in_batch

    def training_step(self, model, inputs, num_items_in_batch=None):
        # Trainer.training_step calls model.train() every step, which sets `training` on every module. Nothing
        # puts a module in eval mode during training here, so once the model trains the call is skipped.
        if not model.training:
            return super().training_step(model, inputs, num_items_in_batch)
        model.train = _already_training
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            del model.train

    def floating_point_ops(self, inputs):
        # The Trainer's count (6 x tokens x non-embedding parameters) walks the modules to count the parameters
        # every step; the count per token is fixed.
        main = getattr(self.model, "main_input_name", "input_ids")
        if main not in inputs or not hasattr(self.model, "num_parameters"):
            return super().floating_point_ops(inputs)
        if self.flops_per_token is None:
            self.flops_per_token = 6 * self.model.num_parameters(exclude_embeddings=True)
        return self.flops_per_token * inputs[main].numel()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        extras = {k: inputs.pop(k) for k in PER_SAMPLE_FIELDS if k in inputs}
        outputs = model(**inputs)
        logprobs, mask = token_logprobs(outputs.logits, labels)
        step = self.step_stats if model.training else None
        if step is None:  # outside the training loop: the batch is its own step
            loss = self.method.loss(logprobs, mask, model=model, batch=extras)
        else:
            terms = self.method.loss_terms(logprobs, mask, model=model, batch=extras, step=step.method)
            loss = terms / max(step.count(self.method.unit), 1.0)
            extra = self.method.step_loss(model)
            if extra is not None:
                loss = loss + extra / (step.micro_batches * step.processes)
            # DDP and FSDP average gradients over processes; this process's share of the step's sum scales back up.
            loss = loss * step.processes
        if model.training:
            self.tokens_seen += int(inputs["attention_mask"].sum())
        return (loss, outputs) if return_outputs else loss


def _already_training(mode: bool = True):
    if not mode:
        raise RuntimeError("MethodTrainer: a module was switched to eval mode during a training step")


SPIKE_FACTOR = 3.0  # a loss or gradient norm above this many times the median of the steps before is a spike
SPIKE_HISTORY = 5  # steps of history needed before spikes are judged


def spikes(record: dict, history: list[dict]) -> list[str]:
    """Which of loss and grad_norm in `record` spike above SPIKE_FACTOR x their median over `history`."""
    out = []
    for key in ("loss", "grad_norm"):
        past = sorted(r[key] for r in history if r.get(key) is not None and math.isfinite(r[key]))
        value = record.get(key)
        if len(past) >= SPIKE_HISTORY and value is not None and math.isfinite(value):
            median = past[(len(past) - 1) // 2]
            if median > 0 and value > SPIKE_FACTOR * median:
                out.append(key)
    return out


class ProgressLog(TrainerCallback):
    """One JSONL record and one human line per logging step: loss, LR, grad norm, tokens/s and time left,
    so that a slow run can be told from a stuck one. A loss or gradient norm spike is flagged in both. With
    several processes every one of them calls it (the token counts are summed over processes), and only
    process 0 (`main`) writes and prints."""

    def __init__(self, trainer: MethodTrainer, jsonl_path, stream=sys.stderr, main: bool = True,
                 divergence_factor: float | None = DEFAULT_FACTOR):
        self.trainer = trainer
        self.file = open(jsonl_path, "w", encoding="utf-8")
        self.stream = stream
        self.main = main
        self.start = self.last_time = time.monotonic()
        self.last_tokens = 0
        self.diverged = None
        self.divergence_factor = divergence_factor  # training.divergence_factor (forgetbench.training.divergence)
        self.restored_step = 0
        self.records = []

    def say(self, text: str) -> None:
        if self.main:
            print(text, file=self.stream, flush=True)

    def tokens_per_process(self) -> list[int]:
        """Every process's count of tokens seen (a collective when there are several)."""
        accelerator = self.trainer.accelerator
        if accelerator.num_processes == 1:
            return [self.trainer.tokens_seen]
        counts = accelerator.gather(torch.tensor([self.trainer.tokens_seen], device=self.trainer.args.device))
        return [int(c) for c in counts.tolist()]

    def restore(self, checkpoint) -> None:
        """Continue the log and the token count of a run resumed from `checkpoint` (saved by on_save)."""
        saved = json.loads((checkpoint / "progress.json").read_text())
        self.records = saved["records"]
        rank = self.trainer.accelerator.process_index
        self.trainer.tokens_seen = saved["tokens_per_process"][rank]
        self.last_tokens = sum(saved["tokens_per_process"])
        self.restored_step = saved["step"]
        self.start -= saved["elapsed_s"]
        for record in self.records:
            self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def on_save(self, args, state, control, **kwargs):
        # The Trainer has just written checkpoint-<step>: the log so far goes with it, for a resumed run.
        per_process = self.tokens_per_process()
        if not self.main:
            return
        checkpoint = f"{args.output_dir}/checkpoint-{state.global_step}"
        saved = {"step": state.global_step, "tokens_per_process": per_process, "records": self.records,
                 "elapsed_s": time.monotonic() - self.start}
        with open(f"{checkpoint}/progress.json", "w", encoding="utf-8") as f:
            json.dump(saved, f)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        tokens = sum(self.tokens_per_process())
        now = time.monotonic()
        rate = (tokens - self.last_tokens) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_tokens = now, tokens
        elapsed = now - self.start
        eta = elapsed / max(state.global_step, 1) * (state.max_steps - state.global_step)
        record = {
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": round(state.epoch or 0.0, 4),
            "loss": logs["loss"],
            "learning_rate": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "tokens": tokens,
            "tokens_per_s": round(rate, 2),
            "elapsed_s": round(elapsed, 2),
        }
        diverged = divergence(record, self.records, self.divergence_factor)  # judged against the steps before
        spiked = spikes(record, self.records)
        if spiked:
            record["spike"] = spiked
            self.say(f"SPIKE at step {state.global_step}: {', '.join(f'{k} {record[k]:.4g}' for k in spiked)} "
                     f"(over {SPIKE_FACTOR:g}x the median of the steps before)")
        self.records.append(record)
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        loss = logs["loss"]
        self.say(
            f"step {state.global_step}/{state.max_steps} loss {loss:.4f} lr {logs.get('learning_rate', 0):.3g} "
            f"grad_norm {logs.get('grad_norm', float('nan')):.3g} {rate:.0f} tok/s "
            f"elapsed {elapsed:.0f}s left ~{eta:.0f}s"
        )
        if diverged:
            # Stop the cell, not the sweep: the run is recorded as diverged and the tables show it.
            self.diverged = diverged
            control.should_training_stop = True
            self.say(f"DIVERGED at step {state.global_step}: {diverged['reason']}; this cell stops")

    def on_train_end(self, args, state, control, **kwargs):
        self.file.close()


class NoFinalResumeCheckpoint(TrainerCallback):
    """Trainer saves a resume checkpoint (weights, optimizer state, RNG) at the last step whenever it saves by
    steps; the run then writes its model and deletes the resume folder, so that checkpoint (three copies of the
    weights for full fine-tuning with Adam: 1.6 GB for SmolLM2-135M, seconds of disk) is never read. Runs after
    Trainer's DefaultFlowCallback, which set should_save."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_save = False


class SaveAtSteps(TrainerCallback):
    """Save the weights (a LoRA adapter, or the full model) at the given update steps, for the scaling study:
    each checkpoint is evaluated without retraining. No optimizer state: these are for evaluation only."""

    def __init__(self, steps, out_dir, tokenizer, main: bool = True):
        self.steps, self.out_dir, self.tokenizer, self.main = set(steps), out_dir, tokenizer, main

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step in self.steps and self.main:
            with atomic_directory(f"{self.out_dir}/step~{state.global_step}") as tmp:
                model.save_pretrained(tmp)
                self.tokenizer.save_pretrained(tmp)
