"""Any lm-eval task or group in the general suite and as the domain score (`domain.eval`): a user's task YAMLs
over local JSON files, run through the runner on the tiny model, and the parse-time refusals of the dry run."""

from __future__ import annotations

import copy
import json
import statistics

import pytest
import yaml

from conftest import REPO

MC_QUESTIONS = [("What colour is the sky on a clear day?", ["blue", "green", "red"], 0),
                ("How many legs has a spider?", ["six", "eight", "ten"], 1),
                ("Which is a fruit?", ["carrot", "potato", "apple"], 2),
                ("What do bees make?", ["honey", "milk", "silk"], 0),
                ("Which planet is largest?", ["Mars", "Jupiter", "Venus"], 1),
                ("What is frozen water?", ["steam", "mist", "ice"], 2),
                ("Which animal barks?", ["dog", "cat", "cow"], 0),
                ("What is 2 + 2?", ["three", "four", "five"], 1),
                ("Which is a metal?", ["wood", "glass", "iron"], 2),
                ("What do plants need from the sun?", ["light", "sound", "salt"], 0),
                ("Which month follows May?", ["April", "June", "July"], 1),
                ("What shape is a ball?", ["square", "flat", "round"], 2)]


def write_user_tasks(folder):
    """Two multiple-choice tasks (12 and 7 items), a generation task with a regex filter and a group over the
    two multiple-choice tasks (aggregated weighted by size), each over a local JSON-lines file."""
    folder.mkdir(parents=True, exist_ok=True)
    mc = [{"question": q, "choices": c, "label": a} for q, c, a in MC_QUESTIONS]
    (folder / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mc))
    (folder / "mc2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mc[::-1][:7]))
    gen = [{"question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(6)]
    (folder / "gen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gen))
    for name, data in (("fbt_mc", "mc.jsonl"), ("fbt_mc2", "mc2.jsonl")):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({
            "task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(folder / data)}},
            "test_split": "test", "output_type": "multiple_choice",
            "doc_to_text": "Question: {{question}}\nAnswer:", "doc_to_choice": "{{choices}}",
            "doc_to_target": "{{label}}",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0}}, sort_keys=False))
    (folder / "fbt_gen.yaml").write_text(yaml.safe_dump({
        "task": "fbt_gen", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(folder / "gen.jsonl")}},
        "test_split": "test", "output_type": "generate_until",
        "doc_to_text": "Q: {{question}}\nA:", "doc_to_target": "{{answer}}",
        "generation_kwargs": {"until": ["\n"], "max_gen_toks": 6, "do_sample": False},
        "filter_list": [{"name": "last-number", "filter": [
            {"function": "regex", "regex_pattern": "(-?[0-9]+)", "group_select": -1}, {"function": "take_first"}]}],
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 2.0}}, sort_keys=False))
    (folder / "fbt_group.yaml").write_text(yaml.safe_dump({
        "group": "fbt_group", "task": ["fbt_mc", "fbt_mc2"],
        "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": True}],
        "metadata": {"version": 1.0}}, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def user_tasks(tmp_path_factory):
    return write_user_tasks(tmp_path_factory.mktemp("user_tasks") / "tasks")


@pytest.fixture(scope="module")
def user_run(tiny_model_dir, user_tasks, tmp_path_factory):
    from forgetbench.evaluation.runner import evaluate

    out = tmp_path_factory.mktemp("eval") / "eval.json"
    tasks = {"fbt_mc": {}, "fbt_gen": {}, "domain.fbt_mc2": {"metric": "acc_norm"}}
    result = evaluate(tiny_model_dir, out, tasks, seed=0, batch_size=8, include_path=str(user_tasks),
                      items_out=out.with_suffix(".items.jsonl"), samples_out=out.with_suffix(".samples.jsonl"))
    items = [json.loads(line) for line in out.with_suffix(".items.jsonl").read_text().splitlines()]
    return out, result, items


def values(items, task):
    return [item["value"] for item in items if item["task"] == task]


def test_a_user_task_is_scored_by_its_first_metric_and_its_items_reproduce_the_score(user_run):
    out, result, items = user_run
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    mc = result["metrics"]["fbt_mc"]
    assert (mc["metric"], mc["filter"], mc["higher_is_better"]) == ("acc", "none", True)
    assert mc["score"] == mc["acc"] and "acc_norm" in mc
    scores = values(items, "fbt_mc")
    assert len(scores) == 12 and set(scores) <= {0.0, 1.0}
    assert statistics.mean(scores) == pytest.approx(mc["score"], abs=1e-12)
    settings = result["settings"]["tasks"]["fbt_mc"]
    assert settings["source"] == "lm-eval" and settings["lm_eval_task"] == "fbt_mc" and settings["n_evaluated"] == 12
    assert len(result["settings"]["include_path"]) == 1 and result["settings"]["include_path"][0].endswith("tasks")


def test_a_filtered_generation_task_is_scored_under_its_first_filter(user_run):
    _, result, items = user_run
    gen = result["metrics"]["fbt_gen"]
    assert (gen["metric"], gen["filter"]) == ("exact_match", "last-number")
    scores = values(items, "fbt_gen")
    assert len(scores) == 6
    assert statistics.mean(scores) == pytest.approx(gen["score"], abs=1e-12)
    assert result["settings"]["tasks"]["fbt_gen"]["version"] == 2.0


@pytest.fixture(scope="module")
def group_run(tiny_model_dir, user_tasks, tmp_path_factory):
    from forgetbench.evaluation.runner import evaluate

    out = tmp_path_factory.mktemp("group") / "eval.json"
    result = evaluate(tiny_model_dir, out, {"fbt_group": {}}, seed=0, include_path=str(user_tasks),
                      items_out=out.with_suffix(".items.jsonl"))
    return result, [json.loads(line) for line in out.with_suffix(".items.jsonl").read_text().splitlines()]


def test_a_group_is_scored_as_lm_eval_aggregates_it_with_its_leaves_in_the_items(group_run, user_run):
    result, items = group_run
    group = result["metrics"]["fbt_group"]
    assert group["metric"] == "acc"
    leaves = [item["leaf"] for item in items if item["task"] == "fbt_group"]
    assert sorted(set(leaves)) == ["fbt_mc", "fbt_mc2"] and leaves.count("fbt_mc") == 12 and leaves.count("fbt_mc2") == 7
    # weight_by_size: the group's score is the mean over all 19 items, which is what the items reproduce
    scores = values(items, "fbt_group")
    assert statistics.mean(scores) == pytest.approx(group["score"], abs=1e-12)
    assert result["settings"]["tasks"]["fbt_group"]["n_evaluated"] == 19
    # the same model scores its leaf the same inside the group as alone
    alone = {i["doc_id"]: i["value"] for i in user_run[2] if i["task"] == "fbt_mc"}
    assert {i["doc_id"]: i["value"] for i in items if i["leaf"] == "fbt_mc"} == alone


def test_a_task_and_a_group_holding_it_cannot_share_an_evaluation(tiny_model_dir, user_tasks, tmp_path):
    from forgetbench.errors import ConfigError
    from forgetbench.evaluation.runner import evaluate

    with pytest.raises(ConfigError, match="evaluation tasks 'fbt_mc' and 'fbt_group' both run lm-eval task 'fbt_mc'"):
        evaluate(tiny_model_dir, tmp_path / "eval.json", {"fbt_mc": {}, "fbt_group": {}}, include_path=str(user_tasks))
    assert not (tmp_path / "eval.json").exists()


def test_a_domain_eval_task_with_a_configured_metric(user_run):
    _, result, items = user_run
    domain = result["metrics"]["domain.fbt_mc2"]
    assert (domain["metric"], domain["score"]) == ("acc_norm", domain["acc_norm"])
    scores = values(items, "domain.fbt_mc2")
    assert len(scores) == 7 and statistics.mean(scores) == pytest.approx(domain["score"], abs=1e-12)


def test_an_unweighted_group_is_the_mean_of_its_leaves(tiny_model_dir, user_tasks, tmp_path):
    from forgetbench.evaluation.runner import evaluate

    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "fbt_group_flat.yaml").write_text(yaml.safe_dump({
        "group": "fbt_group_flat", "task": ["fbt_mc", "fbt_mc2"],
        "aggregate_metric_list": [{"metric": "acc_norm", "aggregation": "mean", "weight_by_size": False}]}))
    result = evaluate(tiny_model_dir, tmp_path / "eval.json", {"fbt_group_flat": {}}, seed=0,
                      include_path=[str(user_tasks), str(folder)], items_out=tmp_path / "items.jsonl")
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    group = result["metrics"]["fbt_group_flat"]
    assert group["metric"] == "acc_norm"
    leaf_means = [statistics.mean(i["value"] for i in items if i["leaf"] == leaf) for leaf in ("fbt_mc", "fbt_mc2")]
    assert statistics.mean(leaf_means) == pytest.approx(group["score"], abs=1e-12)
    # a group of a group: its leaves through the subgroup
    (folder / "fbt_outer.yaml").write_text(yaml.safe_dump({
        "group": "fbt_outer", "task": ["fbt_group"],
        "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": True}]}))
    result = evaluate(tiny_model_dir, tmp_path / "outer.json", {"fbt_outer": {}}, seed=0,
                      include_path=[str(user_tasks), str(folder)], items_out=tmp_path / "outer.jsonl")
    items = [json.loads(line) for line in (tmp_path / "outer.jsonl").read_text().splitlines()]
    assert result["settings"]["tasks"]["fbt_outer"]["n_evaluated"] == 19 == len(items)
    assert statistics.mean(i["value"] for i in items) == pytest.approx(result["metrics"]["fbt_outer"]["score"], abs=1e-12)


# --- parse time: through the dry run ----------------------------------------------------------------------------

DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def dry_run(workdir, config, name="cfg.yaml", env=None):
    from test_workflow import snakemake

    path = workdir / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake("-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"), f"--configfile={path}",
                       "--directory", str(workdir), env=env)
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("work")


def one_line(output, text):
    lines = [line for line in output.splitlines() if text in line]
    assert lines, output[-3000:]
    return lines[0]


def test_an_unknown_task_name_gets_lm_evals_closest_names(workdir):
    config = copy.deepcopy(DEFAULT)
    config["evaluation"]["general"]["winogrand"] = {}
    code, output = dry_run(workdir, config, "unknown.yaml")
    assert code != 0
    line = one_line(output, "unknown.yaml: evaluation.general.winogrand: 'winogrand' is neither a forgetbench "
                            "catalogue task")
    assert "closest lm-eval names: winogrande" in line


def test_a_metric_the_task_lacks_names_the_ones_it_has(workdir, user_tasks):
    config = copy.deepcopy(DEFAULT)
    config["evaluation"]["include_path"] = str(user_tasks)
    config["evaluation"]["general"]["fbt_mc"] = {"metric": "f1"}
    code, output = dry_run(workdir, config, "metric.yaml")
    assert code != 0
    one_line(output, "metric.yaml: evaluation.general.fbt_mc.metric: 'f1' is not a metric of lm-eval task 'fbt_mc'; "
                     "it has: acc, acc_norm")


def test_a_hub_task_not_cached_while_offline_names_its_dataset(workdir, tmp_path):
    config = copy.deepcopy(DEFAULT)
    config["evaluation"]["general"]["winogrande"] = {"limit": 8}
    code, output = dry_run(workdir, config, "hub.yaml", env={"HF_HOME": str(tmp_path / "hf")})
    assert code != 0
    line = one_line(output, "hub.yaml: evaluation.general.winogrande: lm-eval task 'winogrande' loads hub dataset "
                            "'allenai/winogrande' (config 'winogrande_xl'), which is not in the local cache")
    assert "datasets.load_dataset('allenai/winogrande', 'winogrande_xl')" in line


def test_the_same_task_in_domain_eval_and_general_cannot_share_a_family(workdir, user_tasks):
    config = copy.deepcopy(DEFAULT)
    config["evaluation"]["include_path"] = str(user_tasks)
    config["evaluation"]["general"]["fbt_mc"] = {}
    config["domain"]["eval"] = {"fbt_mc": {"limit": 4}}
    config["evaluation"]["families"] = {"all": ["domain_loss", "general_text", "arc_easy", "piqa", "fbt_mc",
                                                "domain.fbt_mc"]}
    code, output = dry_run(workdir, config, "same.yaml")
    assert code != 0
    one_line(output, "same.yaml: evaluation.families.all: 'fbt_mc' and 'domain.fbt_mc' both run lm-eval task "
                     "'fbt_mc'")
    # in families of their own they are two keys: the dry run plans both
    config["evaluation"]["families"] = {"all": ["domain_loss", "general_text", "arc_easy", "piqa", "fbt_mc"]}
    code, output = dry_run(workdir, config, "apart.yaml")
    assert code == 0, output[-3000:]
    assert "eval/domain.fbt_mc.json" in output and "eval/all.json" in output
    # a group and a task it holds neither
    config["evaluation"]["general"]["fbt_group"] = {}
    config["evaluation"]["families"]["all"].append("fbt_group")
    config["domain"]["eval"] = {"fbt_gen": {}}
    code, output = dry_run(workdir, config, "group.yaml")
    assert code != 0
    one_line(output, "group.yaml: evaluation.families.all: 'fbt_mc' and 'fbt_group' both run lm-eval task 'fbt_mc'")
    # and `domain` is no longer evaluated: a family naming it is refused with the reason
    config["evaluation"]["families"] = {"all": ["domain", "domain_loss"]}
    code, output = dry_run(workdir, config, "nodomain.yaml")
    assert code != 0
    one_line(output, "nodomain.yaml: evaluation.families.all: 'domain' is not evaluated (domain.eval replaces it as "
                     "the domain score)")


def test_include_path_is_read_from_the_config_files_folder_and_the_index_is_cached(tmp_path):
    folder = tmp_path / "configs"
    write_user_tasks(folder / "my_tasks")
    config = copy.deepcopy(DEFAULT)
    config["evaluation"]["include_path"] = "my_tasks"
    config["evaluation"]["general"]["fbt_group"] = {"limit": 4}
    work = tmp_path / "work"
    work.mkdir()
    (folder / "rel.yaml").write_text(yaml.safe_dump(config))
    from test_workflow import snakemake

    result = snakemake("-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"), f"--configfile={folder / 'rel.yaml'}",
                       "--directory", str(work))
    assert result.returncode == 0, result.stderr[-3000:]
    cached = sorted(p.name for p in (work / ".snakemake" / "forgetbench" / "lm_eval_index").glob("*.json"))
    # the two folders (forgetbench's tasks and the user's): lm-eval's built-ins were not needed
    assert len(cached) == 2 and all(name.startswith("folder-") for name in cached)
    config["evaluation"]["include_path"] = "not_there"
    (folder / "rel.yaml").write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"), f"--configfile={folder / 'rel.yaml'}",
                       "--directory", str(work))
    assert result.returncode != 0
    assert f"rel.yaml: evaluation.include_path: folder not found: {folder / 'not_there'}" in result.stdout + result.stderr


def test_the_evaluation_job_writes_domain_eval_entries(tmp_path, tiny_model_dir):
    """domain.eval with a user task (the same task also in the general suite, in another family): the base model's
    evaluation jobs write `domain.<task>` beside the general `<task>`, and no `domain` answer task."""
    from test_workflow import snakemake

    tasks = write_user_tasks(tmp_path / "tasks")
    config = {
        "experiment": "deval",
        "models": {"tiny": {"source": "local", "path": str(tiny_model_dir)}},
        "domain": {"name": "medcalc-synth", "source": "medcalc_synth", "format": "label", "n_train": 4, "n_test": 4,
                   "seed": 0, "eval": {"fbt_mc": {"limit": 5}}},
        "methods": {"sft": {}},
        "learning_rates": [1e-3],
        "training": {"max_steps": 1, "batch_size": 2, "max_seq_len": 256},
        "evaluation": {"batch_size": 4, "include_path": "tasks", "general": {"fbt_mc": {}},
                       "forgetting": {"limit": 2}, "domain_loss": {"limit": 2},
                       "families": {"all": ["fbt_mc", "domain_loss", "general_text"]}},
        "resources": {"train_threads": 1, "eval_threads": 1},
    }
    path = tmp_path / "deval.yaml"
    path.write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    work.mkdir()
    target = "results/deval/tiny/base/eval/metrics.json"
    result = snakemake("--cores", "2", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(path),
                       "--directory", str(work), target)
    assert result.returncode == 0, result.stderr[-5000:]
    metrics = json.loads((work / target).read_text())["metrics"]
    assert set(metrics) == {"fbt_mc", "domain_loss", "general_text", "domain.fbt_mc"}
    assert metrics["domain.fbt_mc"]["metric"] == "acc"
    family = json.loads((work / "results/deval/tiny/base/eval/domain.fbt_mc.json").read_text())
    assert family["settings"]["tasks"]["domain.fbt_mc"]["n_evaluated"] == 5
    assert family["settings"]["include_path"] == [str(tasks)]
    items = [json.loads(line) for line in (work / "results/deval/tiny/base/eval/items.jsonl").read_text().splitlines()]
    assert sum(item["task"] == "domain.fbt_mc" for item in items) == 5
    assert sum(item["task"] == "fbt_mc" for item in items) == 12


def test_the_domain_loss_of_a_trl_format_runs_in_its_own_call_without_the_chat_template():
    from forgetbench.evaluation.runner import _calls

    assert _calls(["arc_easy", "domain_loss", "general_text"], "label", True) == [
        (["arc_easy", "domain_loss", "general_text"], True)]
    assert _calls(["arc_easy", "domain_loss", "general_text"], "messages", True) == [
        (["arc_easy", "general_text"], True), (["domain_loss"], False)]
    assert _calls(["domain_loss"], "text", False) == [(["domain_loss"], False)]


def test_the_domain_score_tasks_follow_the_format_and_domain_eval():
    from forgetbench.config.tasks import eval_families
    from forgetbench.evaluation.tasks import config_tasks

    evaluation = {"general": {"arc_easy": {}}, "domain": {"limit": 3}}
    assert list(config_tasks(evaluation, {"format": "label"})) == ["arc_easy", "domain", "domain_loss", "general_text"]
    assert list(config_tasks(evaluation, {"format": "messages"})) == ["arc_easy", "domain_loss", "general_text"]
    tasks = config_tasks(evaluation, {"format": "text", "eval": {"gsm8k": {"num_fewshot": 8}, "winogrande": None}})
    assert tasks == {"arc_easy": {}, "domain.gsm8k": {"num_fewshot": 8}, "domain.winogrande": {}, "domain_loss": {},
                     "general_text": {}}
    assert list(eval_families(evaluation, "x", {"format": "label", "eval": {"gsm8k": {}}})) == [
        "arc_easy", "domain.gsm8k", "domain_loss", "general_text"]


def test_a_runner_refuses_the_answer_task_for_a_format_without_answers(tiny_model_dir, tmp_path):
    from forgetbench.errors import ConfigError
    from forgetbench.evaluation.runner import evaluate

    test = tmp_path / "test.jsonl"
    test.write_text("{}\n")
    with pytest.raises(ConfigError, match="domain format 'messages' does not carry"):
        evaluate(tiny_model_dir, tmp_path / "e.json", {"domain": {}}, domain_test_path=test, domain_format="messages")
    with pytest.raises(ConfigError, match="domain format must be one of cot, label, messages, prompt_completion, text"):
        evaluate(tiny_model_dir, tmp_path / "e.json", {"domain_loss": {}}, domain_test_path=test, domain_format="csv")


class FakeIndex:
    FACTS = {
        "qa": {"kind": "task", "metrics": ["exact_match"], "filters": ["strict", "loose"], "hub": True,
               "dataset_path": "someone/qa", "dataset_name": "main"},
        "qa_tag": {"kind": "tag", "members": ["qa", "qa2"]},
        "qa_bundle": {"kind": "group", "members": ["qa"], "aggregates": []},
    }

    def get(self, name):
        return self.FACTS.get(name)

    def names(self):
        return sorted(self.FACTS)

    def leaves(self, name):
        return [(name, self.FACTS[name])] if self.FACTS[name]["kind"] == "task" else []


@pytest.mark.parametrize("eval_settings, message", [
    ({"qa_": {}}, "x.yaml: domain.eval.qa_: 'qa_' is neither a forgetbench catalogue task (arc_easy, "),
    ({"qa_tag": {}}, "x.yaml: domain.eval.qa_tag: 'qa_tag' is an lm-eval tag of 2 tasks (qa, qa2), which lm-eval "
                     "scores one by one: name a task or a group"),
    ({"qa_bundle": {}}, "x.yaml: domain.eval.qa_bundle: lm-eval group 'qa_bundle' has no aggregate_metric_list"),
    ({"qa": {"filter": "none"}}, "x.yaml: domain.eval.qa.filter: 'none' is not a filter of lm-eval task 'qa'; "
                                 "it has: strict, loose"),
    ({"qa": {}}, "x.yaml: domain.eval.qa: lm-eval task 'qa' loads hub dataset 'someone/qa' (config 'main'), which "
                 "is not in the local cache, and HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set: download it once with "
                 "network access, `python -c \"import datasets; datasets.load_dataset('someone/qa', 'main')\"`"),
])
def test_domain_eval_tasks_are_checked_against_lm_evals_index(eval_settings, message, monkeypatch, tmp_path):
    import datasets.config
    import huggingface_hub.constants

    from forgetbench.errors import ConfigError
    from forgetbench.config.tasks import check_lm_eval_tasks

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    evaluation = {"general": {"arc_easy": {}}}
    with pytest.raises(ConfigError) as err:
        check_lm_eval_tasks(evaluation, {"format": "label", "eval": eval_settings}, "x.yaml", index=FakeIndex())
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_general_task_keyed_like_the_domains_is_refused():
    from forgetbench.errors import ConfigError
    from forgetbench.config.tasks import check_evaluation

    with pytest.raises(ConfigError) as error:
        check_evaluation({"general": {"domain.gsm8k": {}}}, "x.yaml", {"format": "label"})
    assert str(error.value) == ("x.yaml: evaluation.general.domain.gsm8k: a general task cannot be the domain's: the "
                                "domain is scored by domain.eval (lm-eval tasks) or its own answers and loss")


def test_a_scaling_task_the_domain_score_runs_too_is_refused():
    """Each checkpoint's tasks run in one simple_evaluate call: GSM8K as a scaling task and as the domain score
    would fail there, after the scaling runs trained."""
    from forgetbench.errors import ConfigError
    from forgetbench.config.tasks import check_scaling_tasks

    check_scaling_tasks({"arc_easy": {}, "domain.gsm8k": {}, "general_text": {}}, [], "x.yaml")
    with pytest.raises(ConfigError) as error:
        check_scaling_tasks({"gsm8k": {}, "domain.gsm8k": {"num_fewshot": 8}, "general_text": {}}, [], "x.yaml")
    assert str(error.value).startswith("x.yaml: scaling.general: 'gsm8k' and 'domain.gsm8k' both run lm-eval task "
                                       "'fb_gsm8k'")
