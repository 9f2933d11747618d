"""Each method's formula on hand-computed tensors, and a 3-step run per method on the tiny model."""

from __future__ import annotations

import json
import math

import pytest
import torch

from forgetbench.methods import get_method, method_names
from forgetbench.methods import dft, flow, lines, talr, wise
from forgetbench.methods.hft import choose_trainable

LOG = math.log


# --- DFT -------------------------------------------------------------------------------------------------

def test_dft_weights_are_detached_probabilities_on_response_tokens():
    logprobs = torch.tensor([[LOG(0.5), LOG(0.1), LOG(0.9)]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0]])
    w = dft.token_weights(logprobs, mask)
    assert w.flatten().tolist() == pytest.approx([0.5, 0.1, 0.0])
    assert not w.requires_grad


def test_dft_loss_is_probability_weighted_token_mean():
    logprobs = torch.tensor([[LOG(0.5), LOG(0.1), LOG(0.9)]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0]])
    loss = get_method("dft")().loss(logprobs, mask)
    assert loss.item() == pytest.approx(-(0.5 * LOG(0.5) + 0.1 * LOG(0.1)) / 2)
    loss.backward()
    # the gradient is the detached weight over the token count: no gradient flows through the weight
    assert logprobs.grad.flatten().tolist() == pytest.approx([-0.25, -0.05, 0.0])


def test_dft_very_low_probability_gets_vanishing_weight():
    w = dft.token_weights(torch.tensor([[-80.0]]), torch.tensor([[1]]))
    assert 0.0 <= w.item() < 1e-30


# --- TALR ------------------------------------------------------------------------------------------------

def test_talr_weights_are_a_softmax_of_logprobs_over_the_batch():
    logprobs = torch.tensor([[LOG(0.5), LOG(0.25)], [LOG(0.125), 0.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    w = talr.token_weights(logprobs, mask, tau=1.0)
    # exp(ℓ/1) = p: weights are p normalised over the three response tokens
    total = 0.5 + 0.25 + 0.125
    assert w.flatten().tolist() == pytest.approx([0.5 / total, 0.25 / total, 0.125 / total, 0.0])
    assert w.sum().item() == pytest.approx(1.0)


def test_talr_default_tau_is_the_batch_median_token_loss():
    logprobs = torch.tensor([[-1.0, -2.0, -4.0]])
    mask = torch.ones(1, 3)
    w = talr.token_weights(logprobs, mask)  # median loss 2 → weights ∝ exp(ℓ/2)
    expected = torch.softmax(torch.tensor([-0.5, -1.0, -2.0]), 0)
    assert w[0].tolist() == pytest.approx(expected.tolist())


def test_talr_edge_cases():
    assert talr.token_weights(torch.tensor([[-1.0, -2.0]]), torch.zeros(1, 2)).tolist() == [[0.0, 0.0]]
    assert talr.token_weights(torch.tensor([[-3.0]]), torch.ones(1, 1)).tolist() == [[1.0]]
    tiny = talr.token_weights(torch.tensor([[0.0, -200.0]]), torch.ones(1, 2), tau=1.0)
    assert tiny[0, 0].item() == pytest.approx(1.0) and tiny[0, 1].item() < 1e-80
    # all losses zero: the median is 0, τ is floored instead of dividing by zero
    assert talr.token_weights(torch.zeros(1, 2), torch.ones(1, 2)).tolist() == [[0.5, 0.5]]


def test_talr_large_tau_approaches_plain_sft():
    logprobs = torch.tensor([[-0.1, -3.0, -7.0]], requires_grad=True)
    mask = torch.ones(1, 3)
    talr_loss = get_method("talr")(tau=1e9).loss(logprobs, mask)
    sft_loss = get_method("sft")().loss(logprobs, mask)
    assert talr_loss.item() == pytest.approx(sft_loss.item(), rel=1e-6)


# --- FLOW ------------------------------------------------------------------------------------------------

def test_flow_sample_weights_by_hand():
    losses = torch.tensor([1.0, 2.0, 3.0])  # median 2: raw exp(-L/2)
    raw = torch.exp(-losses / 2)
    assert flow.sample_weights(losses).tolist() == pytest.approx((raw / raw.mean()).tolist(), rel=1e-6)
    assert flow.sample_weights(losses).mean().item() == pytest.approx(1.0)
    assert flow.sample_weights(torch.tensor([5.0])).tolist() == [1.0]
    # easy samples (low loss) are up-weighted
    w = flow.sample_weights(losses, tau=0.5)
    assert w[0] > w[1] > w[2]


def test_flow_rejects_degenerate_losses():
    with pytest.raises(ValueError, match="at least one sample loss"):
        flow.sample_weights(torch.tensor([]))
    with pytest.raises(ValueError, match="must be finite"):
        flow.sample_weights(torch.tensor([1.0, float("nan")]))


def test_flow_loss_weights_each_sample_mean():
    logprobs = torch.tensor([[-1.0, -3.0], [-2.0, 0.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss = get_method("flow")().loss(logprobs, mask, batch={"sample_weight": torch.tensor([0.5, 1.5])})
    assert loss.item() == pytest.approx((0.5 * 2.0 + 1.5 * 2.0) / 2)
    with pytest.raises(ValueError, match="needs a `sample_weight`"):
        get_method("flow")().loss(logprobs, mask)


# --- WiSE-FT and LiNeS -----------------------------------------------------------------------------------

def states():
    base = {"model.layers.0.w": torch.tensor([1.0, 2.0]), "model.layers.1.w": torch.tensor([0.0, 0.0]),
            "model.embed_tokens.weight": torch.tensor([1.0]), "lm_head.weight": torch.tensor([0.0]),
            "steps": torch.tensor([3])}
    tuned = {"model.layers.0.w": torch.tensor([3.0, 0.1]), "model.layers.1.w": torch.tensor([4.0, -4.0]),
             "model.embed_tokens.weight": torch.tensor([2.0]), "lm_head.weight": torch.tensor([8.0]),
             "steps": torch.tensor([7])}
    return base, tuned


def test_wise_interpolates_and_is_exact_at_the_ends():
    base, tuned = states()
    half = wise.interpolate(base, tuned, 0.5)
    assert half["model.layers.0.w"].tolist() == pytest.approx([2.0, 1.05])
    assert half["steps"].tolist() == [7]  # integer tensors are taken from the tuned model
    for alpha, expected in [(0.0, base), (1.0, tuned)]:
        out = wise.interpolate(base, tuned, alpha)
        assert all(torch.equal(out[k], expected[k]) for k in base if k != "steps")


def test_wise_rejects_mismatched_states_and_bad_alpha():
    base, tuned = states()
    with pytest.raises(ValueError, match="state dicts differ in 1 tensors, e.g. 'steps'"):
        wise.interpolate(base, {k: v for k, v in tuned.items() if k != "steps"}, 0.5)
    with pytest.raises(ValueError, match="alpha must be in"):
        wise.interpolate(base, tuned, 1.5)


def test_wise_variants_fan_out_over_alphas():
    assert list(get_method("wise")(alphas=[0.25, 0.5]).variants()) == ["0.25", "0.5"]


def test_lines_scales_updates_linearly_with_depth():
    base, tuned = states()
    out = lines.scale(base, tuned, num_layers=2, alpha=0.2, beta=0.8)
    assert out["model.layers.0.w"].tolist() == pytest.approx([1.0 + 0.2 * 2.0, 2.0 + 0.2 * -1.9])
    assert out["model.layers.1.w"].tolist() == pytest.approx([4.0, -4.0])  # λ = α + β = 1 at the last block
    assert out["model.embed_tokens.weight"].tolist() == pytest.approx([1.2])  # α
    assert out["lm_head.weight"].tolist() == pytest.approx([1.6])  # α: outside the residual blocks
    assert lines.layer_scale("model.layers.0.x", 1, 0.0, 1.0) == 1.0  # a single block is the last block


# --- HFT -------------------------------------------------------------------------------------------------

def test_hft_freezes_half_of_each_group_seeded():
    chosen = choose_trainable(num_layers=4, fraction=0.5, seed=0)
    attention = {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert all(len(names & attention) == 2 for names in chosen.values())
    assert [len(names - attention) for names in chosen.values()] == [1, 2, 1, 2]  # 3 MLP matrices alternate
    assert chosen == choose_trainable(4, 0.5, 0)
    assert chosen != choose_trainable(4, 0.5, 1)


# --- 3-step training per method on the tiny model --------------------------------------------------------

# Every registered method that trains (a new method file gets its run here unasked), with small settings where
# the defaults would hide its effect on the tiny model.
SMALL = {"lora": {"r": 4}, "l2": {"lam": 1.0}}
TRAINED = {name: SMALL.get(name, {}) for name in method_names() if get_method(name).kind == "train"}


def test_the_trained_methods_come_from_the_registry():
    assert set(TRAINED) >= {"sft", "lora", "l2", "talr", "dft", "hft", "flow"}
    assert not set(TRAINED) & {"wise", "lines"}  # post-hoc: they combine checkpoints, no training run


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory, tiny_model_dir):
    from forgetbench.analysis.base_scores import score_with_base
    from forgetbench.atomic import write_jsonl
    from forgetbench.data.records import make_record

    root = tmp_path_factory.mktemp("methods")
    records = [make_record(f"r{i}", f"What is {i} times {i}?", str(i * i), answer_type="integer") for i in range(8)]
    write_jsonl(root / "train.jsonl", records)
    stats = score_with_base(str(tiny_model_dir), str(root / "train.jsonl"), "label", 128, "auto",
                            str(root / "losses.jsonl"), str(root / "stats.json"), batch_size=4)
    return root, stats


def test_base_scores_give_per_sample_losses_and_token_statistics(toy_data):
    root, stats = toy_data
    rows = [json.loads(line) for line in (root / "losses.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(8)]
    assert all(r["mean_loss"] > 0 and r["tokens"] >= 3 for r in rows)
    # a random model over a 49k vocabulary gives nearly every token a probability far below 0.05
    assert stats["fraction_below"]["0.05"] == pytest.approx(1.0)
    assert sum(stats["histogram"]["counts"]) == stats["tokens"]


@pytest.mark.parametrize("method", sorted(TRAINED))
def test_three_training_steps_per_method(method, toy_data, tiny_model_dir):
    from forgetbench.training.run import train_cell

    root, _ = toy_data
    out = root / method
    cell = {"model": "tiny", "method": method, "hparams": get_method(method).validate_hparams(TRAINED[method], "t"),
            "lr": 1e-3, "seed": 0, "domain": {"name": "toy", "format": "label"}, "chat_template": "auto",
            "training": {"max_steps": 3, "epochs": 1, "batch_size": 4, "grad_accum": 1, "max_seq_len": 128,
                         "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0,
                         "logging_steps": 1, "precision": "fp32"}}
    summary = train_cell(str(tiny_model_dir), str(root / "train.jsonl"), str(out / "model"), str(out / "log.jsonl"),
                         str(out / "run.json"), cell, base_losses=str(root / "losses.jsonl"))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and all(math.isfinite(r["loss"]) for r in log)
    if method == "hft":
        # the tiny model is mostly embeddings (frozen by HFT): compare with the transformer blocks' parameters
        from safetensors.torch import load_file

        blocks = sum(t.numel() for k, t in load_file(tiny_model_dir / "model.safetensors").items() if ".layers." in k)
        assert 0.4 < summary["trainable_params"] / blocks < 0.6
    if method == "lora":
        assert summary["trainable_params"] < summary["total_params"] / 5


def test_l2_penalty_is_zero_at_start_and_grows(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    method = get_method("l2")(lam=0.1)
    method.prepare_model(model, seed=0)
    assert method.penalty().item() == 0.0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    penalties = []
    for _ in range(3):
        ids = torch.randint(0, 100, (2, 8))
        out = model(input_ids=ids)
        logprobs = torch.log_softmax(out.logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        loss = method.loss(logprobs, torch.ones_like(logprobs), model=model)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        penalties.append(method.penalty().item())
    assert 0 < penalties[0] < penalties[2]


def test_posthoc_methods_do_not_train():
    with pytest.raises(NotImplementedError, match="does not train"):
        get_method("wise")().loss(torch.zeros(1, 1), torch.ones(1, 1))
