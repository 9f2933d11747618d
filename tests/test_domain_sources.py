"""Loading a domain from config: local files, hub loaders on fixture rows, the generator, and the errors."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forgetbench.data.records import check_no_overlap, make_record, read_jsonl, split_records, validate_records
from forgetbench.data.sources import (
    from_esci_row, from_gsm8k_row, from_medcalc_bench_row, from_metamathqa_row, load_domain, write_domain,
)
from forgetbench.errors import ConfigError

FIX = Path(__file__).parent / "fixtures"
HUB = FIX / "hub"
DOMAIN = FIX / "domain"


def rows(name):
    return json.loads((HUB / f"{name}.json").read_text())


def local_cfg(**kw):
    cfg = {"name": "toy", "source": "local", "path": "qa.jsonl",
           "fields": {"id": "uid", "prompt": "question", "answer": "label", "rationale": "solution",
                      "answer_type": "kind"}}
    cfg.update(kw)
    return cfg


# ------------------------------------------------------------------------------------------ records


def test_read_jsonl_names_the_malformed_line():
    with pytest.raises(ConfigError, match=r"bad_line\.jsonl:3: malformed JSON line \(Expecting ',' delimiter"):
        read_jsonl(DOMAIN / "bad_line.jsonl")


def test_read_jsonl_rejects_non_objects(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"prompt": "x", "answer": "y"}\n[1, 2]\n')
    with pytest.raises(ConfigError, match=r"a\.jsonl:2: expected a JSON object, got list"):
        read_jsonl(tmp_path / "a.jsonl")


def test_validate_records_messages():
    good = make_record("a", "Q?", "1")
    with pytest.raises(ConfigError, match=r"^train: no records \(empty dataset\)$"):
        validate_records([], "train")
    with pytest.raises(ConfigError, match=r"train: record 1 \(id 'b'\): missing or empty 'answer'"):
        validate_records([good, make_record("b", "Q2?", "")], "train")
    with pytest.raises(ConfigError, match=r"train: record 0 \(id 'a'\): missing or empty 'prompt'"):
        validate_records([{"id": "a", "answer": "1"}], "train")
    with pytest.raises(ConfigError, match=r"train: duplicate id 'a' \(records 0 and 1\)"):
        validate_records([good, make_record("a", "Other?", "2")], "train")
    with pytest.raises(ConfigError, match=r"answer_type 'number' is not one of decimal, integer, date, label, text"):
        validate_records([make_record("a", "Q?", "1", answer_type="number")], "train")
    with pytest.raises(ConfigError, match=r"decimal answer 'abc' is not a number"):
        validate_records([make_record("a", "Q?", "abc", answer_type="decimal")], "train")


def test_overlap_detection_normalises_whitespace_and_case():
    train = [make_record("t1", "What is  2+2?", "4"), make_record("t2", "Other", "1")]
    test = [make_record("x1", "what is 2+2?\n", "4"), make_record("x2", "New", "5")]
    with pytest.raises(ConfigError, match=r"toy: 1 test record\(s\) share a prompt with the training set "
                                          r"\(e\.g\. test id 'x1' = train id 't1'\)"):
        check_no_overlap(train, test, "toy")
    check_no_overlap(train, test[1:], "toy")


def test_split_keeps_duplicate_prompts_together():
    recs = [make_record(i, f"Q{i % 5}", "a") for i in range(20)]  # each prompt 4 times
    train, test = split_records(recs, 0.2, seed=1, where="x")
    assert (len(train), len(test)) == (16, 4)
    assert len({r["prompt"] for r in test}) == 1
    check_no_overlap(train, test, "x")
    assert split_records(recs, 0.2, seed=1, where="x") == (train, test)


# ------------------------------------------------------------------------------------------- local


def test_local_jsonl_with_field_mapping_and_fraction_split():
    train, test = load_domain(local_cfg(test_fraction=0.3, seed=2), base_dir=DOMAIN)
    assert (len(train), len(test)) == (7, 3)
    byid = {r["id"]: r for r in train + test}
    assert byid["q2"] == {"id": "q2", "prompt": "What is 10 / 4?", "rationale": "Ten divided by four is 2.5.",
                          "answer": "2.5", "answer_type": "decimal", "lower": None, "upper": None, "source": "toy"}
    assert byid["q3"]["answer_type"] == "text"
    again = load_domain(local_cfg(test_fraction=0.3, seed=2), base_dir=DOMAIN)
    assert again == (train, test)
    other = load_domain(local_cfg(test_fraction=0.3, seed=3), base_dir=DOMAIN)
    assert [r["id"] for r in other[1]] != [r["id"] for r in test]


def test_local_defaults_and_limits():
    cfg = {"name": "caps", "source": "local", "path": "minimal.jsonl", "test_fraction": 0.5, "answer_type": "label"}
    train, test = load_domain(cfg, base_dir=DOMAIN)
    assert (len(train), len(test)) == (2, 2)
    assert train[0]["id"].startswith("caps-train-") and train[0]["rationale"] == ""
    assert {r["answer_type"] for r in train} == {"label"}
    train, test = load_domain(dict(cfg, limit_train=1, limit_test=1), base_dir=DOMAIN)
    assert (len(train), len(test)) == (1, 1)


def test_local_parquet_with_test_path(tmp_path):
    pq.write_table(pa.Table.from_pylist([{"prompt": f"P{i}", "answer": str(i)} for i in range(5)]),
                   tmp_path / "train.parquet")
    pq.write_table(pa.Table.from_pylist([{"prompt": "T0", "answer": "0"}]), tmp_path / "test.parquet")
    cfg = {"name": "pq", "source": "local", "path": "train.parquet", "test_path": "test.parquet"}
    train, test = load_domain(cfg, base_dir=tmp_path)
    assert [r["prompt"] for r in train] == ["P0", "P1", "P2", "P3", "P4"]
    assert test[0]["answer"] == "0"


def test_local_test_file_overlapping_train_is_rejected(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"prompt": "Same question", "answer": "1"}\n{"prompt": "B", "answer": "2"}\n')
    (tmp_path / "b.jsonl").write_text('{"prompt": "same  QUESTION", "answer": "1"}\n')
    cfg = {"name": "leak", "source": "local", "path": "a.jsonl", "test_path": "b.jsonl"}
    with pytest.raises(ConfigError) as error:
        load_domain(cfg, base_dir=tmp_path)
    assert str(error.value) == (
        f"domain 'leak' (train {tmp_path / 'a.jsonl'}, test {tmp_path / 'b.jsonl'}): 1 test record(s) share a prompt "
        f"with the training set (e.g. test id 'leak-test-000000' = train id 'leak-train-000000')")


GOOD = {"prompt": "What is 2 + 2?", "answer": "4"}
BAD_RECORDS = {
    "gold answer outside its own bounds": (
        [GOOD, {"id": "bmi-3", "prompt": "BMI of 70 kg at 1.75 m?", "answer": "22.9", "answer_type": "decimal",
                "lower": 23.5, "upper": 24.5}], [{"prompt": "What is 3 + 3?", "answer": "6"}],
        "domain 'bad' ({train}): record 1 (id 'bmi-3'): decimal answer 22.9 is outside its own bounds [lower 23.5, "
        "upper 24.5]: the item would score 0 for every model"),
    "answer given as a list": (
        [GOOD], [{"id": "q7", "prompt": "What is 2 * 2?", "answer": [4]}],
        "{test}: record 0 (id 'q7'): column 'answer' (domain.fields.answer) holds a list, [4]: give one value"),
    "bound given as a list": (
        [GOOD, {"id": "q2", "prompt": "What is 10 / 4?", "answer": "2.5", "answer_type": "decimal", "lower": [2.4],
                "upper": 2.6}], [{"prompt": "What is 3 + 3?", "answer": "6"}],
        "{train}: record 1 (id 'q2'): column 'lower' (domain.fields.lower) holds a list, [2.4]: give one value"),
    "one id in both splits": (
        [{"id": "q1", **GOOD}], [{"id": "q1", "prompt": "What is 3 + 3?", "answer": "6"}],
        "domain 'bad' (train {train}, test {test}): id 'q1' names a training record and a test record (1 such "
        "id(s)): give each record its own id"),
}


@pytest.mark.parametrize("case", BAD_RECORDS)
def test_bad_records_are_refused_and_leave_prepared_files_untouched(tmp_path, case):
    train_rows, test_rows, message = BAD_RECORDS[case]
    for name, rows_ in (("train.jsonl", train_rows), ("test.jsonl", test_rows)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows_))
    prepared = tmp_path / "results" / "data" / "bad"
    prepared.mkdir(parents=True)
    for name in ("train.jsonl", "test.jsonl"):
        (prepared / name).write_bytes(b'{"id": "old", "prompt": "an earlier run", "answer": "1"}\n')
    cfg = {"name": "bad", "source": "local", "path": "train.jsonl", "test_path": "test.jsonl"}
    with pytest.raises(ConfigError) as error:
        write_domain(cfg, prepared / "train.jsonl", prepared / "test.jsonl", base_dir=tmp_path)
    assert str(error.value) == message.format(train=tmp_path / "train.jsonl", test=tmp_path / "test.jsonl")
    assert sorted(p.name for p in prepared.iterdir()) == ["test.jsonl", "train.jsonl"]
    for name in ("train.jsonl", "test.jsonl"):
        assert (prepared / name).read_bytes() == b'{"id": "old", "prompt": "an earlier run", "answer": "1"}\n'


def test_bounds_in_either_order_hold_the_answer_as_scoring_reads_them():
    from forgetbench.scoring import is_correct

    record = make_record("neg", "Q?", "-5.0", answer_type="decimal", lower=-4.75, upper=-5.25)
    validate_records([record], "x")
    assert is_correct("Answer: -5.0", record)
    outside = {**record, "answer": "-5.5"}
    with pytest.raises(ConfigError) as error:
        validate_records([outside], "x")
    assert str(error.value) == ("x: record 0 (id 'neg'): decimal answer -5.5 is outside its own bounds "
                                "[lower -4.75, upper -5.25]: the item would score 0 for every model")
    assert not is_correct("Answer: -5.5", outside)


def test_missing_file_names_path_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"domain 'toy': domain\.path: file not found: .*nope\.jsonl"):
        load_domain(local_cfg(path="nope.jsonl"), base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"domain\.test_path: file not found: .*gone\.jsonl"):
        load_domain(local_cfg(test_path="gone.jsonl"), base_dir=DOMAIN)


def test_missing_column_names_column_and_file():
    cfg = local_cfg()
    cfg["fields"] = dict(cfg["fields"], answer="solution_label")
    with pytest.raises(ConfigError, match=r"column 'solution_label' \(domain\.fields\.answer\) not found in "
                                          r".*qa\.jsonl; columns: kind, label, question, solution, uid"):
        load_domain(cfg, base_dir=DOMAIN)
    with pytest.raises(ConfigError, match=r"column 'prompt' \(domain\.fields\.prompt\) not found in .*qa\.jsonl"):
        load_domain({"name": "toy", "source": "local", "path": "qa.jsonl"}, base_dir=DOMAIN)


def test_empty_field_value_names_the_record(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"prompt": "A", "answer": "1"}\n{"prompt": "B", "answer": null}\n')
    with pytest.raises(ConfigError, match=r"domain 'e' \(.*a\.jsonl\): record 1 \(id 'e-train-000001'\): "
                                          r"missing or empty 'answer'"):
        load_domain({"name": "e", "source": "local", "path": "a.jsonl"}, base_dir=tmp_path)


def test_empty_dataset(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "one.jsonl").write_text('{"prompt": "A", "answer": "1"}\n')
    with pytest.raises(ConfigError, match=r"domain 'e' \(.*empty\.jsonl\): no records \(empty dataset\)"):
        load_domain({"name": "e", "source": "local", "path": "one.jsonl", "test_path": "empty.jsonl"},
                    base_dir=tmp_path)


def test_malformed_line_surfaces_through_load_domain():
    with pytest.raises(ConfigError, match=r"bad_line\.jsonl:3: malformed JSON line"):
        load_domain({"name": "b", "source": "local", "path": "bad_line.jsonl"}, base_dir=DOMAIN)


def test_cot_needs_rationales():
    cfg = {"name": "caps", "source": "local", "path": "minimal.jsonl", "test_fraction": 0.5, "format": "cot"}
    with pytest.raises(ConfigError, match=r"domain 'caps': format 'cot' needs a rationale for every training record"):
        load_domain(cfg, base_dir=DOMAIN)


# ---------------------------------------------------------------------------------- config errors


def test_unknown_source_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"domain 'x': unknown source 'csv'; "
                                          r"valid sources: medcalc_synth, local, hub"):
        load_domain({"name": "x", "source": "csv"})


def test_unknown_key_suggests_the_near_one():
    with pytest.raises(ConfigError, match=r"unknown key 'domain\.n_trian' \(did you mean 'n_train'\?\)"):
        load_domain({"name": "m", "source": "medcalc_synth", "n_trian": 5, "n_test": 2})
    with pytest.raises(ConfigError, match=r"source 'medcalc_synth' needs the key 'domain\.n_train'"):
        load_domain({"name": "m", "source": "medcalc_synth", "n_test": 2})


# ---------------------------------------------------------------------------------- medcalc_synth


def test_medcalc_synth_source_and_write_domain(tmp_path):
    cfg = {"name": "medcalc", "source": "medcalc_synth", "n_train": 30, "n_test": 10, "seed": 4, "format": "cot",
           "calculators": ["bmi", "gcs", "due_date"]}
    train, test = load_domain(cfg)
    assert (len(train), len(test)) == (30, 10)
    assert {r["source"] for r in train} == {"Body Mass Index (BMI)", "Glasgow Coma Score (GCS)", "Estimated Due Date"}
    counts = write_domain(cfg, tmp_path / "out" / "train.jsonl", tmp_path / "out" / "test.jsonl")
    assert counts == (30, 10)
    assert read_jsonl(tmp_path / "out" / "train.jsonl") == train
    assert read_jsonl(tmp_path / "out" / "test.jsonl") == test
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.jsonl", "train.jsonl"]


# ------------------------------------------------------------------------------------ hub mappings


def test_from_medcalc_bench_row():
    r = [from_medcalc_bench_row(row, "test", i) for i, row in enumerate(rows("medcalc_bench_rows"))]
    assert r[0] == {
        "id": "medcalc_bench-test-1",
        "prompt": "Here is the patient note:\nA 56-year-old man weighing 68 kg and 176 cm tall has a serum creatinine "
                  "of 1.0 mg/dL.\n\nHere is the task:\nWhat is the patient's Creatinine Clearance using the "
                  "Cockroft-Gault Equation in terms of mL/min?",
        "rationale": "CrCl = ((140 - 56) * 68 * 1) / (1.0 * 72) = 79.333 mL/min.",
        "answer": "79.333", "answer_type": "decimal", "lower": 75.366, "upper": 83.3,
        "source": "Creatinine Clearance (Cockcroft-Gault Equation)",
    }
    assert (r[1]["answer"], r[1]["answer_type"], r[1]["lower"]) == ("4", "integer", None)
    assert (r[2]["answer"], r[2]["answer_type"], r[2]["lower"]) == ("06/23/2012", "date", None)
    assert (r[3]["answer"], r[3]["answer_type"]) == ("('16 weeks', '1 days')", "text")
    validate_records(r, "fixture")


def test_from_metamathqa_row():
    a, b, c = (from_metamathqa_row(row, "train", i) for i, row in enumerate(rows("metamathqa_rows")))
    assert (a["rationale"], a["answer"], a["answer_type"], a["lower"], a["upper"], a["source"]) == (
        "Each box holds 4 apples and there are 3 boxes, so 3 * 4 = 12.", "12", "decimal", 12.0, 12.0, "GSM_Rephrased")
    assert (b["answer"], b["answer_type"]) == ("\\frac{3}{4}", "text")
    assert (c["answer"], c["lower"]) == ("1,200", 1200.0)
    with pytest.raises(ValueError, match="no 'The answer is:'"):
        from_metamathqa_row({"query": "q", "response": "no final line", "type": "x"}, "train", 0)


def test_from_gsm8k_row():
    a, b = (from_gsm8k_row(row, "test", i) for i, row in enumerate(rows("gsm8k_rows")))
    assert a["answer"] == "72" and a["lower"] == a["upper"] == 72.0
    assert a["rationale"] == ("Natalia sold 48/2 = 24 clips in May.\n"
                              "Natalia sold 48+24 = 72 clips altogether in April and May.")
    assert a["id"] == "gsm8k-test-0" and a["source"] == "GSM8K"
    assert b["answer"] == "1250"


def test_from_esci_row():
    recs = [from_esci_row(row, "train", i) for i, row in enumerate(rows("esci_rows"))]
    assert [r["answer"] for r in recs] == ["E", "S", "C", "I", "I"]
    assert {r["answer_type"] for r in recs} == {"label"}
    assert recs[0]["id"] == "esci-train-101"
    assert recs[0]["prompt"].startswith(
        "Query: usb c charger 65w\nProduct title: 65W USB-C GaN Wall Charger\nBrand: ChargeCo\n"
        "Description: Fast charging for laptops and phones.\n\nHow relevant is the product")
    assert "Brand" not in recs[1]["prompt"] and "Description" not in recs[1]["prompt"]
    with pytest.raises(ValueError, match="unknown esci_label 'maybe'"):
        from_esci_row(dict(rows("esci_rows")[0], esci_label="maybe"), "train", 0)


# ------------------------------------------------------------------------------ hub path, offline


@pytest.fixture
def fake_hub(monkeypatch):
    calls = []
    tables = {
        ("ncbi/MedCalc-Bench-v1.0", "train"): rows("medcalc_bench_rows")[:3],
        ("ncbi/MedCalc-Bench-v1.0", "test"): rows("medcalc_bench_rows")[3:],
        ("my-org/medcalc-mirror", "train"): rows("medcalc_bench_rows")[:2],
        ("meta-math/MetaMathQA", "train"): rows("metamathqa_rows"),
        ("openai/gsm8k", "test"): rows("gsm8k_rows"),
        ("tasksource/esci", "train"): rows("esci_rows")[:4],
        ("tasksource/esci", "test"): rows("esci_rows")[4:],
    }

    def load_dataset(path, name=None, split=None, **kw):
        calls.append((path, name, split))
        return datasets.Dataset.from_list(tables[(path, split)])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_medcalc_bench(fake_hub):
    train, test = load_domain({"name": "mc", "source": "hub", "dataset": "medcalc_bench", "format": "cot"})
    assert [r["id"] for r in train] == ["medcalc_bench-train-1", "medcalc_bench-train-2", "medcalc_bench-train-3"]
    assert [r["answer"] for r in test] == ["('16 weeks', '1 days')"]
    assert fake_hub == [("ncbi/MedCalc-Bench-v1.0", None, "train"), ("ncbi/MedCalc-Bench-v1.0", None, "test")]


def test_hub_id_override_and_limit(fake_hub):
    cfg = {"name": "mc", "source": "hub", "dataset": "medcalc_bench", "hub_id": "my-org/medcalc-mirror",
           "test_hub_id": "ncbi/MedCalc-Bench-v1.0", "limit_train": 1, "seed": 0}
    train, test = load_domain(cfg)
    assert len(train) == 1 and train[0]["id"] in {"medcalc_bench-train-1", "medcalc_bench-train-2"}
    assert fake_hub[0] == ("my-org/medcalc-mirror", None, "train")


def test_hub_metamathqa_tests_on_gsm8k(fake_hub):
    train, test = load_domain({"name": "math", "source": "hub", "dataset": "metamathqa"})
    assert [r["answer"] for r in train] == ["12", "\\frac{3}{4}", "1,200"]
    assert [r["answer"] for r in test] == ["72", "1250"]
    assert fake_hub[1] == ("openai/gsm8k", "main", "test")


def test_hub_esci_keeps_one_locale(fake_hub):
    train, test = load_domain({"name": "shop", "source": "hub", "dataset": "esci"})
    assert [r["answer"] for r in train] == ["E", "S", "C"]  # the 'es' row is filtered out
    assert [r["answer"] for r in test] == ["I"]


def test_hub_rows_whose_answer_is_outside_their_limits_are_skipped_with_a_warning(fake_hub, monkeypatch):
    table = rows("medcalc_bench_rows")[:3]
    table[1] = {**table[1], "Output Type": "decimal", "Ground Truth Answer": "90.0", "Lower Limit": "75.4",
                "Upper Limit": "83.3"}
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name=None, split=None, **kw: datasets.Dataset.from_list(
        table if split == "train" else rows("medcalc_bench_rows")[3:]))
    with pytest.warns(UserWarning) as warned:
        train, _ = load_domain({"name": "mc", "source": "hub", "dataset": "medcalc_bench", "format": "cot"})
    assert [r["id"] for r in train] == ["medcalc_bench-train-1", "medcalc_bench-train-3"]
    assert [str(w.message) for w in warned] == [
        "domain 'mc': skipped 1 malformed rows of 'ncbi/MedCalc-Bench-v1.0' split 'train' (row 1: decimal answer "
        "90.0 is outside its own bounds [lower 75.4, upper 83.3]: the item would score 0 for every model)"]


def test_unknown_hub_dataset(fake_hub):
    with pytest.raises(ConfigError, match=r"unknown hub dataset 'alpaca'; known: medcalc_bench, metamathqa, esci"):
        load_domain({"name": "x", "source": "hub", "dataset": "alpaca"})


def test_hub_failure_while_offline_is_a_config_error(monkeypatch):
    def load_dataset(*a, **kw):
        raise ConnectionError("Couldn't reach 'ncbi/MedCalc-Bench-v1.0' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"^domain 'mc': cannot load hub dataset 'ncbi/MedCalc-Bench-v1\.0' "
                                          r"offline; run once with network access"):
        load_domain({"name": "mc", "source": "hub", "dataset": "medcalc_bench"})
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ConfigError, match=r"cannot load hub dataset 'ncbi/MedCalc-Bench-v1\.0' split 'train' "
                                          r"\(ConnectionError: Couldn't reach"):
        load_domain({"name": "mc", "source": "hub", "dataset": "medcalc_bench"})


def test_real_hub_call_with_hf_hub_offline(tmp_path):
    # the real `datasets` client, offline and with an empty cache: the user sees one ConfigError line
    code = textwrap.dedent("""
        from forgetbench.data.sources import load_domain
        from forgetbench.errors import ConfigError
        try:
            load_domain({"name": "mc", "source": "hub", "dataset": "medcalc_bench"})
        except ConfigError as exc:
            print("CONFIGERROR", exc)
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "CONFIGERROR domain 'mc': cannot load hub dataset 'ncbi/MedCalc-Bench-v1.0' offline;" in out.stdout, \
        out.stderr[-2000:]


def test_the_offline_check_looks_for_the_hub_datasets_the_loader_reads():
    """The parse-time cache check and the length check ask hub_dataset_ids, which follows _load_hub: a hub_id
    override is also the test split's source unless the dataset has its own test id."""
    from forgetbench.data.sources import hub_dataset_ids

    assert hub_dataset_ids({"source": "hub", "dataset": "medcalc_bench", "hub_id": "me/mc"}) == ["me/mc"]
    assert hub_dataset_ids({"source": "hub", "dataset": "metamathqa"}) == ["meta-math/MetaMathQA", "openai/gsm8k"]
    assert hub_dataset_ids({"source": "hub", "format": "messages", "hub_id": "me/chats"}) == ["me/chats"]
    assert hub_dataset_ids({"source": "local", "path": "x.jsonl"}) == []
