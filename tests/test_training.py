"""Training on the tiny model: response-only loss mask, the Trainer subclass, outputs and determinism."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoTokenizer

from forgetbench.atomic import write_jsonl
from forgetbench.data.records import make_record
from forgetbench.errors import ConfigError
from forgetbench.training.run import train_cell
from forgetbench.training.tokenize import IGNORE_INDEX, encode_example
from forgetbench.training.trainer import token_logprobs

TRAINING = {"max_steps": 3, "epochs": 1, "batch_size": 2, "grad_accum": 1, "max_seq_len": 128,
            "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0,
            "logging_steps": 1, "precision": "fp32"}


def records(n=8):
    return [make_record(f"r{i}", f"What is {i} plus {i + 1}?", str(2 * i + 1), rationale=f"{i} + {i + 1} = {2 * i + 1}.",
                        answer_type="integer") for i in range(n)]


def cell(method="sft", hparams=None, seed=0):
    return {"model": "tiny", "method": method, "hparams": hparams or {}, "lr": 1e-3, "seed": seed,
            "training": TRAINING, "domain": {"name": "toy", "format": "cot"}, "chat_template": "auto"}


def test_loss_mask_covers_exactly_the_response(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rec = records(1)[0]
    enc = encode_example(tok, rec, "label", 512, chat=True)
    response_ids = [t for t, l in zip(enc["input_ids"], enc["labels"]) if l != IGNORE_INDEX]
    # the generation prompt's newline is trained: lm-eval scores it as part of the continuation
    assert tok.decode(response_ids) == "\nAnswer: 1<|im_end|>\n"
    assert enc["labels"][: len(enc["labels"]) - len(response_ids)] == [IGNORE_INDEX] * (len(enc["labels"]) - len(response_ids))
    assert "<|im_start|>assistant\n" in tok.decode(enc["input_ids"])


def test_plain_format_for_models_without_chat_template(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    enc = encode_example(tok, records(1)[0], "label", 512, chat=False)
    response = [t for t, l in zip(enc["input_ids"], enc["labels"]) if l != IGNORE_INDEX]
    # the newline that joins prompt and response is trained: the domain task generates from the bare prompt
    assert tok.decode(response) == "\nAnswer: 1" + tok.eos_token
    assert "<|im_start|>" not in tok.decode(enc["input_ids"])


def test_truncation_drops_examples_without_response_tokens(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert encode_example(tok, records(1)[0], "label", 8, chat=True) is None


def overflowing(n=8, long=(0, 3)):
    """`records(n)`, those at the indices `long` with a rationale of about 200 tokens: longer than max_seq_len 128."""
    return [{**r, "rationale": "Add the two numbers, one step at a time. " * 20 + r["rationale"]} if i in long else r
            for i, r in enumerate(records(n))]


def test_cut_responses_refuse_training_before_any_step(tiny_model_dir, tmp_path):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, overflowing())
    out = tmp_path / "sft"
    with pytest.raises(ConfigError) as error:
        train_cell(str(tiny_model_dir), str(data), str(out / "model"), str(out / "log.jsonl"), str(out / "run.json"),
                   cell())
    assert str(error.value) == (
        f"{data}: 2 of 8 responses (25.0 %) do not fit whole in max_seq_len 128 (the longest example has 298 "
        f"tokens), above training.max_truncated_share 0.01: raise training.max_seq_len to 298 or raise "
        f"training.max_truncated_share")
    assert not out.exists()


def test_cut_responses_within_the_allowed_share_are_counted_in_the_log_and_run_json(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, overflowing())
    out = tmp_path / "sft"
    allowed = {**cell(), "training": {**TRAINING, "max_truncated_share": 0.25}}
    train_cell(str(tiny_model_dir), str(data), str(out / "model"), str(out / "log.jsonl"), str(out / "run.json"),
               allowed)
    assert ("8 training examples (0 dropped: prompt longer than max_seq_len), chat=True; 2 of 8 responses (25.0 %) "
            "do not fit whole in max_seq_len 128 (the longest example has 298 tokens)") in capsys.readouterr().out
    run = json.loads((out / "run.json").read_text())
    assert (run["truncated_responses"], run["truncated_share"], run["longest_example_tokens"]) == (2, 0.25, 298)


def test_score_base_refuses_the_data_training_would_refuse(tiny_model_dir, tmp_path):
    from forgetbench.analysis.base_scores import score_with_base

    data = tmp_path / "train.jsonl"
    write_jsonl(data, overflowing(long=(5,)))
    old = tmp_path / "scores" / "sample_losses.jsonl"
    old.parent.mkdir()
    old.write_text("an earlier run's scores\n")
    with pytest.raises(ConfigError) as error:
        score_with_base(str(tiny_model_dir), str(data), "cot", 128, "auto", str(old), str(old.parent / "stats.json"))
    assert str(error.value) == (
        f"{data}: 1 of 8 responses (12.5 %) do not fit whole in max_seq_len 128 (the longest example has 300 "
        f"tokens), above training.max_truncated_share 0.01: raise training.max_seq_len to 300 or raise "
        f"training.max_truncated_share")
    assert old.read_text() == "an earlier run's scores\n" and not (old.parent / "stats.json").exists()
    stats = score_with_base(str(tiny_model_dir), str(data), "cot", 300, "auto", str(old),
                            str(old.parent / "stats.json"))
    assert json.loads((old.parent / "stats.json").read_text())["truncated_responses"] == 0 and stats["tokens"] > 0


def test_token_logprobs_match_log_softmax_and_zero_the_mask():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7)
    labels = torch.tensor([[-100, 3, 5, 1], [-100, -100, 2, -100]])
    logprobs, mask = token_logprobs(logits, labels)
    expected = torch.log_softmax(logits, -1)[0, 1, 5]
    assert logprobs[0, 1].item() == pytest.approx(expected.item(), abs=1e-6)
    assert mask.tolist() == [[True, True, True], [False, True, False]]
    assert logprobs[1, 0].item() == 0.0 and logprobs[1, 2].item() == 0.0


@pytest.mark.parametrize("method, hparams", [("sft", {}), ("lora", {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"})])
def test_three_steps_write_weights_log_and_provenance(tiny_model_dir, tmp_path, method, hparams):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, records())
    out = tmp_path / method
    summary = train_cell(str(tiny_model_dir), str(data), str(out / "model"), str(out / "log.jsonl"),
                         str(out / "run.json"), cell(method, hparams))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) and r["tokens_per_s"] > 0 for r in log)
    assert log[0]["learning_rate"] == pytest.approx(1e-3)
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 3 and run["config"]["method"] == method
    assert run["packages"]["transformers"] == "5.23.0"
    assert len(run["git_commit"]) >= 7
    is_adapter = (out / "model" / "adapter_config.json").exists()
    assert is_adapter == (method == "lora")
    if method == "lora":
        assert summary["trainable_params"] < summary["total_params"] / 5
    else:
        assert summary["trainable_params"] == summary["total_params"]
        assert (out / "model" / "model.safetensors").exists()


def test_same_seed_gives_the_same_losses(tiny_model_dir, tmp_path):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, records())
    logs = []
    for run in ("a", "b", "c"):
        seed = 1 if run == "c" else 0
        out = tmp_path / run
        train_cell(str(tiny_model_dir), str(data), str(out / "model"), str(out / "log.jsonl"), str(out / "run.json"),
                   cell(seed=seed))
        logs.append([json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()])
    assert logs[0] == logs[1]
    assert logs[0] != logs[2]


def test_a_diverging_run_stops_and_is_marked_diverged(tiny_model_dir, tmp_path):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, records())
    diverging = cell()
    diverging["lr"] = 1e30
    diverging["training"] = {**TRAINING, "max_steps": 8}
    summary = train_cell(str(tiny_model_dir), str(data), str(tmp_path / "model"), str(tmp_path / "log.jsonl"),
                         str(tmp_path / "run.json"), diverging)
    assert summary["status"] == "diverged"
    assert summary["steps"] < 8
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["status"] == "diverged" and run["diverged_at"]["step"] == summary["steps"]
    last = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert not (math.isfinite(last["loss"]) and math.isfinite(last["grad_norm"]))


@pytest.mark.parametrize("method, hparams", [("sft", {}), ("lora", {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": "all-linear"})])
def test_a_killed_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(
        tiny_model_dir, tmp_path, monkeypatch, method, hparams):
    """Weights, optimizer, scheduler and RNG (LoRA dropout) come back: losses and final weights match exactly."""
    from safetensors.torch import load_file

    from forgetbench.training.trainer import ProgressLog

    data = tmp_path / "train.jsonl"
    write_jsonl(data, records(16))
    training = {**TRAINING, "max_steps": 4, "resume_every": 1}
    config = {**cell(method, hparams), "training": training}

    def run(name):
        out = tmp_path / name
        return out, train_cell(str(tiny_model_dir), str(data), str(out / "model"), str(out / "log.jsonl"),
                               str(out / "run.json"), config)

    reference, _ = run("straight")
    assert not (reference / "resume").exists()  # removed once the run is complete

    original = ProgressLog.on_save

    def crash_after_step_2(self, args, state, control, **kwargs):
        original(self, args, state, control, **kwargs)
        if state.global_step == 2:
            raise KeyboardInterrupt("killed after the checkpoint of step 2")

    monkeypatch.setattr(ProgressLog, "on_save", crash_after_step_2)
    with pytest.raises(KeyboardInterrupt):
        run("killed")
    resumed = tmp_path / "killed"
    assert [p.name for p in (resumed / "resume").glob("checkpoint-*")] == ["checkpoint-2"]
    assert not (resumed / "model").exists() and not (resumed / "log.jsonl").exists()
    monkeypatch.setattr(ProgressLog, "on_save", original)
    _, summary = run("killed")

    log = [json.loads(line) for line in (resumed / "log.jsonl").read_text().splitlines()]
    straight = [json.loads(line) for line in (reference / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert [r["loss"] for r in log] == [r["loss"] for r in straight]
    assert [r["tokens"] for r in log] == [r["tokens"] for r in straight]
    weights = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
    a, b = load_file(reference / "model" / weights), load_file(resumed / "model" / weights)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert summary["steps"] == 4 and not (resumed / "resume").exists()


def test_a_resume_checkpoint_of_another_config_is_not_used(tmp_path):
    from forgetbench.atomic import write_json
    from forgetbench.training.run import resume_checkpoint

    folder = tmp_path / "resume"
    (folder / "checkpoint-3").mkdir(parents=True)
    for name in ("trainer_state.json", "progress.json"):
        (folder / "checkpoint-3" / name).write_text("{}")
    write_json(folder / "cell.json", {"lr": 1e-3})
    assert resume_checkpoint(folder, {"lr": 1e-3}) == str(folder / "checkpoint-3")
    assert resume_checkpoint(folder, {"lr": 2e-3}) is None and not folder.exists()


def test_loss_and_gradient_norm_spikes_are_flagged():
    from forgetbench.training.trainer import spikes

    history = [{"loss": 2.0 - 0.1 * i, "grad_norm": 1.0} for i in range(5)]
    assert spikes({"loss": 1.5, "grad_norm": 1.2}, history) == []
    assert spikes({"loss": 6.5, "grad_norm": 1.2}, history) == ["loss"]  # median loss 1.8: 3x is 5.4
    assert spikes({"loss": 1.5, "grad_norm": 3.5}, history) == ["grad_norm"]
    assert spikes({"loss": 99.0, "grad_norm": 99.0}, history[:4]) == []  # too little history to judge
    assert spikes({"loss": float("nan"), "grad_norm": None}, history) == []  # NaN is divergence, not a spike


def test_the_per_step_shortcuts_keep_training_mode_and_the_trainers_flop_count(tiny_model_dir, tmp_path):
    """MethodTrainer skips the Trainer's per-step model.train() and parameter count: dropout still acts on
    every step (two steps on the same batch differ in eval-free training mode), model.train is itself again
    after training, and the FLOP total equals the Trainer's own 6 x tokens x non-embedding parameters."""
    from transformers import AutoModelForCausalLM, Trainer

    from forgetbench.methods import get_method
    from forgetbench.training.collate import Collator
    from forgetbench.training.run import training_arguments
    from forgetbench.training.tokenize import encode_records
    from forgetbench.training.trainer import MethodTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = encode_records(tokenizer, records(4), "cot", 128, True).examples
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    method = get_method("lora")(r=4, alpha=8, dropout=0.5, target_modules="all-linear")
    model = method.prepare_model(model, seed=0)
    for name, weight in model.named_parameters():
        if "lora_B" in name:  # B starts at zero, which would hide the adapters' input dropout from the loss
            torch.nn.init.normal_(weight, std=0.5)
    args = training_arguments({**TRAINING, "max_steps": 2, "batch_size": 4}, 0.0, 0, str(tmp_path / "out"))
    trainer = MethodTrainer(model=model, args=args, train_dataset=examples, data_collator=Collator(tokenizer),
                            method=method)
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train(); the steps here are called directly
    batch = trainer._prepare_inputs(Collator(tokenizer)(examples))
    first = trainer.training_step(model, dict(batch)).item()  # model.eval() after from_pretrained: train() runs
    assert model.training and "train" not in model.__dict__
    second = trainer.training_step(model, dict(batch)).item()  # shortcut: already training
    assert "train" not in model.__dict__
    assert first != second  # dropout masks differ, so training mode held (LR 0: the weights did not move)
    model.eval()
    assert not any(m.training for m in model.modules())

    expected = Trainer.floating_point_ops(trainer, batch)
    assert expected > 0 and trainer.floating_point_ops(batch) == expected
    assert trainer.flops_per_token == 6 * model.num_parameters(exclude_embeddings=True)


def test_token_logprobs_in_chunks_equal_one_pass(monkeypatch):
    import forgetbench.training.trainer as trainer_mod

    torch.manual_seed(0)
    logits = torch.randn(3, 11, 17, requires_grad=True)
    labels = torch.randint(0, 17, (3, 11))
    labels[:, :4] = IGNORE_INDEX
    whole, mask = token_logprobs(logits, labels)
    monkeypatch.setattr(trainer_mod, "LOGPROB_CHUNK", 3)  # 10 positions: chunks of 3, 3, 3, 1
    chunked, chunked_mask = trainer_mod.token_logprobs(logits, labels)
    assert torch.equal(mask, chunked_mask)
    assert torch.allclose(whole, chunked, atol=1e-6)
    expected = torch.log_softmax(logits[:, :-1], -1).gather(-1, labels[:, 1:].clamp_min(0)[..., None]).squeeze(-1)
    assert torch.allclose(chunked, expected * mask, atol=1e-5)
    chunked.sum().backward()  # gradients flow through every chunk, the same as one log-softmax's
    assert logits.grad[:, :-1].abs().sum() > 0 and logits.grad[:, -1].abs().sum() == 0
    reference = logits.detach().clone().requires_grad_()
    (torch.log_softmax(reference[:, :-1], -1).gather(-1, labels[:, 1:].clamp_min(0)[..., None]).squeeze(-1)
     * mask).sum().backward()
    assert torch.allclose(logits.grad, reference.grad, atol=1e-6)


def test_token_logprobs_keep_no_vocabulary_sized_tensor_for_the_backward_pass(monkeypatch):
    """Only the logits themselves: each chunk's float32 log-softmax is recomputed in the backward pass."""
    import forgetbench.training.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "LOGPROB_CHUNK", 4)
    logits = torch.randn(2, 13, 50, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, 50, (2, 13))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        logprobs, _ = trainer_mod.token_logprobs(logits, labels)
    vocab_sized = [tuple(t.shape) for t in saved if t.shape[-1:] == (50,)
                   and t.untyped_storage().data_ptr() != logits.untyped_storage().data_ptr()]
    assert vocab_sized == []
    logprobs.sum().backward()
    assert logits.grad.dtype == torch.bfloat16 and logits.grad[:, :-1].abs().sum() > 0


def test_precisions_keep_their_weights_dtype_and_train_alike(tiny_model_dir, tmp_path):
    """fp32, bf16-mixed (float32 weights, bf16 autocast) and bf16 (weights, gradients and AdamW states in bf16)
    record what they ran, save weights of their dtype and give first-step losses of the same model within
    bf16's rounding."""
    from safetensors import safe_open

    data = tmp_path / "train.jsonl"
    write_jsonl(data, records())
    runs = {}
    for precision in ("fp32", "bf16-mixed", "bf16"):
        out = tmp_path / precision
        c = cell()
        c["training"] = {**TRAINING, "precision": precision}
        train_cell(str(tiny_model_dir), str(data), str(out / "model"), str(out / "log.jsonl"), str(out / "run.json"), c)
        run = json.loads((out / "run.json").read_text())
        with safe_open(out / "model" / "model.safetensors", "pt") as f:
            saved = {f.get_tensor(k).dtype for k in f.keys()}
        losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
        runs[precision] = (run, saved, losses)
    assert {p: (r["precision"], r["autocast_bf16"], r["weights_dtype"]) for p, (r, _, _) in runs.items()} == {
        "fp32": ("fp32", False, "float32"), "bf16-mixed": ("bf16-mixed", True, "float32"), "bf16": ("bf16", False, "bfloat16")}
    assert runs["fp32"][1] == runs["bf16-mixed"][1] == {torch.float32} and runs["bf16"][1] == {torch.bfloat16}
    first = {p: losses[0] for p, (_, _, losses) in runs.items()}
    assert first["bf16-mixed"] == pytest.approx(first["fp32"], rel=2e-2) and first["bf16-mixed"] != first["fp32"]
    assert first["bf16"] == pytest.approx(first["fp32"], rel=2e-2) and first["bf16"] != first["fp32"]


def test_report_to_tensorboard_writes_event_files_beside_the_cells_outputs(tiny_model_dir, tmp_path, monkeypatch):
    import struct

    from tensorboardX.proto.event_pb2 import Event  # the writer the Trainer uses where TensorBoard is not installed

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", "elsewhere")  # train_cell sets it; restored after the test
    data = tmp_path / "train.jsonl"
    write_jsonl(data, records())
    out = tmp_path / "cell"
    c = cell()
    c["training"] = {**TRAINING, "report_to": ["tensorboard"]}
    train_cell(str(tiny_model_dir), str(data), str(out / "model"), str(out / "log.jsonl"), str(out / "run.json"), c)
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    raw, tags = events[0].read_bytes(), []
    pos = 0
    while pos < len(raw):  # TFRecord: length, its CRC, the event, its CRC
        (length,) = struct.unpack("<Q", raw[pos:pos + 8])
        event = Event.FromString(raw[pos + 12:pos + 12 + length])
        tags += [(v.tag, event.step) for v in event.summary.value]
        pos += 12 + length + 4
    assert [step for tag, step in tags if tag == "train/loss"] == [1, 2, 3]


def test_no_resume_checkpoint_is_written_at_the_last_step(tiny_model_dir, tmp_path, monkeypatch):
    """Resume checkpoints at every `resume_every` steps, none at the end: the run's model is written instead."""
    from transformers import Trainer

    saved = []
    original = Trainer._save_checkpoint
    monkeypatch.setattr(Trainer, "_save_checkpoint",
                        lambda self, *a, **k: saved.append(self.state.global_step) or original(self, *a, **k))
    data = tmp_path / "train.jsonl"
    write_jsonl(data, records(8))
    config = {**cell(), "training": {**TRAINING, "max_steps": 3, "resume_every": 2}}
    out = tmp_path / "run"
    summary = train_cell(str(tiny_model_dir), str(data), str(out / "model"), str(out / "log.jsonl"),
                         str(out / "run.json"), config)
    assert saved == [2] and summary["steps"] == 3
