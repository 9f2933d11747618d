"""One cell's evaluation result from its families' results: the metrics of every task in one file, which is what
the aggregation reads."""

from __future__ import annotations

import json
from pathlib import Path

from forgetbench.atomic import write_json, write_text


def merge_families(paths: dict[str, str | Path], out_json: str | Path) -> dict:
    """Merge `{family: results JSON}` into `out_json`: `metrics` of every task, each family's `settings` under
    `families`, the shared identity and provenance from the first, and `status` diverged if any family says so."""
    if not paths:
        raise ValueError("no family results to merge")
    merged = {"metrics": {}, "families": {}}
    status = "finished"
    for family, path in paths.items():
        result = json.loads(Path(path).read_text())
        overlap = set(merged["metrics"]) & set(result["metrics"])
        if overlap:
            raise ValueError(f"{path}: task(s) {', '.join(sorted(overlap))} already come from another family")
        merged["metrics"].update(result["metrics"])
        merged["families"][family] = {"settings": result.get("settings"), "source": str(path)}
        if result.get("status") == "diverged":
            status = "diverged"
        for key, value in result.items():
            if key not in ("metrics", "settings", "status"):
                merged.setdefault(key, value)
    merged["status"] = status
    write_json(out_json, merged)
    return merged


def merge_items(paths: list[str | Path], out_jsonl: str | Path) -> None:
    """The families' per-item score files (JSON lines) in one, in family order."""
    write_text(out_jsonl, "".join(Path(path).read_text() for path in paths))
