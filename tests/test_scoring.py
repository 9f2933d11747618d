"""Answer extraction, MedCalc-Bench correctness rules, and the prompt/response text both formats use."""

import pytest

from forgetbench.data.prompts import build_prompt, build_response
from forgetbench.data.records import make_record
from forgetbench.errors import ConfigError
from forgetbench.scoring import extract_answer, is_correct, normalize_date


def rec(answer, answer_type, lower=None, upper=None, rationale="Because."):
    return make_record("r1", "Task?", answer, rationale=rationale, answer_type=answer_type, lower=lower, upper=upper)


@pytest.mark.parametrize("text, expected", [
    ("Step 1 gives 12.\nAnswer: 58.689 mL/min.", "58.689"),
    ("Answer: 3\nwait, recomputing...\nAnswer: 4 points", "4"),  # the last 'Answer:' counts
    ("answer: -2.5", "-2.5"),
    ("Answer: 1,234.5 mL", "1234.5"),
    ("Answer: 09/17/2011.", "09/17/2011"),
    ("Answer: **E**", "E"),
    ("Answer:\n\n  Exact.", "Exact"),
    ("The BMI is 23.5 kg/m^2, so about 24", "24"),  # no 'Answer:': the last number
    ("The due date is 10/22/2019.", "10/22/2019"),
    ("I cannot tell.", None),
    ("", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_decimal_tolerance_bounds_are_inclusive():
    r = rec("100", "decimal", lower=95.0, upper=105.0)
    assert is_correct("Answer: 95", r) and is_correct("Answer: 105", r) and is_correct("Answer: 100.0 mL", r)
    assert not is_correct("Answer: 94.99", r)
    assert not is_correct("Answer: 105.01", r)


def test_decimal_without_bounds_uses_five_percent():
    r = rec("20", "decimal")
    assert is_correct("Answer: 21", r) and is_correct("Answer: 19", r)
    assert not is_correct("Answer: 21.01", r)
    assert not is_correct("Answer: 18.99", r)
    neg = rec("-10", "decimal")
    assert is_correct("Answer: -10.4", neg) and not is_correct("Answer: -10.6", neg)


def test_decimal_with_exact_bounds():
    r = rec("4.5", "decimal", lower=4.5, upper=4.5)
    assert is_correct("Answer: 4.5", r) and not is_correct("Answer: 4.6", r) and not is_correct("Answer: 4", r)


def test_integer_is_exact():
    r = rec("3", "integer")
    assert is_correct("Answer: 3", r)
    assert is_correct("Answer: 3 points.", r)
    assert is_correct("Answer: 3.0", r)
    assert not is_correct("Answer: 3.1", r)
    assert not is_correct("Answer: 4", r)
    assert not is_correct("Answer: none", r)


def test_dates_compare_as_dates():
    r = rec("10/22/2019", "date")
    assert is_correct("Answer: 10/22/2019", r)
    assert is_correct("Answer: 2019-10-22", r)
    assert not is_correct("Answer: 10/23/2019", r)
    assert not is_correct("Answer: 22", r)
    assert is_correct("Answer: 9/7/2020", rec("09/07/2020", "date"))
    assert normalize_date("due 9/7/2020") == "2020-09-07"
    assert normalize_date("2020-9-7") == "2020-09-07"
    assert normalize_date("13/45/2020") is None


def test_labels_and_text_ignore_case_and_decoration():
    r = rec("E", "label")
    assert is_correct("Answer: e", r) and is_correct("Answer: **E**.", r) and is_correct("E", r)
    assert not is_correct("Answer: S", r)
    t = rec("('16 weeks', '1 days')", "text")
    assert is_correct("Answer: (16 weeks, 1 days)", t)
    assert not is_correct("Answer: (16 weeks, 2 days)", t)


def test_no_prediction_is_wrong():
    assert not is_correct(None, rec("3", "integer"))
    assert not is_correct("", rec("E", "label"))


def test_prompt_formats():
    r = rec("7", "integer", rationale="1 + 6 = 7.")
    assert build_prompt(r, "cot") == (
        "Task?\n\nThink step by step, then give the final answer on the last line as 'Answer: <value>'."
    )
    assert build_prompt(r, "label") == "Task?\n\nGive only the final answer, as 'Answer: <value>'."
    assert build_response(r, "cot") == "1 + 6 = 7.\nAnswer: 7"
    assert build_response(r, "label") == "Answer: 7"
    assert is_correct(build_response(r, "cot"), r) and is_correct(build_response(r, "label"), r)


def test_unknown_format_and_cot_without_rationale_are_config_errors():
    r = rec("7", "integer", rationale="")
    with pytest.raises(ConfigError, match="unknown supervision format 'chain'; valid formats: cot, label"):
        build_prompt(r, "chain")
    with pytest.raises(ConfigError, match="unknown supervision format"):
        build_response(r, "chain")
    with pytest.raises(ConfigError, match="record 'r1': format 'cot' needs a rationale"):
        build_response(r, "cot")
    assert build_response(r, "label") == "Answer: 7"
