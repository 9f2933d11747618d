"""Offline benchmark loaders, seeded subsets, the lm-eval task loaders, HumanEval execution and the GSM8K filter."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from forgetbench.errors import ConfigError
from forgetbench.evaluation import general_data, humaneval_exec

ROOT = Path(__file__).resolve().parents[1]
TASKS_DIR = ROOT / "workflow" / "tasks"
SHARED_GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"

FIELDS = {
    "arc_easy": {"id", "question", "choices", "gold"},
    "hellaswag": {"id", "activity_label", "query", "choices", "gold"},
    "piqa": {"id", "goal", "sol1", "sol2", "gold"},
    "boolq": {"id", "question", "passage", "answer", "gold"},
    "gsm8k": {"id", "question", "answer", "short_answer"},
    "humaneval": {"task_id", "prompt", "canonical_solution", "test", "entry_point"},
    "general_text": {"id", "text"},
}
OFFICIAL_COUNTS = {
    "arc_easy": 2376,
    "hellaswag": 10042,
    "piqa": 1838,
    "boolq": 3270,
    "gsm8k": 1319,
    "humaneval": 164,
    "general_text": 5153,
}


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"_test_{name}", TASKS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fb_loaders():
    return _module("fb_loaders")


@pytest.mark.parametrize("name", sorted(OFFICIAL_COUNTS))
def test_loader_counts_and_fields(name):
    records = getattr(general_data, f"load_{name}")()
    assert len(records) == OFFICIAL_COUNTS[name] == general_data.COUNTS[name]
    for record in records[:50]:
        assert set(record) == FIELDS[name]
    assert len({r.get("id", r.get("task_id")) for r in records}) == len(records), "ids are unique"


def test_multiple_choice_records_are_well_formed():
    for name in ("arc_easy", "hellaswag"):
        for r in general_data.load(name):
            assert 2 <= len(r["choices"]) <= 5 and 0 <= r["gold"] < len(r["choices"])
            assert all(isinstance(c, str) and c for c in r["choices"])
    arc = general_data.load_arc_easy()[0]
    assert arc["id"] == "Mercury_417466" and not arc["question"].startswith("Question:")
    assert all(r["gold"] in (0, 1) for r in general_data.load_piqa())
    assert all(r["gold"] == int(r["answer"]) for r in general_data.load_boolq())
    assert len(general_data.load("arc_easy_validation")) == 570


def test_gsm8k_answers_and_cot_exemplars():
    first = general_data.load_gsm8k()[0]
    assert first["short_answer"] == "18" and first["answer"].endswith("#### 18")
    exemplars = general_data.load("gsm8k_fewshot")
    assert len(exemplars) == 8
    assert exemplars[0]["short_answer"] == "6" and exemplars[0]["answer"].endswith("So the answer is 6.")
    test_questions = {r["question"] for r in general_data.load_gsm8k()}
    assert not test_questions & {e["question"] for e in exemplars}


def test_general_text_is_whole_passages():
    text = general_data.load_general_text()[0]["text"]
    assert text.startswith("In my palm is a clear stone") and text.endswith("I don't care about signs")


def test_loaders_return_fresh_copies():
    general_data.load_piqa()[0]["goal"] = "changed"
    assert general_data.load_piqa()[0]["goal"] != "changed"


@pytest.mark.skipif(not SHARED_GSM8K.exists(), reason=f"{SHARED_GSM8K} absent (only on dev machines and CI)")
def test_gsm8k_matches_shared_copy():
    shared = json.loads(SHARED_GSM8K.read_text(encoding="utf-8").splitlines()[0])
    ours = general_data.load_gsm8k()[0]
    assert (ours["question"], ours["answer"]) == (shared["question"], shared["answer"])


def test_seeded_subset_is_fixed_random_and_seed_dependent():
    records = list(range(1000))
    a, rest = general_data.seeded_subset(records, 20, seed=1)
    assert a == general_data.seeded_subset(records, 20, seed=1)[0]
    assert a != general_data.seeded_subset(records, 20, seed=2)[0]
    assert a != records[:20], "not the first N"
    assert a == sorted(a), "source order is kept"
    assert sorted(a + rest) == records and not set(a) & set(rest)
    assert general_data.seeded_subset(records, None, seed=1) == (records, [])
    assert general_data.seeded_subset(records, 5000, seed=1) == (records, [])


def test_task_loader_applies_limit_seed_and_disjoint_fewshot_pool(fb_loaders):
    def ids(seed, limit=8):
        ds = fb_loaders.hellaswag(forgetbench={"hellaswag": {"limit": limit, "seed": seed}}, version=1.0)
        assert len(ds["test"]) == limit and len(ds["fewshot"]) == 10042 - limit
        assert not set(ds["test"]["id"]) & set(ds["fewshot"]["id"])
        return ds["test"]["id"]

    assert ids(3) == ids(3)
    assert ids(3) != ids(4)
    # without settings (e.g. lm_eval CLI without --metadata) a loader gives the whole set
    assert len(fb_loaders.piqa()["test"]) == 1838
    arc = fb_loaders.arc_easy(forgetbench={"arc_easy": {"limit": 4, "seed": 0, "num_fewshot": 5}})
    assert len(arc["fewshot"]) == 570, "ARC-Easy few-shot examples come from its validation split"


def test_task_loader_rejects_more_shots_than_the_pool(fb_loaders):
    with pytest.raises(ConfigError, match="num_fewshot 9"):
        fb_loaders.gsm8k(forgetbench={"gsm8k": {"limit": 4, "num_fewshot": 9}})
    with pytest.raises(ConfigError, match="num_fewshot 2"):
        fb_loaders.boolq(forgetbench={"boolq": {"num_fewshot": 2}})


def test_domain_loader_builds_prompts_from_records(fb_loaders, tmp_path):
    from forgetbench.data.prompts import build_prompt
    from forgetbench.data.records import make_record

    records = [make_record(i, f"What is {i} + {i}?", str(2 * i), answer_type="integer") for i in range(6)]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    ds = fb_loaders.domain(forgetbench={"domain": {"path": str(tmp_path), "format": "cot", "limit": 3, "seed": 0}})
    assert len(ds["test"]) == 3
    for doc in ds["test"]:
        record = json.loads(doc["record"])
        assert doc["prompt_text"] == build_prompt(record, "cot") and doc["answer"] == record["answer"]
    with pytest.raises(ConfigError, match="domain"):
        fb_loaders.domain(forgetbench={})


def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail():
    problems = general_data.load_humaneval()
    for problem in problems[:5]:
        assert humaneval_exec.check_completion(problem, problem["canonical_solution"])
    assert not humaneval_exec.check_completion(problems[0], "    return not True\n")
    assert not humaneval_exec.check_completion(problems[0], "    this is not python\n")
    # a chat model closes its code block and explains: the prose is cut off
    assert humaneval_exec.check_completion(problems[2], problems[2]["canonical_solution"] + "```\nThis works because ...")


def test_humaneval_whole_function_completion_passes():
    problem = general_data.load_humaneval()[2]
    whole = "\n" + problem["prompt"] + problem["canonical_solution"] + "```\nExplanation: ..."
    assert humaneval_exec.check_completion(problem, whole)


def test_humaneval_infinite_loop_times_out_within_the_limit():
    problem = general_data.load_humaneval()[0]
    start = time.monotonic()
    passed, status = humaneval_exec.run_program(humaneval_exec.build_program(problem, "    while True:\n        pass\n"), timeout=1.0)
    assert (passed, status) == (False, "timed out")
    assert time.monotonic() - start < 5
