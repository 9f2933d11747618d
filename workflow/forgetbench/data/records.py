"""The canonical domain record, its validation, and the split helpers every source goes through.

A record is a plain dict (so it round-trips through JSONL unchanged):

    id           str, unique within a dataset
    prompt       str, the full task text shown to the model (e.g. patient note + question)
    rationale    str, step-by-step solution; "" when the source has none (label-only supervision)
    answer       str, the reference answer
    answer_type  one of ANSWER_TYPES; decides how scoring compares a prediction
    lower/upper  float | None, inclusive tolerance bounds for decimal answers
    source       str, where the record comes from (calculator name, hub dataset, ...)
"""

from __future__ import annotations

import json
import math
import random
import unicodedata
from pathlib import Path

from forgetbench.errors import ConfigError

ANSWER_TYPES = ("decimal", "integer", "date", "label", "text")
FIELDS = ("id", "prompt", "rationale", "answer", "answer_type", "lower", "upper", "source")


def make_record(id, prompt, answer, rationale="", answer_type="text", lower=None, upper=None, source="") -> dict:
    """A canonical record with every field present, in a fixed key order, values coerced to their types."""
    return {
        "id": str(id),
        "prompt": "" if prompt is None else str(prompt),
        "rationale": "" if rationale is None else str(rationale),
        "answer": "" if answer is None else str(answer).strip(),
        "answer_type": str(answer_type),
        "lower": None if lower is None else float(lower),
        "upper": None if upper is None else float(upper),
        "source": "" if source is None else str(source),
    }


def _name(i: int, record) -> str:
    rid = record.get("id") if isinstance(record, dict) else None
    return f"record {i} (id '{rid}')" if rid not in (None, "") else f"record {i}"


def validate_records(records: list, where: str, fmt: str = "label") -> None:
    """Raise ConfigError, naming `where` and the record, for the first record a downstream step would trip on:
    a QA record's fields (cot, label) or a TRL format's (forgetbench.data.formats), and ids unique."""
    from forgetbench.data.formats import has_answers, record_problem

    if not records:
        raise ConfigError(f"{where}: no records (empty dataset)")
    seen: dict[str, int] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ConfigError(f"{where}: record {i} is a {type(rec).__name__}, expected an object")
        if has_answers(fmt):
            problem = _qa_problem(rec)
        elif not isinstance(rec.get("id"), str) or not rec["id"].strip():
            problem = "missing or empty 'id'"
        else:
            problem = record_problem(rec, fmt)
        if problem:
            raise ConfigError(f"{where}: {_name(i, rec)}: {problem}")
        if rec["id"] in seen:
            raise ConfigError(f"{where}: duplicate id '{rec['id']}' (records {seen[rec['id']]} and {i})")
        seen[rec["id"]] = i


def _qa_problem(rec: dict) -> str | None:
    """What is wrong with a QA record's fields, or None."""
    for key in ("id", "prompt", "answer"):
        value = rec.get(key)
        if not isinstance(value, str) or not value.strip():
            return f"missing or empty '{key}'"
    if not isinstance(rec.get("rationale", ""), str):
        return "'rationale' must be a string"
    atype = rec.get("answer_type", "text")
    if atype not in ANSWER_TYPES:
        return f"answer_type '{atype}' is not one of {', '.join(ANSWER_TYPES)}"
    for key in ("lower", "upper"):
        value = rec.get(key)
        bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        if value is not None and bad:
            return f"'{key}' must be a finite number or null, got {value!r}"
    if atype in ("decimal", "integer"):
        try:
            value = float(rec["answer"].replace(",", ""))
        except ValueError:
            return f"{atype} answer '{rec['answer']}' is not a number"
        if atype == "integer" and value != int(value):
            return f"integer answer '{rec['answer']}' has a fractional part"
    return answer_outside_bounds(rec)


def answer_outside_bounds(rec: dict) -> str | None:
    """Why a decimal record's own answer falls outside its [lower, upper], or None: scoring accepts only
    predictions inside the bounds, so such an item scores 0 for every model, the correct ones included."""
    lower, upper = rec.get("lower"), rec.get("upper")
    if rec.get("answer_type") != "decimal" or lower is None or upper is None:
        return None
    value = float(str(rec["answer"]).replace(",", ""))
    lo, hi = sorted((lower, upper))  # either order, as scoring reads them
    if lo <= value <= hi:
        return None
    return (f"decimal answer {rec['answer']} is outside its own bounds [lower {lower}, upper {upper}]: "
            f"the item would score 0 for every model")


def normalize_prompt(text: str) -> str:
    """Prompt identity for overlap checks: case and whitespace differences do not make a new task."""
    return " ".join(str(text).lower().split())


def near_duplicate_key(text: str) -> str:
    """Prompt identity for the overlap check and the split: two prompts that differ only in case, spacing or
    punctuation ("What is 2+2?" and "what is 2 + 2") are one task, and a test item that is one of the training
    items so rewritten leaks. Punctuation between two digits stays (10.5 is not 105), and so does one space
    between two numbers (1, 5 is not 15)."""
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    kept = "".join(" " if unicodedata.category(ch).startswith("P") and not _between_digits(text, i) else ch
                   for i, ch in enumerate(text))
    tokens = kept.split()
    return "".join(tok if not i or not (tokens[i - 1][-1].isdigit() and tok[0].isdigit()) else f" {tok}"
                   for i, tok in enumerate(tokens))


def _between_digits(text: str, i: int) -> bool:
    return 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()


def _prompt(record: dict) -> str:
    return record["prompt"]


def check_no_overlap(train: list[dict], test: list[dict], where: str, key=_prompt) -> None:
    """Raise ConfigError when a test prompt also appears in the training set, up to case, spacing and
    punctuation (near_duplicate_key): it would leak; or when an id names a record in each split (an id names
    one record of the dataset). `key` gives a record's prompt (a TRL format's: forgetbench.data.formats.overlap_key)."""
    seen = {near_duplicate_key(key(r)): r for r in train}
    clashes = [(r, seen[k]) for r in test if (k := near_duplicate_key(key(r))) in seen]
    if clashes:
        leak, twin = clashes[0]
        rewritten = normalize_prompt(key(leak)) != normalize_prompt(key(twin))
        raise ConfigError(
            f"{where}: {len(clashes)} test record(s) share a prompt with the training set "
            f"(e.g. test id '{leak['id']}' = train id '{twin['id']}'"
            + (": the same prompt up to spacing and punctuation)" if rewritten else ")")
        )
    train_ids = {r["id"] for r in train}
    both = [r["id"] for r in test if r["id"] in train_ids]
    if both:
        raise ConfigError(f"{where}: id '{both[0]}' names a training record and a test record "
                          f"({len(both)} such id(s)): give each record its own id")


def split_records(records: list[dict], test_fraction: float, seed: int, where: str,
                  key=_prompt) -> tuple[list[dict], list[dict]]:
    """Seeded train/test split that keeps records with the same prompt (up to case, spacing and punctuation) on
    the same side, so that duplicates in the source cannot leak into the test set; each side keeps the source
    order.
    `key` gives what groups records (a TRL format's: forgetbench.data.formats.group_key)."""
    if not 0 < float(test_fraction) < 1:
        raise ConfigError(f"{where}: test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    groups: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(near_duplicate_key(key(rec)), []).append(i)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    n_test_groups = round(len(keys) * float(test_fraction))
    if n_test_groups == 0 or n_test_groups == len(keys):
        raise ConfigError(
            f"{where}: test_fraction {test_fraction} of {len(keys)} distinct prompts leaves one split empty"
        )
    test_idx = {i for key in keys[:n_test_groups] for i in groups[key]}
    train = [r for i, r in enumerate(records) if i not in test_idx]
    test = [r for i, r in enumerate(records) if i in test_idx]
    return train, test


def subsample(records: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded random subset of `limit` records in source order (sources are often sorted by task, so the
    first N would cover only a few tasks); None or a limit >= len keeps everything."""
    if limit is None or int(limit) >= len(records):
        return list(records)
    keep = set(random.Random(seed).sample(range(len(records)), int(limit)))
    return [r for i, r in enumerate(records) if i in keep]


def read_jsonl(path) -> list[dict]:
    """Read a JSONL file of objects; blank lines are skipped, anything else that is not a JSON object raises
    ConfigError '<path>:<lineno>: ...'."""
    path = Path(path)
    out = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a byte-order mark some editors write
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{lineno}: malformed JSON line ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        out.append(obj)
    return out
