"""Fidelity to the papers and to the benchmarks' own scoring: LiNeS's factor outside the residual blocks, TALR's
median and its two published readings, GSM8K's final-answer extraction (against lm-eval's own filters).

    .venv/bin/python -m pytest -q tests/test_fidelity.py
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import test_sharding
from forgetbench.errors import ConfigError
from forgetbench.methods import get_method, lines, talr
from test_sharding import data  # noqa: F401 (the fixture: records of 5 to 40 response tokens)

LOG = math.log
TASKS_DIR = Path(__file__).resolve().parents[1] / "workflow" / "tasks"


# --- LiNeS ------------------------------------------------------------------------------------------------

OUTSIDE_BLOCKS = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]
BLOCK_PARTS = ["self_attn.q_proj.weight", "self_attn.q_proj.bias", "mlp.down_proj.weight", "input_layernorm.weight"]


def llama_state(num_layers: int, fill: float) -> dict:
    """The tensor names of a Llama/Qwen state dict (an untied LM head), each a small tensor of `fill`."""
    names = OUTSIDE_BLOCKS + [f"model.layers.{i}.{part}" for i in range(num_layers) for part in BLOCK_PARTS]
    return {name: torch.full((2, 3), fill) for name in names}


def test_lines_scales_tensors_outside_the_residual_blocks_by_alpha():
    alpha, beta, layers = 0.1, 0.6, 4
    expected = dict.fromkeys(OUTSIDE_BLOCKS, alpha)
    for i in range(layers):
        for part in BLOCK_PARTS:
            expected[f"model.layers.{i}.{part}"] = alpha + beta * i / (layers - 1)  # 0.1, 0.3, 0.5, 0.7
    base, tuned = llama_state(layers, 1.0), llama_state(layers, 3.0)
    assert {n: lines.layer_scale(n, layers, alpha, beta) for n in base} == pytest.approx(expected)
    out = lines.scale(base, tuned, layers, alpha=alpha, beta=beta)
    # θ₀ + λτ with θ₀ = 1, τ = 2
    assert {n: out[n].unique().tolist() for n in out} == {n: [pytest.approx(1 + 2 * f)] for n, f in expected.items()}


# --- TALR: the median ----------------------------------------------------------------------------------

# 20 token losses: the middle two are 0.642 and 0.662, so the median is 0.652 (torch.median says 0.642).
LOSSES = [0.85, 0.11, 2.3, 0.642, 0.45, 1.05, 0.31, 0.662, 0.58, 4.1,
          0.23, 0.93, 0.51, 1.6, 0.38, 0.71, 0.55, 1.2, 0.61, 0.78]


def test_talr_tau_of_an_even_count_is_the_mean_of_the_two_middle_losses():
    losses = torch.tensor(LOSSES)
    assert losses.median().item() == pytest.approx(0.642)  # what τ was
    assert talr.median(losses).item() == pytest.approx(0.652)
    # as a padded batch [2, 12]: the 4 padding positions hold junk that must not count
    logprobs = torch.cat([-losses, torch.tensor([-9.0, 0.0, -0.1, -50.0])]).view(2, 12)
    mask = torch.cat([torch.ones(20), torch.zeros(4)]).view(2, 12)
    weights = talr.token_weights(logprobs, mask)
    expected = torch.softmax(-losses / 0.652, 0)
    assert weights.flatten()[:20].tolist() == pytest.approx(expected.tolist(), rel=1e-6)
    assert weights.flatten()[20:].tolist() == [0.0] * 4
    assert talr.step_statistics(-losses, torch.tensor([1.0]))["tau"].item() == pytest.approx(0.652)
    assert talr.median(torch.tensor([3.0, 1.0, 2.0])).item() == 2.0
    assert math.isnan(talr.median(torch.tensor([1.0, 2.0]), torch.tensor([False, False])).item())
    assert math.isnan(talr.median(torch.tensor([])).item())


# --- TALR: the two readings ----------------------------------------------------------------------------

# three sequences: mean losses 2, 1 and 0.25 (the third has one response token)
SEQ_LOGPROBS = torch.tensor([[-1.0, -3.0, -2.0], [-0.5, -1.5, 0.0], [-0.25, 0.0, 0.0]])
SEQ_MASK = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]])


def test_talr_tau_from_sequences_is_the_median_sequence_mean_loss():
    assert talr.batch_tau(SEQ_LOGPROBS, SEQ_MASK, "sequences").item() == pytest.approx(1.0)
    assert talr.batch_tau(SEQ_LOGPROBS, SEQ_MASK, "tokens").item() == pytest.approx(1.25)  # 6 tokens: (1 + 1.5) / 2
    # a sequence without response tokens does not count: sequence means 2 and 1
    mask = SEQ_MASK.clone()
    mask[2] = 0
    assert talr.batch_tau(SEQ_LOGPROBS, mask, "sequences").item() == pytest.approx(1.5)
    method = get_method("talr")(tau_from="sequences")
    stats = method.step_statistics(SEQ_LOGPROBS[SEQ_MASK.bool()], torch.tensor([2.0, 1.0, 0.25, 3.0]))
    assert stats["tau"].item() == pytest.approx(1.5)


def test_talr_power_weights_are_floored_unnormalised_probabilities():
    logprobs = torch.tensor([[LOG(0.5), LOG(0.25)], [LOG(0.001), LOG(0.9)]], requires_grad=True)
    mask = torch.tensor([[1, 1], [1, 0]])
    w = talr.token_weights(logprobs, mask, tau=0.5, weights="power")
    # p^(1/0.5) = p²: 0.25, 0.0625, and 1e-6 floored to 0.01; masked 0
    assert w.flatten().tolist() == pytest.approx([0.25, 0.0625, 0.01, 0.0])
    assert not w.requires_grad
    method = get_method("talr")(weights="power", tau=0.5)
    assert (method.unit, method.needs_step_logprobs) == ("tokens", False)
    loss = method.loss(logprobs, mask)
    assert loss.item() == pytest.approx((0.25 * LOG(2) + 0.0625 * LOG(4) + 0.01 * LOG(1000)) / 3)
    # default τ: the median token loss, ln 4 (of ln 2, ln 4, ln 1000): w = p^(1/ln 4), 0.001^(1/ln 4) = 0.007 floored
    w = talr.token_weights(logprobs, mask, weights="power")
    assert w.flatten().tolist() == pytest.approx([math.exp(-0.5), math.exp(-1.0), 0.01, 0.0], rel=1e-6)
    assert get_method("talr")().unit == "step" and get_method("talr")(weights="power").needs_step_logprobs
    # a large τ is plain SFT
    power = get_method("talr")(weights="power", tau=1e9).loss(logprobs, mask)
    assert power.item() == pytest.approx(get_method("sft")().loss(logprobs, mask).item(), rel=1e-6)


@pytest.mark.parametrize("weights", ["softmax", "power"])
@pytest.mark.parametrize("tau_from", ["tokens", "sequences"])
def test_talr_a_split_step_equals_the_whole_step(weights, tau_from):
    """What the trainer does with two micro-batches (step_statistics, then each part's terms over the step's
    count of the unit) gives the loss and gradient of the step taken at once."""
    method = get_method("talr")(weights=weights, tau_from=tau_from)
    whole = SEQ_LOGPROBS.clone().requires_grad_()
    method.loss(whole, SEQ_MASK).backward()
    split = SEQ_LOGPROBS.clone().requires_grad_()
    means = -(split * SEQ_MASK).sum(-1) / SEQ_MASK.sum(-1)
    stats = method.step_statistics(split[SEQ_MASK.bool()], means)
    count = {"tokens": SEQ_MASK.sum().item(), "step": 1.0}[method.unit]
    parts = (slice(0, 2), slice(2, 3))
    loss = sum(method.loss_terms(split[part], SEQ_MASK[part], step=stats) / count for part in parts)
    loss.backward()
    assert loss.item() == pytest.approx(method.loss(SEQ_LOGPROBS, SEQ_MASK).item(), rel=1e-6)
    assert split.grad.flatten().tolist() == pytest.approx(whole.grad.flatten().tolist(), rel=1e-6)


def test_talr_rejects_an_unknown_reading():
    with pytest.raises(ConfigError, match=r"methods.talr.weights: 'powr' is not one of \['softmax', 'power'\]"):
        get_method("talr")(weights="powr")
    assert get_method("talr").validate_hparams({}, "m") == {"tau": None, "weights": "softmax", "tau_from": "tokens"}


@pytest.mark.parametrize("hparams", [{"weights": "power", "tau_from": "sequences"}, {"tau_from": "sequences"}])
def test_talr_readings_train_the_same_with_accumulated_micro_batches(hparams, tiny_model_dir, data, tmp_path,
                                                                     monkeypatch):
    """The trainer's gradient-free pass hands the step's sequence losses to step_statistics (tests/test_sharding.py
    runs the default reading the same way)."""
    monkeypatch.setitem(test_sharding.METHODS, "talr", hparams)
    whole_log, whole = test_sharding.run("talr", tiny_model_dir, data, tmp_path / "whole", batch_size=4, grad_accum=1)
    split_log, split = test_sharding.run("talr", tiny_model_dir, data, tmp_path / "split", batch_size=2, grad_accum=2)
    assert [x for pair in split_log for x in pair] == pytest.approx([x for pair in whole_log for x in pair], rel=1e-4)
    assert max(float((split[k] - whole[k]).abs().max()) for k in whole) <= 1e-5


def test_talr_sequence_losses_are_gathered_over_processes(tiny_model_dir, data, tmp_path, monkeypatch):
    monkeypatch.setitem(test_sharding.METHODS, "talr", {"weights": "power", "tau_from": "sequences"})
    one_log, one, _ = test_sharding.run_processes("talr", tiny_model_dir, data, tmp_path / "one", 1, batch_size=4)
    two_log, two, _ = test_sharding.run_processes("talr", tiny_model_dir, data, tmp_path / "two", 2, batch_size=2)
    assert [r[k] for r in two_log for k in ("loss", "grad_norm")] == \
        pytest.approx([r[k] for r in one_log for k in ("loss", "grad_norm")], rel=1e-4)
    assert max(float((two[k] - one[k]).abs().max()) for k in one) <= 1e-5


# --- GSM8K: the final answer -------------------------------------------------------------------------

def lm_eval_gsm8k_yaml() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k.yaml"


def scorer(yaml_path: Path, filter_name: str):
    """generation, reference -> exact_match under a task YAML's named filter pipeline and its metric settings."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.api.registry import get_filter
    from lm_eval.tasks._yaml_loader import load_yaml

    config = load_yaml(yaml_path, resolve_func=True)
    (pipeline,) = [p for p in config["filter_list"] if p["name"] == filter_name]
    steps = [get_filter(s["function"])(**{k: v for k, v in s.items() if k != "function"}) for s in pipeline["filter"]]
    (metric,) = config["metric_list"]
    settings = {k: v for k, v in metric.items() if k not in ("metric", "aggregation", "higher_is_better")}

    def score(generation: str, reference: str) -> bool:
        resps = [[generation]]
        for step in steps:
            resps = step.apply(resps, [{}])
        (prediction,) = resps
        return bool(exact_match_hf_evaluate([prediction], [reference], **settings)["exact_match"])

    return score


# completion, gold answer, then correct under: ours, lm-eval's strict-match (#### N), its flexible-extract (last number)
COMPLETIONS = [
    # a base model in GSM8K's own format: every filter agrees
    ("Janet's ducks lay 16 eggs. She eats 3 and bakes 4, so 16 - 3 - 4 = <<16-3-4=9>>9 are left. "
     "She sells them at $2: 9 * 2 = $<<9*2=18>>18.\n#### 18", "18", True, True, True),
    # it goes on after its answer: the last number is not the answer
    ("3 sprints 3 times a week is 9 sprints of 60 meters, 9 * 60 = 540 meters.\n#### 540\n\nLet me try 2 more "
     "questions.", "540", True, True, False),
    # it writes a further problem and answers it: the first marker is the answer to the question asked
    ("5 + 3 = 8 apples.\n#### 8\n\nProblem: Tom has 4 cars and buys 2 more.\nTom has 4 + 2 = 6 cars.\n#### 6",
     "8", True, True, False),
    # answers compare as numbers, not strings
    ("3 * 3 * 60 = 540.0\n#### 540.0", "540", True, False, False),
    ("She pays 2 * 6.50 = $13.00 in total.\n#### 13.00", "13", True, False, False),
    ("The store sold 617 shirts on each of the 2 days, 617 * 2 = 1,234 shirts.\nAnswer: 1,234 shirts", "1234",
     True, False, True),
    ("Each pencil costs $7 / 7 = $1, so 7 pencils cost $7.", "7", True, False, True),
    ("She pays $1,250.00 in total.", "1250", True, False, False),
    ("The answer is 18... I think.", "18", True, False, False),  # flexible-extract takes "..."
    # a small instruct model's sentence
    ("She has 16 - 3 - 4 = 9 eggs and makes 9 * 2 = 18 dollars. The answer is 18.", "18", True, False, True),
    ("The answer is 18 but first 3 + 4 = 7.", "18", True, False, False),
    # chat models: LaTeX boxes and bold numbers
    ("We compute 16 - 3 - 4 = 9 eggs, then 9 × $2 = $18.\n\nThe final answer is $\\boxed{18}$.", "18",
     True, False, False),
    ("1. Eggs left: 16 - 3 - 4 = 9\n2. Earnings: 9 × $2 = **$18**\n\nSo Janet makes **$18** every day "
     "(2 dollars per egg).", "18", True, False, False),
    ("**Step 1:** 16 - 3 - 4 = **9** eggs.\n**Step 2:** 9 × 2 = **18**.\n\n#### 18", "18", True, True, True),
    ("The temperature falls from 5 to -7 degrees, a change of -12.\nThe answer is -12.", "-12", True, False, True),
    # wrong or no answer: nothing scores it
    ("16 - 3 = 13 eggs, 13 * 2 = 26.\n#### 26", "18", False, False, False),
    ("I am not sure how to solve this problem.", "18", False, False, False),
]


@pytest.mark.parametrize("completion, gold, ours, strict, flexible", COMPLETIONS,
                         ids=[f"completion{i}" for i in range(len(COMPLETIONS))])
def test_gsm8k_final_answer_against_lm_evals_filters(completion, gold, ours, strict, flexible):
    # lm-eval's gsm8k scores against the whole solution, whose "#### N" its metric's regex keeps
    solution = f"Some reasoning.\n#### {gold}"
    outcome = (scorer(TASKS_DIR / "fb_gsm8k.yaml", "final_answer")(completion, gold),
               scorer(lm_eval_gsm8k_yaml(), "strict-match")(completion, solution),
               scorer(lm_eval_gsm8k_yaml(), "flexible-extract")(completion, solution))
    assert outcome == (ours, strict, flexible)


def test_gsm8k_gold_answers_are_canonical_numbers():
    """exact_match compares the filter's canonical number with the gold string: that is a numeric comparison
    only if every gold answer is written canonically too."""
    from forgetbench.evaluation import general_data
    from forgetbench.scoring import canonical_number, gsm8k_answer

    golds = [r["short_answer"] for r in general_data.load_gsm8k()]
    assert len(golds) == 1319 and all(canonical_number(g) == g for g in golds)
    assert [canonical_number(t) for t in ("$1,250.00", "540.0", "0.50", "-0.0", "+5", "1e3")] == \
        ["1250", "540", "0.5", "0", "5", "1000"]
    assert gsm8k_answer("so \\boxed{\\$1,250.00} in all") == "1250"
    assert gsm8k_answer("**Answer:** $18") == "18"


def test_gsm8k_task_scores_canned_generations_through_lm_eval():
    """The fb_gsm8k task run by lm-eval on canned generations: its filter, metric and the PRIMARY key."""
    import lm_eval
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

    from forgetbench.evaluation.runner import _metrics
    from forgetbench.evaluation.tasks import PRIMARY

    wrong = "Off by one: #### {a}9"
    formats = ["Adding up gives {a}.0\n#### {a}.0", "#### {a}\n\nNow 2 more questions.", "The answer is {a}.",
               "So we get $\\boxed{{{a}}}$.", "It makes **{a}** in 3 days.", wrong]

    class Canned(LM):
        def generate_until(self, requests, disable_tqdm=False):
            return [formats[i % len(formats)].format(a=r.doc["short_answer"]) for i, r in enumerate(requests)]

        def loglikelihood(self, requests, disable_tqdm=False):
            raise NotImplementedError

        loglikelihood_rolling = loglikelihood

    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False,
                          metadata={"forgetbench": {"gsm8k": {"limit": 12, "seed": 0}}})
    out = lm_eval.simple_evaluate(model=Canned(), tasks=["fb_gsm8k"], task_manager=manager, log_samples=True,
                                  bootstrap_iters=0)
    samples = out["samples"]["fb_gsm8k"]
    assert len(samples) == 12
    missed = [s["resps"][0][0].startswith("Off") for s in samples]
    assert [s["exact_match"] for s in samples] == [0.0 if m else 1.0 for m in missed] and sum(missed) == 2
    assert out["versions"]["fb_gsm8k"] == 2.0
    metrics = _metrics(out, "gsm8k", "fb_gsm8k", PRIMARY[("gsm8k", "offline")])
    assert (metrics["metric"], metrics["filter"]) == ("exact_match", "final_answer")
    assert metrics["score"] == pytest.approx(10 / 12)
