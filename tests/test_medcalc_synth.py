"""The MedCalc-style generator: deterministic, built on the real calculators, units varied, splits disjoint."""

import dataclasses
import json
import math
import re
from datetime import date, timedelta

import pytest

from forgetbench.data import medcalc_synth
from forgetbench.data.prompts import build_response
from forgetbench.data.records import validate_records
from forgetbench.errors import ConfigError
from forgetbench.scoring import is_correct

ALL = medcalc_synth.available_calculators()


def by_calc(records, key):
    return [r for r in records if r["id"].endswith(f"-{key}")]


@pytest.fixture(scope="module")
def records():
    # 40 rounds of every calculator
    return medcalc_synth.generate(40 * len(ALL), seed=11)


def test_available_calculators_cover_diverse_tasks():
    assert len(ALL) >= 8
    for key in ("bmi", "map", "creatinine_clearance", "cha2ds2_vasc", "wells_pe", "anion_gap", "qtc_bazett",
                "gcs", "due_date"):
        assert key in ALL


def test_same_seed_same_bytes_other_seed_differs():
    a = medcalc_synth.generate(60, seed=7)
    b = medcalc_synth.generate(60, seed=7)
    c = medcalc_synth.generate(60, seed=8)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert [r["prompt"] for r in a] != [r["prompt"] for r in c]
    assert a[0]["id"] == "medcalc_synth-7-00000-bmi"


def test_records_are_canonical_and_valid(records):
    validate_records(records, "synth")
    assert set(records[0]) == {"id", "prompt", "rationale", "answer", "answer_type", "lower", "upper", "source"}
    assert records[0]["prompt"].startswith("Here is the patient note:\n")
    assert "\n\nHere is the task:\nWhat is the patient's body mass index (BMI)?" in records[0]["prompt"]
    assert len({r["prompt"] for r in records}) == len(records)


@pytest.mark.parametrize("key", ALL)
def test_every_calculator_gives_finite_answers_and_its_own_rationale(records, key):
    rs = by_calc(records, key)
    assert len(rs) == 40
    calc = medcalc_synth.CALCULATORS[key]
    for r in rs:
        assert r["source"] == calc.name
        assert r["answer_type"] == calc.answer_type
        assert r["rationale"].strip()
        assert r["answer"] in r["rationale"]  # the calculator's explanation states its own answer
        assert not any(line.startswith(" ") for line in r["rationale"].splitlines())
        if r["answer_type"] == "date":
            assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", r["answer"])
        else:
            assert math.isfinite(float(r["answer"]))
        if r["answer_type"] == "decimal" and not calc.exact:
            v = float(r["answer"])
            assert r["lower"] == pytest.approx(min(0.95 * v, 1.05 * v))
            assert r["upper"] == pytest.approx(max(0.95 * v, 1.05 * v))
        elif r["answer_type"] == "integer":
            assert r["lower"] is None and r["upper"] is None
    if calc.answer_type != "date":
        assert len({r["answer"] for r in rs}) > 2  # answers actually vary with the sampled patient


def test_mean_arterial_pressure_matches_the_note(records):
    for r in by_calc(records, "map"):
        sys_bp, dia_bp = map(int, re.search(r"blood pressure is (\d+)/(\d+) mm Hg", r["prompt"]).groups())
        assert float(r["answer"]) == pytest.approx(2 * dia_bp / 3 + sys_bp / 3, abs=1e-3)


def test_due_date_is_40_weeks_plus_cycle_excess(records):
    for r in by_calc(records, "due_date"):
        m, d, y = map(int, re.search(r"began on (\d\d)/(\d\d)/(\d{4})", r["prompt"]).groups())
        cycle = int(re.search(r"every (\d+) days", r["prompt"]).group(1))
        due = date(y, m, d) + timedelta(weeks=40, days=cycle - 28)
        assert r["answer"] == f"{due:%m/%d/%Y}"


def test_units_vary(records):
    prompts = lambda key: " ".join(r["prompt"] for r in by_calc(records, key))  # noqa: E731
    bmi = prompts("bmi")
    assert re.search(r"weighs [\d.]+ kg", bmi) and re.search(r"weighs \d+ lbs", bmi)
    assert re.search(r"\d+ cm tall", bmi) and re.search(r"\d+ in tall", bmi)
    assert re.search(r"\d\.\d\d m tall", bmi) and re.search(r"\d ft \d+ in tall", bmi)
    crcl = prompts("creatinine_clearance")
    assert "mg/dL" in crcl and "µmol/L" in crcl
    assert "mEq/L" in prompts("anion_gap") and "mmol/L" in prompts("anion_gap")
    assert " g/dL" in prompts("calcium_correction") and " g/L" in prompts("calcium_correction")
    assert "°C" in prompts("centor") and "°F" in prompts("centor")


def test_micromolar_creatinine_converts_back_without_loss(records):
    # medcalc rounds intermediate grams; the sampled µmol/L values are chosen so that it lands on mg/dL exactly
    checked = 0
    for r in by_calc(records, "creatinine_clearance") + by_calc(records, "ckd_epi"):
        m = re.search(r"creatinine of (\d+) µmol/L", r["prompt"])
        if m:
            umol = int(m.group(1))
            assert f"converts to {round(umol / 88.42, 1)} mg" in r["rationale"]
            checked += 1
    assert checked >= 10


def test_findings_can_be_unmentioned_and_the_calculator_says_so(records):
    rationales = " ".join(r["rationale"] for r in by_calc(records, "cha2ds2_vasc"))
    assert "is not specified in the patient note" in rationales
    assert "present" in rationales


def test_reference_response_scores_correct_and_wrong_answer_does_not(records):
    for r in records:
        assert is_correct(build_response(r, "cot"), r), r["id"]
        assert is_correct(build_response(r, "label"), r), r["id"]
        if r["answer_type"] == "date":
            m, d, y = map(int, r["answer"].split("/"))
            wrong = f"{date(y, m, d) + timedelta(days=1):%m/%d/%Y}"
        elif r["answer_type"] == "integer":
            wrong = str(int(r["answer"]) + 1)
        else:
            v = float(r["answer"])
            wrong = str(v * 1.2 + 1) if v >= 0 else str(v * 1.2 - 1)
        assert not is_correct(f"{r['rationale']}\nAnswer: {wrong}", r), r["id"]


def test_make_splits_are_disjoint_and_sized():
    train, test = medcalc_synth.make_splits(100, 40, seed=3)
    assert (len(train), len(test)) == (100, 40)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    assert {r["source"] for r in test} == {r["source"] for r in train}  # both cycle through every calculator


def test_calculator_subset():
    recs = medcalc_synth.generate(12, seed=0, calculators=["gcs", "bmi"])
    assert [r["id"].rsplit("-", 1)[1] for r in recs[:4]] == ["gcs", "bmi", "gcs", "bmi"]


def test_unknown_calculator_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown calculator 'bmx'; available: bmi, map"):
        medcalc_synth.generate(5, seed=0, calculators=["bmx"])


def test_a_calculator_that_cannot_give_distinct_notes_is_a_config_error(monkeypatch):
    fixed = dataclasses.replace(medcalc_synth.CALCULATORS["map"],
                                sample=lambda rng: ({"sys_bp": (120, "mm hg"), "dia_bp": (80, "mm hg")}, "BP 120/80."))
    monkeypatch.setitem(medcalc_synth.CALCULATORS, "map", fixed)
    assert medcalc_synth.generate(1, seed=0, calculators=["map"])[0]["answer"] == "93.333"
    with pytest.raises(ConfigError, match="could not draw 2 distinct notes from calculators map"):
        medcalc_synth.generate(2, seed=0, calculators=["map"])


def test_clean_explanation_removes_indentation_and_literal_newlines():
    text = "\n    The criteria:\n\n        1. A: +1\\n\\n\n    The total.\n"
    assert medcalc_synth.clean_explanation(text) == "The criteria:\n\n1. A: +1\n\nThe total."


# ------------------------------------------------------------------------------ risk-category questions

# The bands as the clinical references tabulate them, written out independently of the generator's table.
BANDS = {"cha2ds2_vasc": lambda s: "low" if s == 0 else "moderate" if s == 1 else "high",
         "has_bled": lambda s: "low" if s <= 1 else "moderate" if s == 2 else "high",
         "centor": lambda s: "low" if s <= 1 else "moderate" if s <= 3 else "high",
         "gcs": lambda s: "severe" if s <= 8 else "moderate" if s <= 12 else "mild",
         "wells_pe": lambda s: "unlikely" if s <= 4 else "likely"}


@pytest.fixture(scope="module")
def risk_records():
    return medcalc_synth.generate(40 * len(BANDS), seed=11, questions="risk_category")


def test_risk_category_answers_are_the_band_of_the_calculators_own_score(risk_records):
    assert {r["id"].rsplit("-", 1)[1] for r in risk_records} == set(BANDS)
    labels = {}
    for r in risk_records:
        key = r["id"].rsplit("-", 1)[1]
        *explanation, last = r["rationale"].splitlines()
        score = float(re.fullmatch(r"A score of (-?[\d.]+) is in the category '(\w+)'\.", last).group(1))
        # the calculator's own last line states the score
        assert re.search(rf"(?<![\d.]){re.escape(f'{score:g}')}(?![\d])", explanation[-1]), explanation[-1]
        assert r["answer"] == BANDS[key](score) and r["answer_type"] == "label"
        assert re.search(rf"\b{r['answer']}\b", r["prompt"].split("Here is the task:")[1])  # the question names it
        labels.setdefault(key, set()).add(r["answer"])
    # every calculator's notes reach at least two of its categories
    assert all(len(found) >= 2 for found in labels.values()), labels


def test_risk_category_reference_response_scores_and_another_label_does_not(risk_records):
    r = next(r for r in risk_records if r["answer"] == "high")
    assert is_correct(build_response(r, "label"), r) and is_correct("Answer: High.", r)
    assert not is_correct("Answer: moderate", r) and not is_correct("The risk is high.", r)


def test_risk_categories_are_offered_only_where_the_calculator_has_them():
    with pytest.raises(ConfigError) as error:
        medcalc_synth.generate(4, seed=0, calculators=["gcs", "bmi"], questions="risk_category")
    assert str(error.value) == ("medcalc_synth: calculator 'bmi' has no risk categories (questions: risk_category); "
                                "those with categories: cha2ds2_vasc, has_bled, centor, gcs, wells_pe")
    with pytest.raises(ConfigError) as error:
        medcalc_synth.generate(4, seed=0, questions="category")
    assert str(error.value) == "medcalc_synth: unknown questions 'category'; valid: score, risk_category"


def test_risk_category_questions_are_refused_when_the_config_is_parsed():
    from forgetbench.data.sources import check_domain_keys

    with pytest.raises(ConfigError) as error:
        check_domain_keys({"name": "m", "source": "medcalc_synth", "n_train": 4, "n_test": 4,
                           "questions": "risk_category", "calculators": ["bmi"]})
    assert str(error.value).startswith("domain 'm': medcalc_synth: calculator 'bmi' has no risk categories")
