"""The domain's records at parse time: a local data file is read as prepare_domain reads it, so that what the
records get wrong (a malformed line, a missing column, a near-duplicate of a training prompt in the test split,
format cot without rationales) is refused before any job, and the split sizes are known for the checks that
need them (an evaluation limit above the test set; a batch larger than the training set).

medcalc_synth's sizes are its n_train and n_test; a hub dataset is not read here (prepare_domain reads it).
Each local read is stored under .snakemake/forgetbench/domain/, keyed by the files' size and modification
time, the domain settings and the reading code, so a warm dry run reads one small JSON file.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from forgetbench.atomic import write_json
from forgetbench.config.lengths import file_stamp
from forgetbench.config.sweep import training_processes
from forgetbench.data.sources import load_domain
from forgetbench.errors import ConfigError

CACHE_DIR = Path(".snakemake") / "forgetbench" / "domain"
DATA_CODE = ("data/sources.py", "data/records.py", "data/formats.py")  # the code whose change changes a read


def _cache_key(domain: dict) -> str:
    files = [file_stamp(Path(domain[k])) for k in ("path", "test_path") if domain.get(k)]
    code = [file_stamp(Path(__file__).parent / p) for p in DATA_CODE]
    blob = json.dumps([files, code, domain], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def _read_local(domain: dict, where: str) -> dict:
    try:
        train, test = load_domain(domain)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return {"train": len(train), "test": len(test)}


def domain_sizes(domain: dict, where: str, cache_dir: Path = CACHE_DIR) -> dict | None:
    """{"train": n, "test": m} records of the domain where they are known before any job, else None. A local
    source is read (and refused in one line where its records are bad)."""
    if domain["source"] == "medcalc_synth":
        return {"train": domain["n_train"], "test": domain["n_test"]}
    if domain["source"] != "local":
        return None
    cached = cache_dir / f"{_cache_key(domain)}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    sizes = _read_local(domain, where)
    write_json(cached, sizes)
    return sizes


def batch_warnings(config: dict, train_size: int) -> list[str]:
    """One line per distinct step size larger than the training set: each such step sees the whole set, not
    batch_size x grad_accum x processes rows (the training log and run.json say so too)."""
    training = config["training"]
    per, accum = training["batch_size"], training["grad_accum"]
    lines = []
    for processes in sorted({training_processes(config, model) for model in config["models"]}):
        step = per * accum * processes
        if step > train_size:
            lines.append(f"training.batch_size: a step of {per} per process x {accum} accumulated x {processes} "
                         f"process{'es' if processes > 1 else ''} = {step} rows is more than the domain's {train_size} "
                         f"training records: every step sees those {train_size} (effective batch {train_size}); "
                         f"lower training.batch_size or grad_accum, or add training data")
    return lines


def check_domain_data(config: dict, where: str) -> None:
    """Read the domain where it can be read now; refuse an evaluation limit above its test set, warn of a batch
    larger than its training set."""
    sizes = domain_sizes(config["domain"], where)
    if sizes is None:
        return
    limit = (config["evaluation"].get("domain") or {}).get("limit")
    if limit is not None and limit > sizes["test"]:
        raise ConfigError(f"{where}: evaluation.domain.limit: {limit} is more than the domain's {sizes['test']} test "
                          f"records (lower the limit or add test records)")
    for line in batch_warnings(config, sizes["train"]):
        print(f"warning: {where}: {line}", file=sys.stderr)
