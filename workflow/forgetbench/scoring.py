"""Domain answer extraction and correctness, following MedCalc-Bench (Khandekar et al., 2024):

- decimal: the predicted number lies within the record's [lower, upper] (inclusive; ±5% of the answer when
  the bounds are missing);
- integer: the predicted number equals the integer answer exactly ("3.0" counts as 3, "3.4" does not);
- date: same calendar day, whatever the spelling (M/D/YYYY, MM/DD/YYYY or YYYY-MM-DD);
- label / text: case-insensitive equality after stripping whitespace, quotes, markdown and end punctuation.

The answer is read from the last "Answer:" in the generation (the format prompts.py asks for); without one,
the last number (or date) in the text counts, as MedCalc-Bench's own extraction falls back to.

GSM8K's final answer (`gsm8k_answer`, the offline fb_gsm8k task's filter) is the number after the first explicit
marker (`#### N`, `The answer is N`, `Answer: N`, `\\boxed{N}`), else the last bolded number (`**N**`), else the
last number, written canonically so that answers compare as numbers (`$1,234.00` is `1234`).
"""

from __future__ import annotations

import math
import re
from datetime import date
from decimal import Decimal

_ANSWER_RE = re.compile(r"answer\s*[:：]", re.IGNORECASE)
# A number: optional sign, digits with optional thousands commas, optional decimals / exponent.
_NUMBER_RE = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+−]?\.\d+")
_DATE_RE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b|\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_STRIP_CHARS = " \t\r\n\"'`*_.,;:!?()[]{}<>"


def _segment(text: str) -> str | None:
    """The first non-empty line after the last 'Answer:', or None when there is no 'Answer:'."""
    matches = list(_ANSWER_RE.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end():]
    for line in rest.splitlines():
        if line.strip(_STRIP_CHARS):
            return line.strip()
    return ""


def _to_float(token: str) -> float:
    return float(token.replace(",", "").replace("−", "-"))


def normalize_date(text: str) -> str | None:
    """ISO date (YYYY-MM-DD) of the first M/D/YYYY or YYYY-MM-DD date in `text`, or None."""
    m = _DATE_RE.search(str(text))
    if not m:
        return None
    if m.group(1):
        month, day, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        year, month, day = int(m.group(4)), int(m.group(5)), int(m.group(6))
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def _clean_label(text: str) -> str:
    return " ".join(text.strip(_STRIP_CHARS).lower().split())


def _normalize_text(text: str) -> str:
    # Free text such as "('4 weeks', '3 days')": compare words, not punctuation.
    return " ".join(re.sub(r"[^\w./-]+", " ", text.lower()).split())


def extract_answer(text: str) -> str | None:
    """The answer in a model generation: the date or number after the last 'Answer:' (units and punctuation
    dropped), else that line's text cleaned of quotes/markdown; with no 'Answer:', the last date or number
    anywhere in the text; None when there is nothing to extract."""
    if text is None:
        return None
    text = str(text)
    seg = _segment(text)
    if seg is not None:
        m = _DATE_RE.search(seg)
        if m:
            return m.group(0)
        num = _NUMBER_RE.search(seg)
        if num:
            return num.group(0).replace(",", "").replace("−", "-")
        cleaned = seg.strip(_STRIP_CHARS)
        return cleaned or None
    dates = list(_DATE_RE.finditer(text))
    nums = list(_NUMBER_RE.finditer(text))
    last = max(dates + nums, key=lambda m: m.end(), default=None)
    if last is None:
        return None
    if dates and last is dates[-1]:
        return last.group(0)
    return last.group(0).replace(",", "").replace("−", "-")


def _bounds(record: dict) -> tuple[float, float]:
    lower, upper = record.get("lower"), record.get("upper")
    if lower is None or upper is None:
        ref = _to_float(str(record["answer"]))
        lower, upper = ref * 0.95, ref * 1.05
    lower, upper = float(lower), float(upper)
    return (lower, upper) if lower <= upper else (upper, lower)


def is_correct(prediction_text: str, record: dict) -> bool:
    """Whether a generation answers the record correctly under the record's answer_type (module docstring)."""
    if prediction_text is None:
        return False
    atype = record.get("answer_type", "text")
    if atype in ("decimal", "integer"):
        pred = extract_answer(prediction_text)
        if pred is None or not _NUMBER_RE.fullmatch(pred):
            return False
        value = _to_float(pred)
        if not math.isfinite(value):
            return False
        if atype == "integer":
            ref = _to_float(str(record["answer"]))
            return value == ref and value == int(value)
        lower, upper = _bounds(record)
        return lower <= value <= upper
    if atype == "date":
        pred = extract_answer(prediction_text)
        ref = normalize_date(record["answer"])
        return pred is not None and ref is not None and normalize_date(pred) == ref
    # label / text: the whole answer line, not just a number inside it
    text = str(prediction_text)
    seg = _segment(text)
    if seg is None:
        lines = [line for line in text.splitlines() if line.strip()]
        seg = lines[-1] if lines else ""
    if atype == "label":
        return _clean_label(seg) == _clean_label(str(record["answer"]))
    return _normalize_text(seg) == _normalize_text(str(record["answer"]))


# The first marker, not the last: a model that goes on after its answer writes further problems and their answers.
_GSM8K_MARKED_RE = re.compile(
    r"(?:####|\\boxed\{|answer\s*(?:is|[:：=]))"  # the marker
    r"(?:\s|[:*$(]|\\[$(\[]|\\boxed\{|\\text\{)*"  # markup between it and the number
    rf"({_NUMBER_RE.pattern})", re.IGNORECASE)
# The last bold number: chat models bold intermediate results too, and the answer last.
_GSM8K_BOLD_RE = re.compile(rf"\*\*\$?({_NUMBER_RE.pattern})[^\S\n]*[A-Za-z%]*\*\*")


def canonical_number(token: str) -> str:
    """A number as one spelling: no currency sign, thousands commas, trailing zeros or '+' ('$1,250.00' -> '1250')."""
    value = Decimal(token.replace(",", "").replace("$", "").replace("−", "-")).normalize()
    return format(value if value else Decimal(0), "f")


def gsm8k_answer(text: str) -> str | None:
    """The canonical final number of a GSM8K generation (module docstring), or None when it has no number."""
    marked = _GSM8K_MARKED_RE.search(text)
    bold = _GSM8K_BOLD_RE.findall(text)
    numbers = _NUMBER_RE.findall(text)
    token = marked.group(1) if marked else bold[-1] if bold else numbers[-1] if numbers else None
    return None if token is None else canonical_number(token)
