"""Where an evaluation keeps lm-eval's response cache, keyed so that a cache never answers for other weights.

lm-eval's cache (`simple_evaluate(use_cache=...)`) hashes requests only, not the model. The cache of an
evaluation therefore lives under a name that fingerprints everything the responses depend on: each file of the
evaluated model and adapter (path, size, modification time: a retrained cell rewrites its weights), the task
settings, the backend and lm-eval's version. A rerun after a kill finds the same name and skips the requests
already answered; a retrained model or a changed setting gets a fresh cache.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path


def _stamp(path: Path, name: str) -> list:
    stat = path.stat()
    return [name, stat.st_size, stat.st_mtime_ns]


def _files(folder: str | Path | None) -> list[list]:
    if not folder:
        return []
    root = Path(folder)
    return [_stamp(p, str(p.relative_to(root))) for p in sorted(root.rglob("*")) if p.is_file()]


def response_cache(folder: str | Path, family: str, model_dir, adapter_dir=None, data_files=(), **settings) -> Path:
    """The cache path prefix of one evaluation job: `<folder>/<family>-<fingerprint>` (lm-eval adds `_rank0.db`)."""
    key = {
        "model": _files(model_dir),
        "adapter": _files(adapter_dir),
        "data": [_stamp(Path(f), str(f)) for f in data_files if f],
        "settings": settings,
        "lm_eval": importlib.metadata.version("lm-eval"),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(folder) / f"{family}-{digest}"
