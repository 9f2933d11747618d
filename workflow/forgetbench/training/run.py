"""Fine-tune one cell (model × method × LR × seed) and write its weights, training log and run.json."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments, set_seed

from forgetbench.atomic import atomic_directory, atomic_path, write_json
from forgetbench.data.records import read_jsonl
from forgetbench.methods import get_method
from forgetbench.methods.flow import sample_weights
from forgetbench.provenance import provenance
from forgetbench.training.collate import Collator
from forgetbench.training.divergence import divergence_factor
from forgetbench.training.sharding import sharding_strategy
from forgetbench.training.tokenize import DEFAULT_MAX_TRUNCATED_SHARE, encode_records, uses_chat_template
from forgetbench.training.trainer import MethodTrainer, NoFinalResumeCheckpoint, ProgressLog, SaveAtSteps


def world() -> tuple[int, int, int]:
    """(rank, local rank, number of processes) of this training process (torchrun's variables; 0, 0, 1 alone)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))


# The dtype the weights load (and train, and are saved) in: bf16-mixed keeps float32 master weights and autocasts.
LOAD_DTYPE = {"fp32": torch.float32, "bf16-mixed": torch.float32, "bf16": torch.bfloat16}


def fsdp_arguments(model) -> dict:
    """TrainingArguments for FSDP2 full sharding, one unit per decoder layer (the model's no-split modules)."""
    layers = list(getattr(model, "_no_split_modules", None) or [])
    if not layers:
        raise ValueError(f"{type(model).__name__} names no decoder layer class (_no_split_modules): cannot shard it with FSDP")
    # cpu_ram_efficient_loading: accelerate shards the model on the meta device and fills every process's shards
    # from process 0's weights (broadcast), so only process 0 loads them (load_model).
    return {"fsdp": True, "fsdp_config": {"version": 2, "transformer_layer_cls_to_wrap": layers,
                                                  "reshard_after_forward": True, "cpu_ram_efficient_loading": True}}


def load_model(base_model: str, dtype, weights: bool):
    """The model with its weights, or (`weights` False: an FSDP process other than process 0, which receives its
    shards from process 0) its parameters on the meta device, no host copy, with real buffers (RoPE's
    frequencies are computed, not loaded, and FSDP does not broadcast them)."""
    if weights:
        return AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype)
    from accelerate import init_empty_weights
    from transformers import AutoConfig

    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_model), dtype=dtype)
    model.tie_weights()  # as from_pretrained does: the same trainable tensors as process 0's model
    return model


def unwritten_storage(model):
    """The meta parameters of `model` given host storage that is allocated but never written (untouched pages
    are not resident), tied parameters kept tied. accelerate's FSDP2 preparation tells the optimizer's parameters
    apart by their data pointers, which are all 0 on the meta device; it then moves them back to meta."""
    new = {}
    for module in model.modules():
        for name, param in module._parameters.items():
            if param is not None and param.device.type == "meta":
                if id(param) not in new:
                    new[id(param)] = torch.nn.Parameter(torch.empty_like(param, device="cpu"), param.requires_grad)
                module._parameters[name] = new[id(param)]
    return model


def full_state_dict(trainer) -> dict:
    """The sharded model's weights gathered into one state dict (a collective: every process takes part),
    without the tied copies (an LM head tied to the embeddings), which save_pretrained would write twice."""
    state = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    tied = getattr(trainer.accelerator.unwrap_model(trainer.model), "all_tied_weights_keys", None) or {}
    return {k: v for k, v in state.items() if k not in tied}


def training_arguments(train_cfg: dict, lr: float, seed: int, output_dir: str, sharding: dict | None = None) -> TrainingArguments:
    resume_every = train_cfg.get("resume_every") or 0
    _, _, processes = world()
    return TrainingArguments(
        output_dir=output_dir,
        learning_rate=lr,
        seed=seed,
        data_seed=seed,
        max_steps=train_cfg["max_steps"] or -1,
        num_train_epochs=train_cfg["epochs"],
        per_device_train_batch_size=train_cfg["batch_size"],
        gradient_accumulation_steps=train_cfg["grad_accum"],
        lr_scheduler_type=train_cfg["lr_scheduler"],
        warmup_steps=train_cfg["warmup_ratio"],
        weight_decay=train_cfg["weight_decay"],
        max_grad_norm=train_cfg["max_grad_norm"],
        logging_steps=train_cfg["logging_steps"],
        logging_nan_inf_filter=False,  # a NaN loss must reach the log, where it marks the cell as diverged
        # Resume checkpoints (weights, optimizer, scheduler, RNG states), the latest one kept: a killed job
        # that is rerun continues from there (see resume_checkpoint).
        save_strategy="steps" if resume_every else "no",
        save_steps=resume_every or 500,
        save_total_limit=1,
        report_to=list(train_cfg.get("report_to") or []),
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        bf16=train_cfg.get("precision", "fp32") == "bf16-mixed",
        dataloader_num_workers=0,
        remove_unused_columns=False,
        # One process per GPU under torchrun; gloo where the processes share a CPU (the tests' stand-in for GPUs).
        ddp_backend=("gloo" if not torch.cuda.is_available() else None) if processes > 1 else None,
        # Non-reentrant checkpointing: it needs no input that requires grad, so it works with LoRA's frozen base.
        activation_checkpointing=bool(train_cfg.get("gradient_checkpointing")),
        activation_checkpointing_kwargs={"use_reentrant": False} if train_cfg.get("gradient_checkpointing") else None,
        **(sharding or {}),
    )


def attach_sample_weights(examples: list[dict], ids: list[str], base_losses_jsonl: str, tau) -> None:
    """FLOW: the weight of each example from θ₀'s loss on it (scored once per model by the `score_base` rule)."""
    losses = {row["id"]: row["mean_loss"] for row in read_jsonl(base_losses_jsonl)}
    missing = [i for i in ids if i not in losses]
    if missing:
        raise ValueError(f"{base_losses_jsonl}: no base-model loss for sample '{missing[0]}' ({len(missing)} missing)")
    weights = sample_weights(torch.tensor([losses[i] for i in ids]), tau=tau)
    for example, weight in zip(examples, weights.tolist()):
        example["sample_weight"] = weight


def resume_checkpoint(resume_dir: Path, cell: dict) -> str | None:
    """The latest Trainer checkpoint in `resume_dir` if it was written for this very cell config, else None
    (and a stale folder from another config is removed)."""
    stamp = resume_dir / "cell.json"
    if not stamp.exists() or json.loads(stamp.read_text()) != json.loads(json.dumps(cell)):
        shutil.rmtree(resume_dir, ignore_errors=True)
        return None
    steps = sorted(resume_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    complete = [p for p in steps if (p / "trainer_state.json").exists() and (p / "progress.json").exists()]
    return str(complete[-1]) if complete else None


def _broadcast(value, processes: int):
    """Process 0's `value` on every process (the resume checkpoint it chose)."""
    if processes <= 1:
        return value
    import torch.distributed as dist

    if not dist.is_initialized():
        # Before the Trainer starts: accelerate's state sets the process group up (gloo on a CPU).
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def batch_line(train_cfg: dict, processes: int, examples: int) -> str:
    """The log's line on the rows each optimizer step sees: batch_size x grad_accum x processes, or every
    example where the training set is smaller than that (each step then sees the whole set)."""
    per, accum = train_cfg["batch_size"], train_cfg["grad_accum"]
    configured = per * accum * processes
    parts = f"{per} per process x {accum} accumulated x {processes} process{'es' if processes > 1 else ''}"
    if configured <= examples:
        return f"effective batch {configured} = {parts}"
    return (f"effective batch {examples} = all {examples} training examples ({parts} = {configured} asks for more "
            f"rows than the training set has)")


def train_cell(base_model: str, train_jsonl: str, out_model: str, out_log: str, out_run: str, cell: dict,
               base_losses: str | None = None, checkpoint_steps: list[int] | None = None) -> dict:
    """`cell` is the cell's config: model, method, hparams, lr, seed, training, domain (with format), chat_template.
    `base_losses` is the `score_base` output, needed by methods that weight samples by θ₀'s loss (FLOW).
    `checkpoint_steps` saves the weights at those steps under `<out_model>/step~<n>` (the scaling study)."""
    started = time.time()
    set_seed(cell["seed"])
    # `method` names the folder (e.g. scaling-lora-r8); `registry_name`, where given, the implementation.
    method = get_method(cell.get("registry_name", cell["method"]))(**cell["hparams"])
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    chat = uses_chat_template(tokenizer, cell.get("chat_template", "auto"))
    records = read_jsonl(train_jsonl)
    train_cfg = cell["training"]
    encoded = encode_records(tokenizer, records, cell["domain"]["format"], train_cfg["max_seq_len"], chat,
                             cell["domain"].get("assistant_turns", "all"))
    examples, ids, dropped = encoded.examples, encoded.ids, encoded.dropped
    print(f"{len(examples)} training examples ({dropped} dropped: prompt longer than max_seq_len), chat={chat}; "
          f"{encoded.summary()}", flush=True)
    # before the model loads: a refused dataset costs seconds, not a training run
    encoded.check(train_cfg.get("max_truncated_share", DEFAULT_MAX_TRUNCATED_SHARE), train_jsonl)
    if not examples:
        raise ValueError(f"{train_jsonl}: no example has a response token within max_seq_len={train_cfg['max_seq_len']}")

    if method.needs_base_scores:
        if base_losses is None:
            raise ValueError(f"method '{cell['method']}' needs the base model's sample losses (base_losses)")
        attach_sample_weights(examples, ids, base_losses, method.hparams.get("tau"))

    rank, local_rank, processes = world()
    main = rank == 0
    precision = train_cfg.get("precision", "fp32")
    strategy = sharding_strategy(train_cfg.get("strategy", "auto"), method, processes, torch.cuda.is_available())
    # Under FSDP only process 0 loads the weights: one host copy per job, not one per process.
    model = load_model(base_model, LOAD_DTYPE[precision], weights=main or strategy != "fsdp")
    # Onto the device the Trainer trains on before the method sees the model: a method that keeps a copy of the
    # weights (L2's θ₀) must take it there, since the Trainer's later model.to(cuda) would leave it on the CPU.
    if model.device.type != "meta":
        model = model.to(torch.device("cuda", local_rank) if torch.cuda.is_available() else "cpu")
    model = method.prepare_model(model, seed=cell["seed"])
    if model.device.type == "meta":  # after the method: a copy it keeps (L2's θ₀) stays on meta, costing nothing
        model = unwritten_storage(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    configured_batch = train_cfg["batch_size"] * train_cfg["grad_accum"] * processes
    effective_batch = min(configured_batch, len(examples))  # a step cannot see more rows than the data has
    if main:
        print(f"method {cell['method']}: {trainable:,} of {total:,} parameters train", flush=True)
        print(batch_line(train_cfg, processes, len(examples)) + (f", {strategy.upper()}" if processes > 1 else ""),
              flush=True)

    # Beside the outputs, not among them: Snakemake deletes the outputs of a killed job, not this folder.
    resume_dir = Path(out_model).parent / "resume"
    resume_from = None
    if train_cfg.get("resume_every"):
        if main:
            resume_from = resume_checkpoint(resume_dir, cell)
            resume_dir.mkdir(parents=True, exist_ok=True)
            write_json(resume_dir / "cell.json", cell)
        resume_from = _broadcast(resume_from, processes)
    # Process 0 writes the outputs; the others train into a private folder that is thrown away.
    with ((atomic_directory(out_model) if main else tempfile.TemporaryDirectory(prefix="forgetbench-rank-")) as model_dir,
          (atomic_path(out_log) if main else tempfile.NamedTemporaryFile(suffix=".jsonl")) as log_tmp):
        model_dir = Path(model_dir)
        log_tmp = log_tmp if main else log_tmp.name
        if "tensorboard" in (train_cfg.get("report_to") or []):  # event files beside the cell's outputs
            os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(out_model).parent / "tensorboard")
        trainer = MethodTrainer(
            model=model,
            args=training_arguments(train_cfg, cell["lr"], cell["seed"], str(resume_dir),
                                    fsdp_arguments(model) if strategy == "fsdp" else None),
            train_dataset=examples,
            data_collator=Collator(tokenizer),
            method=method,
        )
        progress = ProgressLog(trainer, log_tmp, main=main, divergence_factor=divergence_factor(train_cfg))
        if resume_from:
            progress.restore(Path(resume_from))
            print(f"resuming from {resume_from} (step {progress.restored_step})", flush=True)
        trainer.add_callback(progress)
        trainer.add_callback(NoFinalResumeCheckpoint())
        if checkpoint_steps:
            trainer.add_callback(SaveAtSteps(checkpoint_steps, model_dir, tokenizer, main=main))
        if strategy == "fsdp" and not trainer.is_fsdp_enabled:
            raise RuntimeError("training.strategy fsdp: accelerate did not enable FSDP; refusing to train replicated")
        result = trainer.train(resume_from_checkpoint=resume_from)
        progress.file.close()
        tokens_seen = sum(progress.tokens_per_process())
        state = full_state_dict(trainer) if strategy == "fsdp" else None
        if main:
            # A LoRA model saves only its adapter (adapter_config.json marks it); full fine-tuning all weights.
            trainer.accelerator.unwrap_model(trainer.model).save_pretrained(model_dir, state_dict=state)
            tokenizer.save_pretrained(model_dir)
        trainer.accelerator.wait_for_everyone()
    if not main:
        return {}

    shutil.rmtree(resume_dir, ignore_errors=True)  # the run is complete: nothing left to resume
    log = [json.loads(line) for line in Path(out_log).read_text().splitlines()]
    summary = {
        "status": "diverged" if progress.diverged else "finished",
        "diverged_at": progress.diverged,
        "train_loss": result.training_loss,
        "final_loss": log[-1]["loss"] if log else None,
        "steps": result.global_step,
        "examples": len(examples),
        "examples_dropped": dropped,
        "truncated_responses": len(encoded.truncated),
        "truncated_share": encoded.share,
        "longest_example_tokens": encoded.longest,
        "split_documents": encoded.split_documents,  # text: documents longer than max_seq_len, chunked
        "windows": encoded.windows,  # the examples those documents (every format: the records) became
        "trainable_params": trainable,
        "total_params": total,
        "train_seconds": round(time.time() - started, 1),
        "tokens_seen": tokens_seen,
        "threads": torch.get_num_threads(),
        "processes": processes,
        "effective_batch": effective_batch,
        "configured_batch": configured_batch,
        "strategy": strategy,
        "precision": precision,
        "autocast_bf16": bool(trainer.args.bf16),
        "weights_dtype": str(next(trainer.accelerator.unwrap_model(trainer.model).parameters()).dtype).removeprefix("torch."),
        "gradient_checkpointing": bool(getattr(trainer.accelerator.unwrap_model(trainer.model), "is_activation_checkpointing", False)),
        "distributed_type": str(trainer.accelerator.distributed_type.value),
    }
    write_json(out_run, {**summary, **provenance(cell)})
    return summary
