"""The evaluation layer end to end on the tiny random Llama: backend choice, task settings, results JSON."""

from __future__ import annotations

import functools
import json

import pytest

from forgetbench.errors import ConfigError
from forgetbench.evaluation import backend as backend_mod
from forgetbench.evaluation.backend import choose_backend, resolve_backend
from forgetbench.evaluation.runner import evaluate, normalize_tasks, plan_passes

OFFLINE_TASKS = ("arc_easy", "hellaswag", "piqa", "boolq", "gsm8k", "humaneval", "general_text", "domain", "domain_loss")
LIMIT = 4


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from forgetbench.models.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def domain_test(tmp_path_factory):
    from forgetbench.data.records import make_record

    records = [
        make_record(
            f"q{i}",
            f"A patient weighs {60 + i} kg. What is the weight in kg?",
            str(60 + i),
            rationale=f"The note says {60 + i} kg.",
            answer_type="decimal",
            lower=59.5 + i,
            upper=60.5 + i,
            source="fixture",
        )
        for i in range(10)
    ]
    path = tmp_path_factory.mktemp("domain") / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def full_run(tiny_model, domain_test, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "eval.json"
    tasks = {name: {"limit": LIMIT} for name in OFFLINE_TASKS}
    tasks["gsm8k"]["max_gen_toks"] = 24  # a random model never stops early; keep generation short
    tasks["humaneval"]["max_gen_toks"] = 24
    result = evaluate(tiny_model, out, tasks, seed=0, batch_size=8, domain_test_path=domain_test, domain_format="label",
                      items_out=out.with_suffix(".items.jsonl"))
    return out, result


def test_choose_backend_at_run_time(monkeypatch):
    monkeypatch.setattr(backend_mod, "cuda_available", lambda: False)
    monkeypatch.setattr(backend_mod, "vllm_installed", lambda: False)
    assert choose_backend("auto") == "hf"
    assert choose_backend("hf") == "hf"
    with pytest.raises(ConfigError, match=r"needs the vllm package, .*run `make install-vllm`"):
        choose_backend("vllm")
    with pytest.raises(ConfigError, match="'tensorrt' is not one of auto, hf, vllm"):
        choose_backend("tensorrt")
    # vLLM's CPU build is accepted without CUDA; `auto` stays with transformers on a CPU
    monkeypatch.setattr(backend_mod, "vllm_installed", lambda: True)
    assert choose_backend("vllm") == "vllm"
    assert choose_backend("auto") == "hf"
    monkeypatch.setattr(backend_mod, "cuda_available", lambda: True)
    assert choose_backend("auto") == "vllm"


def test_resolve_backend_follows_the_jobs_gpus():
    assert resolve_backend("auto", 0) == "hf"
    assert resolve_backend("auto", 1) == "vllm" == resolve_backend("auto", 4)
    assert resolve_backend("hf", 2) == "hf"
    assert resolve_backend("vllm", 0) == "vllm"
    with pytest.raises(ConfigError, match="'trt' is not one of"):
        resolve_backend("trt", 1)


KINDS = {"arc_easy": {"fb_arc_easy": "multiple_choice"}, "domain": {"fb_domain": "generate_until"},
         "general_text": {"fb_general_text": "loglikelihood_rolling"}, "gsm8k": {"fb_gsm8k": "generate_until"}}


@pytest.mark.parametrize(
    "backend, adapter, lora, platform, expected",
    [
        ("vllm", False, "adapter", "cpu", [(["arc_easy", "domain", "general_text", "gsm8k"], None)]),
        ("hf", True, "adapter", "cpu", [(["arc_easy", "domain", "general_text", "gsm8k"], "merged")]),
        ("vllm", True, "merged", "cpu", [(["arc_easy", "domain", "general_text", "gsm8k"], "merged")]),
        ("vllm", True, "adapter", "cuda", [(["arc_easy", "domain", "general_text", "gsm8k"], "adapter")]),
        # the CPU build's LoRA kernels cannot score prompts: generation unmerged, log-likelihoods merged
        ("vllm", True, "adapter", "cpu", [(["domain", "gsm8k"], "adapter"), (["arc_easy", "general_text"], "merged")]),
    ],
)
def test_plan_passes(backend, adapter, lora, platform, expected):
    passes = plan_passes(KINDS, backend, adapter, lora, platform)
    assert [(p.tasks, p.lora) for p in passes] == expected


def test_plan_passes_with_only_generation_tasks_on_cpu_is_one_adapter_pass():
    passes = plan_passes({"domain": KINDS["domain"]}, "vllm", True, "adapter", "cpu")
    assert [(p.tasks, p.lora) for p in passes] == [(["domain"], "adapter")]


def test_choose_backend_never_imports_vllm():
    import sys

    choose_backend("auto")
    assert "vllm" not in sys.modules


@pytest.mark.parametrize(
    "tasks, message",
    [
        ({"mmlu": {}}, "'mmlu' has no offline data"),
        ({"arc_challenge": {"source": "offline"}}, "'arc_challenge' has no offline data"),
        ({"ifeval": {"num_fewshot": 2}}, "'ifeval' is zero-shot only"),
        ({"domain": {"source": "hub"}}, "'domain' has no hub version"),
        ({"humaneval": {"num_fewshot": 3}}, "zero-shot only"),
        ({"winogrande": {"metric": 3}}, "metric must be a name"),
        ({"arc_easy": {"limit": 0}}, "limit must be a positive integer"),
        ({"arc_easy": {"shots": 5}}, "unknown setting"),
        ({"arc_easy": {"version": [1]}}, "version must be a string or number"),
        ({}, "no tasks"),
    ],
)
def test_bad_task_settings_raise_config_error(tasks, message):
    with pytest.raises(ConfigError, match=message):
        normalize_tasks(tasks)


def test_settings_defaults():
    assert normalize_tasks({"arc_easy": None}) == {"arc_easy": {"limit": None, "num_fewshot": 0, "source": "offline", "max_gen_toks": None, "version": None}}


def test_hub_task_offline_names_the_task(tiny_model, tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    # empty caches, so the result does not depend on what this machine downloaded before
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as err:
        evaluate(tiny_model, tmp_path / "eval.json", {"arc_easy": {"limit": 2}, "mmlu": {"source": "hub", "limit": 2}})
    text = str(err.value)
    assert "'mmlu'" in text and "cais/mmlu" in text and "HF_HUB_OFFLINE" in text
    assert not (tmp_path / "eval.json").exists()


def test_domain_task_needs_its_test_set(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="domain_test_path"):
        evaluate(tiny_model, tmp_path / "eval.json", {"domain": {"limit": 2}})


def test_evaluate_writes_every_task(full_run):
    out, result = full_run
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result["metrics"]) == set(OFFLINE_TASKS)
    for name, m in result["metrics"].items():
        assert m["metric"] in m and m["score"] == m[m["metric"]]
        if name == "general_text":
            assert m["metric"] == "bits_per_byte" and m["score"] > 0 and m["higher_is_better"] is False
            assert m["word_perplexity"] > 1
        elif name == "domain_loss":
            # a random model over a 49k-token vocabulary: about ln(49152) = 10.8 nats per token
            assert m["metric"] == "nll_per_token" and 9 < m["score"] < 15 and m["higher_is_better"] is False
        else:
            assert 0.0 <= m["score"] <= 1.0 and m["higher_is_better"] is True
    expected = {
        "arc_easy": "acc",
        "hellaswag": "acc_norm",
        "piqa": "acc",
        "boolq": "acc",
        "gsm8k": "exact_match",
        "humaneval": "pass@1",
        "domain": "accuracy",
    }
    assert {n: result["metrics"][n]["metric"] for n in expected} == expected
    assert result["metrics"]["gsm8k"]["filter"] == "final_answer"


def test_items_file_reproduces_every_score(full_run):
    from forgetbench.aggregation.intervals import read_items

    out, result = full_run
    items = read_items(out.with_suffix(".items.jsonl"), result["metrics"])  # raises if a score is not reproduced
    assert {task: len(scores.keys) for task, scores in items.items()} == {task: LIMIT for task in OFFLINE_TASKS}
    assert items["domain_loss"].den.min() >= 3  # each reference response's token count ("\nAnswer: 6x")


def test_evaluate_records_settings(full_run, tiny_model):
    settings = full_run[1]["settings"]
    assert settings["backend"] == "hf" and settings["batch_size"] == 8 and settings["seed"] == 0
    assert settings["lm_eval_version"] == "0.4.13" and settings["model_dir"] == str(tiny_model)
    assert settings["adapter_dir"] is None and settings["dtype"] == "float32"
    assert settings["chat_template"] is True and len(settings["chat_template_sha256"]) == 64  # SmolLM2 tokenizer
    for name in OFFLINE_TASKS:
        task = settings["tasks"][name]
        assert task["limit"] == LIMIT and task["n_evaluated"] == LIMIT and task["num_fewshot"] == 0
        assert task["version"] == (2.0 if name == "gsm8k" else 1.0) and task["lm_eval_task"].startswith("fb_")
    assert settings["tasks"]["humaneval"]["lm_eval_task"] == "fb_humaneval_instruct"
    assert settings["tasks"]["domain"]["max_gen_toks"] == 16  # label format default
    assert settings["tasks"]["gsm8k"]["max_gen_toks"] == 24


def test_domain_references_longer_than_max_gen_toks_are_counted_and_warned(tiny_model, tmp_path, capsys):
    """Counted over the evaluated subset (limit 3 of 5, seed 0: items 0, 3 and 4), of which only item 0 has a long
    reference; a count over the whole file would give 3 of 5."""
    from transformers import AutoTokenizer

    from forgetbench.data.prompts import build_response
    from forgetbench.data.records import make_record

    records = [make_record(f"q{i}", f"Item {i}: what is {i} + {i}?", str(2 * i), answer_type="integer",
                           rationale=("Add the two numbers. " * 10 if i < 3 else "") + f"{i} + {i} = {2 * i}.")
               for i in range(5)]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    lengths = [len(tokenizer(build_response(r, "cot"), add_special_tokens=False)["input_ids"]) for r in records]
    assert lengths[0] > 16 >= max(lengths[3:])
    result = evaluate(tiny_model, tmp_path / "eval.json", {"domain": {"limit": 3, "max_gen_toks": 16}}, seed=0,
                      domain_test_path=path, domain_format="cot")
    beyond = json.loads((tmp_path / "eval.json").read_text())["settings"]["tasks"]["domain"][
        "reference_longer_than_max_gen_toks"]
    assert beyond == {"items": 1, "of": 3, "share": 1 / 3, "longest_tokens": lengths[0]} == \
        result["settings"]["tasks"]["domain"]["reference_longer_than_max_gen_toks"]
    assert (f"warning: 1 of 3 domain test items (33.3 %) have a reference response longer than max_gen_toks 16 (the "
            f"longest has {lengths[0]} tokens): a model answering like its training targets is cut off before the "
            f"answer there; raise evaluation.domain.max_gen_toks to {lengths[0]}") in capsys.readouterr().err


def test_lora_adapter_fewshot_and_no_chat_template(tiny_model, full_run, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    # random B (not the usual zeros) so that the adapter visibly changes the model
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(tmp_path / "adapter")

    tasks = {
        "general_text": {"limit": LIMIT},
        "humaneval": {"limit": 2, "max_gen_toks": 8},
        "arc_easy": {"limit": 2, "num_fewshot": 2},
    }
    adapter = tmp_path / "adapter"
    result = evaluate(tiny_model, tmp_path / "eval.json", tasks, adapter_dir=adapter, seed=0, chat_template="none")
    settings = result["settings"]
    assert settings["adapter_dir"] == str(tmp_path / "adapter") and settings["chat_template"] is False
    assert settings["tasks"]["humaneval"]["lm_eval_task"] == "fb_humaneval"
    assert settings["tasks"]["arc_easy"]["num_fewshot"] == 2
    base_bpb = full_run[1]["metrics"]["general_text"]["score"]  # same subset: same seed and limit
    assert result["metrics"]["general_text"]["score"] != pytest.approx(base_bpb, rel=1e-6)


def test_version_pin_that_differs_fails_before_the_model_loads(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match=r"'arc_easy' is pinned to version 2.0 but lm-eval's 'fb_arc_easy' is version 1.0"):
        evaluate(tiny_model, tmp_path / "eval.json", {"arc_easy": {"limit": 2, "version": "2.0"}})
    assert not (tmp_path / "eval.json").exists()


def test_version_pin_that_matches_is_recorded(tiny_model, tmp_path):
    result = evaluate(tiny_model, tmp_path / "eval.json", {"arc_easy": {"limit": 2, "version": 1.0}}, seed=0)
    assert result["settings"]["tasks"]["arc_easy"]["version"] == 1.0


def test_response_cache_resumes_without_recomputing(tiny_model, domain_test, tmp_path, monkeypatch):
    """A rerun with the same cache answers every request from it: the model is never asked again."""
    from lm_eval.models.huggingface import HFLM

    from forgetbench.evaluation.cache import response_cache

    tasks = {"arc_easy": {"limit": 3}, "general_text": {"limit": 2}, "domain": {"limit": 3, "max_gen_toks": 4}}
    cache = response_cache(tmp_path / "cache", "all", tiny_model, data_files=[domain_test], tasks=tasks)
    first = evaluate(tiny_model, tmp_path / "a.json", tasks, seed=0, domain_test_path=domain_test, cache=cache)
    assert (tmp_path / "cache" / f"{cache.name}_rank0.db").stat().st_size > 0

    def refuse(self, requests, *args, **kwargs):
        raise AssertionError(f"the model was asked {len(requests)} request(s) that the cache holds")

    for method in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        monkeypatch.setattr(HFLM, method, refuse)
    second = evaluate(tiny_model, tmp_path / "b.json", tasks, seed=0, domain_test_path=domain_test, cache=cache)
    assert {k: v["score"] for k, v in second["metrics"].items()} == {k: v["score"] for k, v in first["metrics"].items()}
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()  # deterministic on CPU


def test_response_cache_name_changes_with_the_weights_and_the_settings(tiny_model, tmp_path):
    import os

    from forgetbench.evaluation.cache import response_cache

    folder = tmp_path / "cache"
    one = response_cache(folder, "general", tiny_model, tasks={"arc_easy": {"limit": 3}})
    assert one == response_cache(folder, "general", tiny_model, tasks={"arc_easy": {"limit": 3}})
    assert one.name.startswith("general-") and one.parent == folder
    assert one != response_cache(folder, "general", tiny_model, tasks={"arc_easy": {"limit": 4}})
    weights = next(p for p in tiny_model.iterdir() if p.suffix == ".safetensors")
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a retrained model rewrites its weights
    try:
        assert one != response_cache(folder, "general", tiny_model, tasks={"arc_easy": {"limit": 3}})
    finally:
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_merge_families(tmp_path):
    from forgetbench.evaluation.merge import merge_families

    cell = {"model": "m", "method": "sft", "lr": 1e-5, "seed": 0}
    general = {"metrics": {"arc_easy": {"score": 0.5}, "general_text": {"score": 1.2}}, "settings": {"backend": "hf"},
               "cell": cell, "family": "general"}
    domain = {"metrics": {"domain": {"score": 0.25}}, "settings": {"backend": "hf"}, "cell": cell, "family": "domain"}
    for name, result in (("general", general), ("domain", domain)):
        (tmp_path / f"{name}.json").write_text(json.dumps(result))
    paths = {name: tmp_path / f"{name}.json" for name in ("general", "domain")}
    merged = merge_families(paths, tmp_path / "metrics.json")
    assert json.loads((tmp_path / "metrics.json").read_text()) == merged
    assert merged["metrics"] == {"arc_easy": {"score": 0.5}, "general_text": {"score": 1.2}, "domain": {"score": 0.25}}
    assert merged["cell"] == cell and merged["status"] == "finished"
    assert merged["families"]["domain"]["settings"] == {"backend": "hf"}
    (tmp_path / "domain.json").write_text(json.dumps({**domain, "metrics": {"arc_easy": {"score": 0.1}}}))
    with pytest.raises(ValueError, match=r"domain.json: task\(s\) arc_easy already come from another family"):
        merge_families(paths, tmp_path / "again.json")


def test_scored_positions_model_gives_hflms_loglikelihoods_from_fewer_logits(tiny_model_dir):
    """The LM head from the first scored position of each batch: the same log-likelihoods and greedy flags as
    lm-eval's HFLM, on requests of mixed context lengths in one batch (the longest context decides nothing),
    with rolling log-likelihood (every position scored) unchanged."""
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forgetbench.evaluation.scored_logits import ScoredPositionsHFLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    pairs = [("Question: which is a fruit? Answer:", " an apple"), ("Question: which is a fruit? Answer:", " a chair"),
             ("A long context. " * 30 + "So the answer is", " 42, because the numbers add up"),
             ("A short context:", " one"), ("The patient is 54 years old and weighs 80 kg. " * 5, "Answer: 27.3")]
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    rolling = [Instance("loglikelihood_rolling", {}, ("It was a dark and stormy night. " * 12,), 0)]
    reference = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, device="cpu")
    scored = ScoredPositionsHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, device="cpu")
    kept = []
    forward = model.forward

    @functools.wraps(forward)
    def counting(*args, **kwargs):
        kept.append(kwargs.get("logits_to_keep", 0))
        return forward(*args, **kwargs)

    model.forward = counting
    got = scored.loglikelihood(requests)
    model.forward = forward
    expected = reference.loglikelihood(requests)
    assert [flag for _, flag in got] == [flag for _, flag in expected]
    assert [ll for ll, _ in got] == pytest.approx([ll for ll, _ in expected], abs=1e-4)
    # two batches (4 + 1 requests), each from its own first scored position rather than all positions
    assert len(kept) == 2 and all(k > 0 for k in kept), kept
    assert scored.loglikelihood_rolling(rolling) == pytest.approx(reference.loglikelihood_rolling(rolling), abs=1e-4)

    # a model whose forward takes no logits_to_keep runs whole, with the same scores
    kept.clear()
    model.forward = lambda input_ids, **kwargs: kept.append(kwargs.get("logits_to_keep", 0)) or forward(input_ids)
    plain = ScoredPositionsHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, device="cpu")
    whole = plain.loglikelihood(requests)
    assert [ll for ll, _ in whole] == pytest.approx([ll for ll, _ in got], abs=1e-5) and kept == [0, 0]
    model.forward = forward
