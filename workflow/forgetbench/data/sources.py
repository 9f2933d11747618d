"""Load the domain named in the config's `domain` section as validated (train, test) canonical records.

Sources (`domain.source`):
- medcalc_synth: generated offline from the MedCalc-Bench calculators (forgetbench.data.medcalc_synth);
  keys n_train, n_test, seed, calculators (optional list).
- local: a .jsonl or .parquet file (`path`), with `test_path` or else a seeded `test_fraction` split;
  `fields` maps canonical names to the file's columns; `answer_type` sets one type for every record;
  `limit_train` / `limit_test` keep a seeded subset.
- hub: a known Hugging Face dataset (`dataset`: medcalc_bench, metamathqa, esci) read with
  `datasets.load_dataset`, its real columns mapped by the plain `from_*_row` functions below; `hub_id`
  (and `test_hub_id`) override where it is read from; `limit_train` / `limit_test` keep a seeded subset.

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
from forgetbench.data.prompts import FORMATS, medcalc_task
from forgetbench.data.records import (
    ANSWER_TYPES, answer_outside_bounds, check_no_overlap, make_record, normalize_prompt, read_jsonl, split_records,
    subsample, validate_records,
)
from forgetbench.errors import ConfigError
from forgetbench.hub_cache import offline_env

SOURCES = ("medcalc_synth", "local", "hub")
_COMMON_KEYS = {"name", "source", "format"}
_KEYS = {
    "medcalc_synth": {"n_train", "n_test", "seed", "calculators"},
    "local": {"path", "test_path", "test_fraction", "seed", "fields", "answer_type", "limit_train", "limit_test"},
    "hub": {"dataset", "hub_id", "test_hub_id", "seed", "limit_train", "limit_test", "locale"},
}
_FIELD_NAMES = ("id", "prompt", "answer", "rationale", "answer_type", "lower", "upper", "source")
_NUM_RE = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")


# ------------------------------------------------------------------------------------------- config


def _where(cfg: dict) -> str:
    return f"domain '{cfg.get('name', '?')}'"


def _check_keys(cfg: dict, source: str) -> None:
    allowed = _COMMON_KEYS | _KEYS[source]
    for key in cfg:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
            keys = ", ".join(sorted(allowed))
            hint = f" (did you mean '{near[0]}'?)" if near else f"; keys for source '{source}': {keys}"
            raise ConfigError(f"{_where(cfg)}: unknown key 'domain.{key}'{hint}")


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
    return medcalc_synth.make_splits(n_train, n_test, seed, cfg.get("calculators"))


# --------------------------------------------------------------------------------------------- local


def _read_table(path: Path, key: str, cfg: dict) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"{_where(cfg)}: domain.{key}: file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise ConfigError(f"{path}: cannot read parquet ({type(exc).__name__}: {exc})") from None
    raise ConfigError(f"{_where(cfg)}: domain.{key}: '{path}' must be a .jsonl or .parquet file")


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


HUB_DATASETS = {
    "medcalc_bench": HubDataset("ncbi/MedCalc-Bench-v1.0", (None, "train"), (None, "test"), from_medcalc_bench_row),
    "metamathqa": HubDataset("meta-math/MetaMathQA", (None, "train"), ("main", "test"), from_metamathqa_row,
                             test_hub_id="openai/gsm8k", test_mapper=from_gsm8k_row),
    "esci": HubDataset("tasksource/esci", (None, "train"), (None, "test"), from_esci_row),
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
    hub_id = cfg.get("hub_id") or spec.hub_id
    test_id = cfg.get("test_hub_id") or spec.test_hub_id or hub_id
    train_rows = _load_hub_split(cfg, hub_id, spec.train[0], spec.train[1], _int(cfg, "limit_train", minimum=1), seed)
    test_rows = _load_hub_split(cfg, test_id, spec.test[0], spec.test[1], _int(cfg, "limit_test", minimum=1), seed)
    train = _map_rows(train_rows, spec.mapper, "train", cfg, hub_id)
    test = _map_rows(test_rows, spec.test_mapper or spec.mapper, "test", cfg, test_id)
    # Published splits cannot be edited by the user: drop training items whose prompt is also a test item
    # (said in a warning) rather than refuse the dataset; the overlap check in load_domain still runs.
    test_prompts = {normalize_prompt(r["prompt"]) for r in test}
    kept = [r for r in train if normalize_prompt(r["prompt"]) not in test_prompts]
    if len(kept) < len(train):
        warnings.warn(f"{_where(cfg)}: dropped {len(train) - len(kept)} training records of '{hub_id}' whose "
                      f"prompt is also in the test split")
    return kept, test


# ----------------------------------------------------------------------------------------------- API


_LOADERS = {"medcalc_synth": _load_medcalc_synth, "local": _load_local, "hub": _load_hub}


def load_domain(cfg: dict, base_dir=".") -> tuple[list[dict], list[dict]]:
    """(train, test) canonical records for the config's domain section, validated and checked for overlap."""
    if not isinstance(cfg, dict):
        raise ConfigError("domain: must be a mapping with at least 'name' and 'source'")
    where = _where(cfg)
    check_domain_keys(cfg)
    source = cfg["source"]
    fmt = cfg.get("format", "label")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}: domain.format '{fmt}' is not one of {', '.join(FORMATS)}")
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
        return "train", "test"
    train = str(base_dir / str(cfg["path"]))
    return train, str(base_dir / str(cfg["test_path"])) if cfg.get("test_path") else train


def write_domain(cfg: dict, out_train, out_test, base_dir=".") -> tuple[int, int]:
    """Load the domain and write train and test JSONL atomically; returns the two record counts."""
    train, test = load_domain(cfg, base_dir)
    write_jsonl(out_train, train)
    write_jsonl(out_test, test)
    return len(train), len(test)


def check_domain_keys(cfg: dict) -> None:
    """The checks of a domain section that need no data: its source, its keys and the keys its source needs;
    the workflow runs them when it parses the config."""
    source = cfg.get("source")
    if source not in SOURCES:
        raise ConfigError(f"{_where(cfg)}: unknown source '{source}'; valid sources: {', '.join(SOURCES)}")
    _check_keys(cfg, source)
    for key in {"medcalc_synth": ("n_train", "n_test"), "local": ("path",), "hub": ("dataset",)}[source]:
        _require(cfg, key)
