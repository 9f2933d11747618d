"""The parse-time package (forgetbench.config): one entry point, no torch at parse time, no import cycles."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import yaml

from forgetbench.config import load_experiment
from forgetbench.config.schema import load_schema

from conftest import REPO

PACKAGE = REPO / "workflow" / "forgetbench"
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
JOB_TIME = ("torch", "transformers", "lm_eval", "datasets", "peft", "accelerate")


def test_parsing_the_default_config_imports_no_job_time_library(tmp_path):
    """Every module of the package, and a whole parse of the default config (a fresh folder: nothing prepared, no
    stored counts), leave torch, transformers, lm-eval and datasets unimported: a dry run on a login node stays
    fast and needs none of them."""
    code = f"""
import json, pkgutil, importlib, sys, yaml
import forgetbench.config as package
for module in pkgutil.iter_modules(package.__path__):
    importlib.import_module(f"forgetbench.config.{{module.name}}")
config = yaml.safe_load(open({str(REPO / 'config.yaml')!r}))
experiment = package.load_experiment(config, {SCHEMA!r}, [{str(REPO / 'config.yaml')!r}])
print(json.dumps({{"cells": len(experiment.cells), "loaded": [m for m in {JOB_TIME!r} if m in sys.modules]}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"cells": 22, "loaded": []}


def _imports(path, modules=()) -> set[str]:
    """The modules a file imports, at module level or inside functions: `from a.b import c` imports a.b.c where
    that is one of `modules`, else a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                      for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def _module_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {name: {m for m in _imports(path, modules) if m in modules and m != name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a path that comes back to its start), or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, trail + [nxt])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_module_imports_one_that_imports_it_back():
    graph = _module_graph()
    assert "forgetbench.config.experiment" in graph["forgetbench.config"]  # the graph sees the package's modules
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_job_time_code_does_not_import_the_parse_time_package():
    """What a job needs of the config reaches it as its rule's params: the training, evaluation and aggregation
    code and the rule scripts never import forgetbench.config."""
    job_time = [p for p in PACKAGE.rglob("*.py") if "config" not in p.relative_to(PACKAGE).parts]
    job_time += list((REPO / "workflow" / "scripts").glob("*.py"))
    importing = [str(p.relative_to(REPO)) for p in job_time
                 if any(m == "forgetbench.config" or m.startswith("forgetbench.config.") for m in _imports(p))]
    assert importing == []


def test_one_parse_reads_the_schema_once_and_returns_what_the_rules_need(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_schema.cache_clear()
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    experiment = load_experiment(config, SCHEMA, [str(REPO / "config.yaml")])
    assert load_schema.cache_info().misses == 1
    assert experiment.results == "results/default"
    assert experiment.domain == config["domain"]["name"]
    assert len(experiment.cells) == 22 and experiment.cells[0].path == "smollm2-135m/sft/lr~2e-05/seed~0"
    assert experiment.families == {"all": ["domain", "domain_loss", "general_text", "arc_easy", "piqa"]}
    assert experiment.evaluation["smollm2-135m"].backend == "hf"
    assert experiment.resources.models["smollm2-135m"].train["sft"].mem_mb == 16000


def test_a_cell_and_a_scaling_run_share_one_record(tmp_path, monkeypatch):
    """One function writes both records: a scaling run's differs by its steps (max_steps, checkpoint_steps) and has
    no post-hoc variant settings."""
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    experiment = load_experiment(config, SCHEMA, [str(REPO / "config.yaml")])
    cell = experiment.cell_config("smollm2-135m", "lora", "0.0002", "0")
    assert list(cell) == ["experiment", "model", "model_source", "chat_template", "method", "registry_name",
                          "method_version", "hparams", "variant_settings", "lr", "seed", "training", "domain"]
    assert (cell["lr"], cell["seed"], cell["variant_settings"]) == (2e-4, 0, {})
    (model, folder), run = next(iter(experiment.scaling_runs.items()))
    scaling = experiment.cell_config(model, folder, str(run.lr), str(run.seed))
    assert scaling["training"]["max_steps"] == max(run.steps) and scaling["checkpoint_steps"] == list(run.steps)
    assert "variant_settings" not in scaling and scaling["method"] == folder
