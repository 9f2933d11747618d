"""Load the domain named in the config's `domain` section as validated (train, test) canonical records.

Sources (`domain.source`):
- medcalc_synth: generated offline from the MedCalc-Bench calculators (forgetbench.data.medcalc_synth);
  keys n_train, n_test, seed, calculators (optional list), questions (score, the default, or risk_category).
- local: a .jsonl, .json (an array of objects, or JSON lines), .csv (with a header row) or .parquet file
  (`path`; a UTF-8 byte-order mark is read past), with `test_path` or
  else a seeded `test_fraction` split; `fields` maps canonical names to the file's columns; `answer_type` sets
  one type for every record; `limit_train` / `limit_test` keep a seeded subset.
- hub: a known Hugging Face dataset (`dataset`: medcalc_bench, metamathqa, esci) read with
  `datasets.load_dataset`, its real columns mapped by the plain `from_*_row` functions below; `hub_id`
  (and `test_hub_id`) override where it is read from; `limit_train` / `limit_test` keep a seeded subset.

TRL formats (`format`: messages, prompt_completion, text; forgetbench.data.formats) read any dataset: `local`
as above, or `hub` with `hub_id` (any dataset id), optional `config`, `split` (default train) and `test_split`
or else `test_fraction`, `fields` mapping the format's fields (and `id`) to columns. Each row is checked when the
data is prepared (roles, turn order, empty content, a missing field, a row of another format) and refused in one
line naming the file or dataset split, the row (counted from 0) and the field.

Every error is a one-line ConfigError naming the domain and the key, file, column or row at fault.
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from forgetbench.atomic import write_jsonl
from forgetbench.data import medcalc_synth
from forgetbench.data.formats import (
    ASSISTANT_TURNS, FORMATS, TRL_FIELDS, TRL_FORMATS, group_key, overlap_key, record_problem, row_format,
)
from forgetbench.data.prompts import medcalc_task
from forgetbench.data.records import (
    ANSWER_TYPES, answer_outside_bounds, check_no_overlap, make_record, near_duplicate_key, read_jsonl, split_records,
    subsample, validate_records,
)
from forgetbench.errors import ConfigError
from forgetbench.hub_cache import offline_env

SOURCES = ("medcalc_synth", "local", "hub")
_COMMON_KEYS = {"name", "source", "format", "eval"}
_KEYS = {
    "medcalc_synth": {"n_train", "n_test", "seed", "calculators", "questions"},
    "local": {"path", "test_path", "test_fraction", "seed", "fields", "answer_type", "limit_train", "limit_test"},
    "hub": {"dataset", "hub_id", "test_hub_id", "seed", "limit_train", "limit_test", "locale"},
}
# The keys of the TRL formats per source (medcalc_synth makes QA records only); `assistant_turns`: messages only.
_TRL_KEYS = {
    "local": {"path", "test_path", "test_fraction", "seed", "fields", "limit_train", "limit_test"},
    "hub": {"hub_id", "config", "split", "test_split", "test_fraction", "seed", "fields", "limit_train", "limit_test"},
}
_FIELD_NAMES = ("id", "prompt", "answer", "rationale", "answer_type", "lower", "upper", "source")
_NUM_RE = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")


# ------------------------------------------------------------------------------------------- config


def _where(cfg: dict) -> str:
    return f"domain '{cfg.get('name', '?')}'"


def _allowed_keys(source: str, fmt: str) -> set:
    if fmt not in TRL_FORMATS:
        return _COMMON_KEYS | _KEYS[source]
    return _COMMON_KEYS | _TRL_KEYS[source] | ({"assistant_turns"} if fmt == "messages" else set())


def _check_keys(cfg: dict, source: str) -> None:
    fmt = cfg.get("format", "label")
    allowed = _allowed_keys(source, fmt)
    scope = f"source '{source}'" + (f" with format '{fmt}'" if fmt in TRL_FORMATS else "")
    known = set().union(*_KEYS.values(), *_TRL_KEYS.values(), {"assistant_turns"})
    for key in cfg:
        if key in allowed:
            continue
        keys = ", ".join(sorted(allowed))
        if key in known:  # a key of another source or format: no spelling hint, say where it belongs
            raise ConfigError(f"{_where(cfg)}: domain.{key} does not apply to {scope}; keys there: {keys}")
        near = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
        hint = f" (did you mean '{near[0]}'?)" if near else f"; keys for {scope}: {keys}"
        raise ConfigError(f"{_where(cfg)}: unknown key 'domain.{key}'{hint}")


def _check_trl_settings(cfg: dict, fmt: str) -> None:
    """A TRL format's settings that need no data: assistant_turns' value, the fields it may map, one test split."""
    where = _where(cfg)
    turns = cfg.get("assistant_turns", "all")
    if turns not in ASSISTANT_TURNS:
        raise ConfigError(f"{where}: domain.assistant_turns {turns!r} is not one of {', '.join(ASSISTANT_TURNS)}")
    fields = cfg.get("fields")
    if fields is not None and not isinstance(fields, dict):
        raise ConfigError(f"{where}: domain.fields must be a mapping of canonical name -> column")
    names = ("id",) + TRL_FIELDS[fmt]
    for key, column in (fields or {}).items():
        if key not in names:
            raise ConfigError(f"{where}: domain.fields.{key} is not a field of format '{fmt}'; "
                              f"fields: {', '.join(names)}")
        if not isinstance(column, str) or not column:
            raise ConfigError(f"{where}: domain.fields.{key} must be a column name, got {column!r}")
    for split_key in ("test_path", "test_split"):
        if cfg.get(split_key) and "test_fraction" in cfg:
            raise ConfigError(f"{where}: give either domain.{split_key} or domain.test_fraction, not both")


def _int(cfg: dict, key: str, default=None, minimum: int = 0):
    value = cfg.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{_where(cfg)}: domain.{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _require(cfg: dict, key: str):
    if cfg.get(key) in (None, ""):
        raise ConfigError(f"{_where(cfg)}: source '{cfg['source']}' needs the key 'domain.{key}'")
    return cfg[key]


# ------------------------------------------------------------------------------------- medcalc_synth


def _load_medcalc_synth(cfg: dict, base_dir: Path):
    n_train = _int(cfg, "n_train", minimum=1) or _require(cfg, "n_train")
    n_test = _int(cfg, "n_test", minimum=1) or _require(cfg, "n_test")
    seed = _int(cfg, "seed", 0)
    return medcalc_synth.make_splits(n_train, n_test, seed, cfg.get("calculators"), cfg.get("questions", "score"))


# --------------------------------------------------------------------------------------------- local


def missing_file(path: Path) -> str | None:
    """Why `path` is not a data file to read, or None: a folder is named as one (it exists; 'not found' misleads)."""
    if path.is_dir():
        return f"'{path}' is a directory: name the data file in it (.jsonl, .json, .csv or .parquet)"
    return None if path.is_file() else f"file not found: {path}"


def _read_table(path: Path, key: str, cfg: dict) -> list[dict]:
    problem = missing_file(path)
    if problem:
        raise ConfigError(f"{_where(cfg)}: domain.{key}: {problem}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise ConfigError(f"{path}: cannot read parquet ({type(exc).__name__}: {exc})") from None
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise ConfigError(f"{_where(cfg)}: domain.{key}: '{path}' must be a .jsonl, .json, .csv or .parquet file")


def _read_csv(path: Path) -> list[dict]:
    """A .csv file with a header row, its columns mapped by domain.fields like any other table's; every value
    is text (blank bounds read as none). A row with more cells than the header is refused, naming its line."""
    import csv

    rows = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:  # -sig: the byte-order mark spreadsheets write
            reader = csv.DictReader(f, restkey=_EXTRA)
            for row in reader:
                if _EXTRA in row:
                    raise ConfigError(f"{path}:{reader.line_num}: {len(reader.fieldnames) + len(row[_EXTRA])} cells "
                                      f"but the header names {len(reader.fieldnames)} columns (quote a value that "
                                      f"holds a comma)")
                if any(v.strip() for v in row.values() if isinstance(v, str)):  # a blank line is no record
                    rows.append({k: v for k, v in row.items() if v is not None})
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise ConfigError(f"{path}: not valid CSV ({exc})") from None
    return rows


_EXTRA = "\x00extra"  # where csv puts the cells of a row beyond the header's columns


def _read_json(path: Path) -> list[dict]:
    """A .json file: a JSON array of objects, or else JSON lines (what many datasets ship as .json)."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # -sig: a byte-order mark some editors write
    except json.JSONDecodeError:
        return read_jsonl(path)  # JSON lines, or a malformed file: read_jsonl names the line
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if isinstance(data, dict):
        return [data]  # one object: JSON lines of one line
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a JSON array of objects or JSON lines, got {type(data).__name__}")
    bad = next((i for i, row in enumerate(data) if not isinstance(row, dict)), None)
    if bad is not None:
        raise ConfigError(f"{path}: item {bad} is a {type(data[bad]).__name__}, expected an object")
    return data


def _map_local(rows: list[dict], path: Path, split: str, cfg: dict) -> list[dict]:
    fields = cfg.get("fields") or {}
    if not isinstance(fields, dict):
        raise ConfigError(f"{_where(cfg)}: domain.fields must be a mapping of canonical name -> column")
    unknown = [k for k in fields if k not in _FIELD_NAMES]
    if unknown:
        raise ConfigError(f"{_where(cfg)}: domain.fields.{unknown[0]} is not a record field; "
                          f"fields: {', '.join(_FIELD_NAMES)}")
    atype = cfg.get("answer_type", "text")
    if atype not in ANSWER_TYPES:
        raise ConfigError(f"{_where(cfg)}: domain.answer_type '{atype}' is not one of {', '.join(ANSWER_TYPES)}")
    if not rows:
        return []  # reported as an empty dataset by validate_records, naming the file
    columns = set().union(*(r.keys() for r in rows))
    # Required columns must exist; optional ones are used when configured or present under their own name.
    cols = {}
    for name in _FIELD_NAMES:
        column = fields.get(name, name)
        if column in columns:
            cols[name] = column
        elif name in fields or name in ("prompt", "answer"):
            raise ConfigError(
                f"{_where(cfg)}: column '{column}' (domain.fields.{name}) not found in {path}; "
                f"columns: {', '.join(sorted(map(str, columns))) or 'none'}"
            )
    records = []
    for i, row in enumerate(rows):
        get = lambda name, default=None: row.get(cols[name], default) if name in cols else default  # noqa: E731
        rid = get("id") if get("id") not in (None, "") else f"{cfg['name']}-{split}-{i:06d}"
        for name, column in cols.items():
            # str() would store [4] as the text "[4]" and float() would drop a bound given as [1.5]
            if isinstance(row.get(column), (list, tuple, dict)):
                raise ConfigError(f"{path}: record {i} (id '{rid}'): column '{column}' (domain.fields.{name}) holds "
                                  f"a {type(row[column]).__name__}, {row[column]!r}: give one value")
        records.append(make_record(
            id=rid,
            prompt=get("prompt"), answer=get("answer"), rationale=get("rationale", ""),
            answer_type=get("answer_type") or atype, lower=_float_or_none(get("lower")),
            upper=_float_or_none(get("upper")), source=get("source") or cfg["name"],
        ))
    return records


def _float_or_none(value):
    """A bound as a float; blanks, text such as MedCalc-Bench's date 'limits', and NaN give None."""
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not _NUM_RE.match(value.strip())):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _load_local(cfg: dict, base_dir: Path):
    where = _where(cfg)
    seed = _int(cfg, "seed", 0)
    path = base_dir / str(_require(cfg, "path"))
    train = _map_local(_read_table(path, "path", cfg), path, "train", cfg)
    validate_records(train, f"{where} ({path})")
    if cfg.get("test_path"):
        if "test_fraction" in cfg:
            raise ConfigError(f"{where}: give either domain.test_path or domain.test_fraction, not both")
        test_path = base_dir / str(cfg["test_path"])
        test = _map_local(_read_table(test_path, "test_path", cfg), test_path, "test", cfg)
        validate_records(test, f"{where} ({test_path})")
    else:
        train, test = split_records(train, cfg.get("test_fraction", 0.1), seed, f"{where}: domain.test_fraction")
    return train, test


# ----------------------------------------------------------------------------------------------- hub


def _str(row: dict, column: str) -> str:
    value = row.get(column)
    return "" if value is None else str(value).strip()


def from_medcalc_bench_row(row: dict, split: str, index: int) -> dict:
    """A MedCalc-Bench row (ncbi/MedCalc-Bench-v1.0 columns) as a canonical record: note + question as the
    prompt, the ground-truth explanation as rationale, its Lower/Upper Limit as the tolerance bounds."""
    answer = _str(row, "Ground Truth Answer")
    atype = _str(row, "Output Type").lower()
    if atype not in ("decimal", "integer", "date"):
        atype = "text"
    if atype in ("decimal", "integer") and not _NUM_RE.match(answer):
        atype = "text"  # e.g. gestational age "('4 weeks', '3 days')"
    if atype == "integer" and float(answer) != int(float(answer)):
        atype = "decimal"
    lower = _float_or_none(_str(row, "Lower Limit")) if atype == "decimal" else None
    upper = _float_or_none(_str(row, "Upper Limit")) if atype == "decimal" else None
    if atype == "integer":
        answer = str(int(float(answer)))
    number = row.get("Row Number", index)
    return make_record(
        id=f"medcalc_bench-{split}-{number}", prompt=medcalc_task(_str(row, "Patient Note"), _str(row, "Question")),
        rationale=_str(row, "Ground Truth Explanation"), answer=answer, answer_type=atype,
        lower=lower, upper=upper, source=_str(row, "Calculator Name"),
    )


def _numeric(answer: str) -> tuple[str, float | None, float | None]:
    """Math answers: numbers compare numerically (exact bounds, so '18' and '18.0' agree), others as text."""
    plain = answer.replace(",", "").replace("$", "").strip()
    if _NUM_RE.match(plain):
        value = float(plain)
        return "decimal", value, value
    return "text", None, None


def from_metamathqa_row(row: dict, split: str, index: int) -> dict:
    """A MetaMathQA row (query / response / type): the response up to 'The answer is:' is the rationale,
    what follows it the answer."""
    response = _str(row, "response")
    head, sep, tail = response.rpartition("The answer is:")
    if not sep or not tail.strip():
        raise ValueError("no 'The answer is:' in the response")
    answer = tail.strip()
    atype, lower, upper = _numeric(answer)
    return make_record(
        id=f"metamathqa-{split}-{index}", prompt=_str(row, "query"), rationale=head.strip(), answer=answer,
        answer_type=atype, lower=lower, upper=upper, source=_str(row, "type") or "MetaMathQA",
    )


def from_gsm8k_row(row: dict, split: str, index: int) -> dict:
    """A GSM8K row (question / answer ending in '#### N'); calculator annotations <<...>> are dropped."""
    full = _str(row, "answer")
    head, sep, tail = full.rpartition("####")
    if not sep or not tail.strip():
        raise ValueError("no '#### <answer>' in the answer")
    answer = tail.strip().replace(",", "")
    atype, lower, upper = _numeric(answer)
    return make_record(
        id=f"gsm8k-{split}-{index}", prompt=_str(row, "question"), rationale=re.sub(r"<<[^>]*>>", "", head).strip(),
        answer=answer, answer_type=atype, lower=lower, upper=upper, source="GSM8K",
    )


ESCI_LABELS = {"exact": "E", "substitute": "S", "complement": "C", "irrelevant": "I"}
ESCI_QUESTION = (
    "How relevant is the product to the shopping query? Answer with one letter: E (exact: it matches every "
    "requirement of the query), S (substitute: it fails some aspects but could be used in its place), "
    "C (complement: it does not fit the query but could be used together with such a product) or "
    "I (irrelevant)."
)


def from_esci_row(row: dict, split: str, index: int) -> dict:
    """An ESCI row (tasksource/esci: query, product_title, product_description, product_brand, esci_label
    as a full name or its letter) as a label-only record with answer E, S, C or I."""
    raw = _str(row, "esci_label")
    label = ESCI_LABELS.get(raw.lower(), raw.upper() if raw.upper() in ESCI_LABELS.values() else None)
    if label is None:
        raise ValueError(f"unknown esci_label '{raw}'")
    parts = [f"Query: {_str(row, 'query')}", f"Product title: {_str(row, 'product_title')}"]
    if _str(row, "product_brand"):
        parts.append(f"Brand: {_str(row, 'product_brand')}")
    description = re.sub(r"<[^>]+>", " ", _str(row, "product_description"))  # descriptions hold HTML
    if description.strip():
        parts.append(f"Description: {' '.join(description.split())[:500]}")
    number = row.get("example_id", index)
    return make_record(
        id=f"esci-{split}-{number}", prompt="\n".join(parts) + "\n\n" + ESCI_QUESTION, answer=label,
        answer_type="label", source=f"ESCI ({_str(row, 'product_locale') or 'all'})",
    )


@dataclass(frozen=True)
class HubDataset:
    hub_id: str
    train: tuple  # (config name or None, split)
    test: tuple
    mapper: Callable[[dict, str, int], dict]
    test_hub_id: str | None = None  # test read from another dataset (MetaMathQA has no test split)
    test_mapper: Callable[[dict, str, int], dict] | None = None
    rationale: bool = True  # its rows give a worked solution (format: cot trains on it)


HUB_DATASETS = {
    "medcalc_bench": HubDataset("ncbi/MedCalc-Bench-v1.0", (None, "train"), (None, "test"), from_medcalc_bench_row),
    "metamathqa": HubDataset("meta-math/MetaMathQA", (None, "train"), ("main", "test"), from_metamathqa_row,
                             test_hub_id="openai/gsm8k", test_mapper=from_gsm8k_row),
    "esci": HubDataset("tasksource/esci", (None, "train"), (None, "test"), from_esci_row, rationale=False),
}


def _load_hub_split(cfg: dict, hub_id: str, config: str | None, split: str, limit, seed: int):
    import datasets  # imported here: it is slow to import and only the hub source needs it

    args = (hub_id, config) if config else (hub_id,)
    try:
        ds = datasets.load_dataset(*args, split=split)
    except Exception as exc:  # the hub client raises many types (connection, 404, gated, offline)
        if offline_env():
            raise ConfigError(
                f"{_where(cfg)}: cannot load hub dataset '{hub_id}' offline; run once with network access "
                f"(HF_HUB_OFFLINE unset) to fill the Hugging Face cache, or save it as JSONL/parquet and use "
                f"source: local with path: <file>"
            ) from None
        raise ConfigError(f"{_where(cfg)}: cannot load hub dataset '{hub_id}' split '{split}' "
                          f"({type(exc).__name__}: {exc})") from None
    if cfg.get("dataset") == "esci" and cfg.get("locale", "us") and "product_locale" in ds.column_names:
        locale = cfg.get("locale", "us")
        ds = ds.filter(lambda loc: loc == locale, input_columns="product_locale")
    if limit is not None and limit < len(ds):
        # a seeded subset chosen before mapping: ESCI has two million rows
        ds = ds.shuffle(seed=seed).select(range(limit))
    return ds


def _map_rows(rows, mapper, split: str, cfg: dict, hub_id: str) -> list[dict]:
    records, skipped, first = [], 0, None
    for i, row in enumerate(rows):
        try:
            record = mapper(dict(row), split, i)
            problem = answer_outside_bounds(record)
            if problem:
                raise ValueError(problem)
            records.append(record)
        except (ValueError, KeyError, TypeError) as exc:
            skipped += 1
            first = first or f"row {i}: {exc}"
    if skipped:
        if not records:
            raise ConfigError(f"{_where(cfg)}: no usable rows in hub dataset '{hub_id}' split '{split}' ({first})")
        warnings.warn(f"{_where(cfg)}: skipped {skipped} malformed rows of '{hub_id}' split '{split}' ({first})")
    return records


def _load_hub(cfg: dict, base_dir: Path):
    name = _require(cfg, "dataset")
    if name not in HUB_DATASETS:
        raise ConfigError(f"{_where(cfg)}: unknown hub dataset '{name}'; known: {', '.join(HUB_DATASETS)}")
    spec = HUB_DATASETS[name]
    seed = _int(cfg, "seed", 0)
    hub_id, test_id = _known_hub_ids(cfg, spec)
    train_rows = _load_hub_split(cfg, hub_id, spec.train[0], spec.train[1], _int(cfg, "limit_train", minimum=1), seed)
    test_rows = _load_hub_split(cfg, test_id, spec.test[0], spec.test[1], _int(cfg, "limit_test", minimum=1), seed)
    train = _map_rows(train_rows, spec.mapper, "train", cfg, hub_id)
    test = _map_rows(test_rows, spec.test_mapper or spec.mapper, "test", cfg, test_id)
    # Published splits cannot be edited by the user: drop training items whose prompt is also a test item
    # (said in a warning) rather than refuse the dataset; the overlap check in load_domain still runs.
    test_prompts = {near_duplicate_key(r["prompt"]) for r in test}
    kept = [r for r in train if near_duplicate_key(r["prompt"]) not in test_prompts]
    if len(kept) < len(train):
        warnings.warn(f"{_where(cfg)}: dropped {len(train) - len(kept)} training records of '{hub_id}' whose "
                      f"prompt is also in the test split")
    return kept, test


# ----------------------------------------------------------------------------------------------- API


# ------------------------------------------------------------------------------------- TRL formats


def _trl_rows(cfg: dict, base_dir: Path, split: str) -> tuple[list[dict], str] | None:
    """The raw rows of one split and where they come from (for messages), or None where the config gives no
    separate test split (the test set is then split off the training rows)."""
    if cfg["source"] == "local":
        key = "path" if split == "train" else "test_path"
        if not cfg.get(key):
            return None
        path = base_dir / str(cfg[key])
        return _read_table(path, key, cfg), str(path)
    name = cfg.get("split", "train") if split == "train" else cfg.get("test_split")
    if not name:
        return None
    ds = _load_hub_split(cfg, cfg["hub_id"], cfg.get("config"), name, None, 0)
    return [dict(row) for row in ds], f"hub dataset '{cfg['hub_id']}' split '{name}'"


def _message(value):
    """A message reduced to its role and content (tool calls and names are not trained); anything else as is,
    for the check to name."""
    return {"role": value.get("role"), "content": value.get("content")} if isinstance(value, dict) else value


def _trl_value(value):
    return [_message(m) for m in value] if isinstance(value, list) else value


def _trl_record(row: dict, i: int, origin: str, split: str, cfg: dict) -> dict:
    """One row as a canonical record of the configured TRL format, or a one-line refusal naming the row."""
    fmt, fields = cfg["format"], cfg.get("fields") or {}
    id_column = fields.get("id", "id")
    rid = row.get(id_column)
    rid = f"{cfg['name']}-{split}-{i:06d}" if rid in (None, "") else str(rid)
    record = {"id": rid}
    for name in TRL_FIELDS[fmt]:
        column = fields.get(name, name)
        if row.get(column) is None:
            other = row_format(row)
            if other not in (None, fmt):
                keys = ", ".join(sorted(str(k) for k, v in row.items() if v is not None))
                raise ConfigError(f"{origin}: row {i}: its fields ({keys}) are format "
                                  f"'{other}', not domain.format '{fmt}': a dataset holds one format")
            mapped = f" (domain.fields.{name})" if name in fields else ""
            raise ConfigError(f"{origin}: row {i}: missing field '{column}'{mapped}")
        record[name] = _trl_value(row[column])
    record["source"] = cfg["name"]
    problem = record_problem(record, fmt)
    if problem:
        raise ConfigError(f"{origin}: row {i} (id '{rid}'): {problem}")
    return record


def _load_trl(cfg: dict, base_dir: Path) -> tuple[list[dict], list[dict]]:
    """A TRL format's (train, test) records from a local file or any hub dataset, each row checked."""
    fmt, seed = cfg["format"], _int(cfg, "seed", 0)
    rows, origin = _trl_rows(cfg, base_dir, "train")
    train = [_trl_record(row, i, origin, "train", cfg) for i, row in enumerate(rows)]
    test_rows = _trl_rows(cfg, base_dir, "test")
    if test_rows is not None:
        test = [_trl_record(row, i, test_rows[1], "test", cfg) for i, row in enumerate(test_rows[0])]
    else:
        validate_records(train, f"{_where(cfg)} ({origin})", fmt)  # before the split: it reads the fields
        train, test = split_records(train, cfg.get("test_fraction", 0.1), seed, f"{_where(cfg)}: domain.test_fraction",
                                    key=lambda r: group_key(r, fmt))
    train = subsample(train, _int(cfg, "limit_train", minimum=1), seed)
    test = subsample(test, _int(cfg, "limit_test", minimum=1), seed)
    return train, test


def _load_trl_domain(cfg: dict, base_dir: Path) -> tuple[list[dict], list[dict]]:
    fmt, where = cfg["format"], _where(cfg)
    train, test = _load_trl(cfg, base_dir)
    train_from, test_from = _read_from(cfg, base_dir)
    validate_records(train, f"{where} ({train_from})", fmt)
    validate_records(test, f"{where} ({test_from})", fmt)
    check_no_overlap(train, test, f"{where} (train {train_from}, test {test_from})", key=lambda r: overlap_key(r, fmt))
    return train, test


_LOADERS = {"medcalc_synth": _load_medcalc_synth, "local": _load_local, "hub": _load_hub}


def load_domain(cfg: dict, base_dir=".") -> tuple[list[dict], list[dict]]:
    """(train, test) canonical records for the config's domain section, validated and checked for overlap."""
    if not isinstance(cfg, dict):
        raise ConfigError("domain: must be a mapping with at least 'name' and 'source'")
    where = _where(cfg)
    check_domain_keys(cfg)
    source = cfg["source"]
    fmt = cfg.get("format", "label")
    if fmt in TRL_FORMATS:
        return _load_trl_domain(cfg, Path(base_dir))
    train, test = _LOADERS[source](cfg, Path(base_dir))
    if source == "local":
        seed = _int(cfg, "seed", 0)
        train = subsample(train, _int(cfg, "limit_train", minimum=1), seed)
        test = subsample(test, _int(cfg, "limit_test", minimum=1), seed)
    train_from, test_from = _read_from(cfg, Path(base_dir))
    validate_records(train, f"{where} ({train_from})")
    validate_records(test, f"{where} ({test_from})")
    check_no_overlap(train, test, f"{where} (train {train_from}, test {test_from})")
    if fmt == "cot":
        missing = next((r["id"] for r in train if not r["rationale"].strip()), None)
        if missing is not None:
            raise ConfigError(f"{where}: format 'cot' needs a rationale for every training record; "
                              f"record '{missing}' has none (use format: label)")
    return train, test


def _read_from(cfg: dict, base_dir: Path) -> tuple[str, str]:
    """Where each split comes from, for messages: a local source's files, else the split's name."""
    if cfg["source"] != "local":
        if cfg.get("format") in TRL_FORMATS:
            return cfg.get("split", "train"), cfg.get("test_split") or cfg.get("split", "train")
        return "train", "test"
    train = str(base_dir / str(cfg["path"]))
    return train, str(base_dir / str(cfg["test_path"])) if cfg.get("test_path") else train


def write_domain(cfg: dict, out_train, out_test, base_dir=".") -> tuple[int, int]:
    """Load the domain and write train and test JSONL atomically; returns the two record counts."""
    train, test = load_domain(cfg, base_dir)
    write_jsonl(out_train, train)
    write_jsonl(out_test, test)
    return len(train), len(test)


def hub_dataset_ids(cfg: dict) -> list[str]:
    """The hub datasets a domain reads, known without reading them: a known dataset's train and test ids (or
    their hub_id / test_hub_id overrides), a TRL format's hub_id; none for other sources."""
    if cfg.get("source") != "hub":
        return []
    spec = HUB_DATASETS.get(cfg.get("dataset"))
    if spec is not None:
        return sorted(set(_known_hub_ids(cfg, spec)))
    return [cfg["hub_id"]] if cfg.get("dataset") is None and cfg.get("hub_id") else []


def _known_hub_ids(cfg: dict, spec) -> tuple[str, str]:
    """A known dataset's (train, test) hub ids: its own, or the config's hub_id / test_hub_id (the test split
    comes from the train's id unless the dataset or the config name another)."""
    hub_id = cfg.get("hub_id") or spec.hub_id
    return hub_id, cfg.get("test_hub_id") or spec.test_hub_id or hub_id


def _check_medcalc_synth(cfg: dict) -> None:
    """The calculators and question kind, refused here rather than when prepare_domain generates the data."""
    try:
        medcalc_synth.resolve(cfg.get("calculators"), cfg.get("questions", "score"))
    except ConfigError as exc:
        raise ConfigError(f"{_where(cfg)}: {exc}") from None


def check_domain_keys(cfg: dict) -> None:
    """The checks of a domain section that need no data: its source and format, its keys and the keys its source
    needs, a TRL format's settings; the workflow runs them when it parses the config."""
    source = cfg.get("source")
    if source not in SOURCES:
        raise ConfigError(f"{_where(cfg)}: unknown source '{source}'; valid sources: {', '.join(SOURCES)}")
    fmt = cfg.get("format", "label")
    if fmt not in FORMATS:
        raise ConfigError(f"{_where(cfg)}: domain.format '{fmt}' is not one of {', '.join(FORMATS)}")
    if fmt in TRL_FORMATS and source not in _TRL_KEYS:
        raise ConfigError(f"{_where(cfg)}: source '{source}' makes short-answer QA records (format cot or label); "
                          f"format '{fmt}' reads source local or hub")
    _check_keys(cfg, source)
    required = {"medcalc_synth": ("n_train", "n_test"), "local": ("path",),
                "hub": ("hub_id",) if fmt in TRL_FORMATS else ("dataset",)}[source]
    for key in required:
        _require(cfg, key)
    if fmt in TRL_FORMATS:
        _check_trl_settings(cfg, fmt)
    if source == "medcalc_synth":
        _check_medcalc_synth(cfg)
    spec = HUB_DATASETS.get(cfg.get("dataset")) if source == "hub" else None
    if fmt == "cot" and spec is not None and not spec.rationale:
        raise ConfigError(f"{_where(cfg)}: format 'cot' trains on each record's rationale, and hub dataset "
                          f"'{cfg['dataset']}' has none (use format: label)")
