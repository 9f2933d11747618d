"""lm-eval's task and group index as plain facts, for the parse-time checks of configs that name lm-eval tasks.

lm-eval's TaskManager reads every task YAML it ships (about 15,000 names, 6-15 s) before it can say whether a
name exists. The dry run needs only a few facts per name, so they are read once with lm-eval's own index
builder and cached as JSON under .snakemake/forgetbench/lm_eval_index/: the built-in tasks keyed by lm-eval's
version, each include_path folder (and the project's own tasks) keyed by its YAML files' paths, sizes and
modification times. A config that names only catalogue tasks never reads this (the default dry run stays fast).

Per name: kind (task, group or tag), YAML path; for a task its output type, dataset (dataset_path, dataset_name,
whether a custom_dataset loader or a local builder supplies the data), metrics and filters; for a group its
members and aggregate metrics; for a tag its tasks. Imports lm-eval's YAML index only (no torch).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path(".snakemake") / "forgetbench" / "lm_eval_index"
# lm_eval.api.registry.DEFAULT_METRIC_REGISTRY: a task without metric_list reports these
DEFAULT_METRICS = {
    "loglikelihood": ["perplexity", "acc"],
    "loglikelihood_rolling": ["word_perplexity", "byte_perplexity", "bits_per_byte"],
    "multiple_choice": ["acc", "acc_norm"],
    "generate_until": ["exact_match"],
}
# `datasets` builders that read local files: no hub download
LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "sql", "webdataset", "imagefolder",
                  "audiofolder", "videofolder"}


def _metric_name(metric) -> str:
    """lm-eval names a function metric (`!function module.fn`, unresolved: a path ending in `.fn`) after the function."""
    text = str(metric)
    return text.rpartition(".")[2] if "/" in text else text


def _filters(filter_list) -> list[str]:
    if not filter_list:
        return ["none"]
    if isinstance(filter_list, str):
        return [filter_list]
    return [f["name"] if isinstance(f, dict) else str(f) for f in filter_list]


def task_facts(cfg: dict) -> dict:
    """The facts of one task config (includes resolved, functions not)."""
    output_type = cfg.get("output_type", "generate_until")
    metrics = [_metric_name(m["metric"]) for m in cfg.get("metric_list") or [] if isinstance(m, dict) and "metric" in m]
    dataset_path = cfg.get("dataset_path")
    local = bool(cfg.get("custom_dataset")) or dataset_path is None or str(dataset_path) in LOCAL_BUILDERS \
        or Path(str(dataset_path)).expanduser().exists()
    return {
        "kind": "task",
        "output_type": output_type,
        "metrics": metrics or DEFAULT_METRICS.get(output_type, []),
        "filters": _filters(cfg.get("filter_list")),
        "dataset_path": None if dataset_path is None else str(dataset_path),
        "dataset_name": cfg.get("dataset_name"),
        "hub": not local,
    }


def group_facts(cfg: dict) -> dict:
    members = []
    for member in cfg.get("task") or []:
        if isinstance(member, str):
            members.append(member)
        elif isinstance(member, dict) and isinstance(member.get("task"), str) and "group" not in member:
            # an inline task: its own facts, or a name with overrides
            members.append({"name": member["task"], **({} if set(member) <= {"task", "task_alias"} else
                                                        {"inline": task_facts(member) if "dataset_path" in member
                                                         or "custom_dataset" in member else None})})
        elif isinstance(member, dict) and isinstance(member.get("group"), str):
            members.append({"name": member["group"], "inline": group_facts(member)})
    aggregates = [
        {"metric": _metric_name(m["metric"]), "filters": _filters(m.get("filter_list"))}
        for m in cfg.get("aggregate_metric_list") or [] if isinstance(m, dict) and "metric" in m
    ]
    if isinstance(cfg.get("aggregate_metric_list"), dict):
        m = cfg["aggregate_metric_list"]
        aggregates = [{"metric": _metric_name(m["metric"]), "filters": _filters(m.get("filter_list"))}]
    return {"kind": "group", "members": members, "aggregates": aggregates}


def _build(root: Path | None) -> dict[str, dict]:
    """name -> facts of every YAML under `root` (None: lm-eval's built-in tasks)."""
    import logging

    from lm_eval.tasks._index import Kind, TaskIndex

    if root is None:
        import lm_eval.tasks

        root = Path(lm_eval.tasks.__file__).parent
    logging.getLogger("lm_eval.tasks._index").setLevel(logging.ERROR)  # duplicate-name warnings
    out = {}
    for name, entry in TaskIndex.build([root]).items():
        path = str(entry.yaml_path) if entry.yaml_path else None
        try:
            if entry.kind == Kind.GROUP:
                facts = group_facts(entry.cfg or {})
            elif entry.kind == Kind.TAG:
                facts = {"kind": "tag", "members": sorted(entry.tags)}
            elif entry.kind == Kind.PY_TASK:
                facts = {"kind": "task", "output_type": None, "metrics": None, "filters": None, "dataset_path": None,
                         "dataset_name": None, "hub": False}
            else:
                facts = task_facts(entry.cfg or {})
        except Exception as exc:  # a YAML lm-eval indexes but whose facts we cannot read: known, unchecked
            facts = {"kind": "task", "output_type": None, "metrics": None, "filters": None, "dataset_path": None,
                     "dataset_name": None, "hub": False, "unreadable": f"{type(exc).__name__}: {exc}"}
        out[name] = {**facts, "yaml": path}
    return out


def _folder_key(root: Path) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".py"))
    stats = [[str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    return hashlib.sha256(json.dumps([str(root.resolve()), stats]).encode()).hexdigest()[:16]


def lm_eval_version() -> str:
    return importlib.metadata.version("lm-eval")


def _cached(key: str, build, cache_dir: Path) -> dict:
    path = cache_dir / f"{key}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass  # a torn write: rebuild
    index = build()
    from forgetbench.atomic import write_text

    write_text(path, json.dumps(index, sort_keys=True))
    return index


@dataclass
class LmEvalIndex:
    """The names of the include_path folders (searched first, as lm-eval lets them override) and, loaded only
    when a name is not found there, lm-eval's built-in tasks."""

    folders: list[Path]
    cache_dir: Path = CACHE_DIR

    def __post_init__(self):
        self._local = {}
        for folder in self.folders:
            folder = Path(folder)
            self._local.update(_cached(f"folder-{_folder_key(folder)}", lambda: _build(folder), self.cache_dir))
        self._builtin = None

    @property
    def builtin(self) -> dict:
        if self._builtin is None:
            self._builtin = _cached(f"builtin-{lm_eval_version()}", lambda: _build(None), self.cache_dir)
        return self._builtin

    def get(self, name: str) -> dict | None:
        return self._local.get(name) or self.builtin.get(name)

    def in_folders(self, name: str) -> bool:
        return name in self._local

    def names(self) -> list[str]:
        return sorted(set(self._local) | set(self.builtin))

    def leaves(self, name: str, seen: frozenset = frozenset()) -> list[tuple[str, dict]]:
        """(name, facts) of every task a task, group or tag runs (inline tasks with their own facts)."""
        facts = self.get(name)
        if facts is None or name in seen:
            return []
        if facts["kind"] == "task":
            return [(name, facts)]
        out = []
        for member in facts["members"]:
            if isinstance(member, str):
                out += self.leaves(member, seen | {name})
            elif member.get("inline") and member["inline"].get("kind") == "group":
                for sub in member["inline"]["members"]:
                    out += self.leaves(sub if isinstance(sub, str) else sub["name"], seen | {name})
            elif member.get("inline"):
                out.append((member["name"], member["inline"]))
            else:
                out += self.leaves(member["name"], seen | {name})
        return out
