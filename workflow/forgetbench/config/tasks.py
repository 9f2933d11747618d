"""The evaluation section's parse-time checks: every task's settings, the families (one evaluation job each),
tasks named by their lm-eval name against lm-eval's index, the scaling study's tasks, and the stamp of each
family's task files (a param of its jobs, so editing a task reruns that family only). The catalogue itself (what
each task is, its data and defaults) is forgetbench.evaluation.tasks, read by the jobs too.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path

from forgetbench.errors import ConfigError
from forgetbench.evaluation.lm_eval_index import LmEvalIndex
from forgetbench.evaluation.tasks import (DOMAIN_EVAL_PREFIX, DOMAIN_TASKS, OFFLINE, SPECS, TASKS_DIR, base_name,
                                          check_hub_available, config_key, config_tasks, download_command,
                                          include_paths, is_catalogue, lm_eval_name, normalize_tasks)
from forgetbench.hub_cache import dataset_cached, offline_env


VARIANTS = {name: list(spec.variants) for name, spec in SPECS.items() if spec.variants}  # chat models' forms


INCLUDE = re.compile(r"^include:\s*(\S+)", re.M)


FUNCTION = re.compile(r"!function\s+([A-Za-z_]\w*)\.")  # the module a task YAML calls into


def _task_yamls(name: str) -> list[Path]:
    """The YAML files of an offline task and the templates they include."""
    name = base_name(name)
    if OFFLINE.get(name) is None:
        return []
    pending = [TASKS_DIR / f"{task}.yaml" for task in [OFFLINE[name], *VARIANTS.get(name, [])]]
    found = []
    while pending:
        path = pending.pop()
        if path not in found and path.is_file():
            found.append(path)
            pending += [TASKS_DIR / include for include in INCLUDE.findall(path.read_text())]
    return found


def tasks_stamp(tasks: list[str], include_path: list[str] = ()) -> str:
    """A short hash of what decides these tasks' scores besides the model: their YAML files, the modules of
    TASKS_DIR those YAMLs call (`!function module.name`) and the domain's answer check. An evaluation job takes
    it as a param, so editing a task reruns the evaluations of its family only (re-scoring the cached
    responses); fb_loaders.py, which every offline task reads its data with, stamps every family."""
    yamls = {p for name in tasks for p in _task_yamls(name)}
    modules = {TASKS_DIR / f"{module}.py" for path in yamls for module in FUNCTION.findall(path.read_text())}
    files = yamls | {p for p in modules if p.is_file()}
    files.add(Path(__file__).resolve().parents[1] / "scoring.py")
    if include_path and not all(is_catalogue(name) for name in tasks):
        # a user's lm-eval tasks: every task YAML and module of its folders (lm-eval's own: its version)
        files |= {p for folder in include_path for p in Path(folder).rglob("*") if p.suffix in (".yaml", ".yml", ".py")}
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


FAMILY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


RESERVED_FAMILIES = {"metrics"}  # eval/metrics.json is the merged result of a cell


def eval_families(evaluation: dict, where: str = "config", domain: dict | None = None) -> dict[str, list[str]]:
    """Family -> its canonical tasks: one evaluation job each, so a failed or preempted family reruns alone.

    `evaluation.families` groups tasks that should share a job (and one model load); every task it does not
    name is a family of its own, named after the task. A task may belong to one family only.
    """
    tasks = config_tasks(evaluation, domain)
    grouped = evaluation.get("families") or {}
    families, owner = {}, {}
    for family, members in grouped.items():
        key = f"{where}: evaluation.families.{family}"
        if not FAMILY_NAME.fullmatch(family) or family in RESERVED_FAMILIES:
            raise ConfigError(f"{key}: a family name is letters, digits, '_', '.', '-' and not 'metrics'")
        if not members:
            raise ConfigError(f"{key}: empty; list the tasks it groups")
        for task in members:
            if task == "domain" and task not in tasks and domain is not None:
                why = "domain.eval replaces it as the domain score" if (domain.get("eval")) else \
                    f"domain.format '{domain.get('format')}' carries no answers to score"
                raise ConfigError(f"{key}: 'domain' is not evaluated ({why}): drop it from the family")
            if task not in tasks:
                raise ConfigError(f"{key}: '{task}' is not an evaluated task ({', '.join(tasks)})")
            if task in owner:
                raise ConfigError(f"{key}: '{task}' is already in family '{owner[task]}'")
            owner[task] = family
        _refuse_shared_task(normalize_tasks({task: tasks[task] for task in members}), members, None, key)
        families[family] = list(members)
    for task in tasks:
        if task not in owner:
            if task in families:
                raise ConfigError(f"{where}: evaluation.families: '{task}' names a family and an ungrouped task")
            families[task] = [task]
    return families


def check_evaluation(evaluation: dict, where: str = "config", domain: dict | None = None) -> dict[str, list[str]]:
    """Every task's settings valid, the families consistent and, with the hub switched off, every catalogue hub
    task's data in the local cache: the checks that must fail before any job starts. Returns the families.
    (Tasks named by their lm-eval name are checked against lm-eval's index by check_lm_eval_tasks.)"""
    try:
        for name in evaluation.get("general") or {}:
            if name.startswith(DOMAIN_EVAL_PREFIX) or name in DOMAIN_TASKS:
                raise ConfigError(f"evaluation.general.{name}: a general task cannot be the domain's: the domain is "
                                  f"scored by domain.eval (lm-eval tasks) or its own answers and loss")
        if domain is not None and domain.get("eval") is not None:
            check_domain_eval(domain["eval"])
        settings = normalize_tasks(config_tasks(evaluation, domain))
        check_hub_available(settings)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return eval_families(evaluation, where, domain)


def check_domain_eval(tasks) -> None:
    if not isinstance(tasks, dict) or not tasks:
        raise ConfigError("domain.eval: a mapping of lm-eval task -> settings (e.g. {gsm8k: {num_fewshot: 8}}), "
                          f"got {tasks!r}")
    for name in tasks:
        if name in DOMAIN_TASKS:
            raise ConfigError(f"domain.eval.{name}: '{name}' is the domain's own task, not an lm-eval task to "
                              f"score the domain with")


def _needs_index(settings: dict[str, dict]) -> bool:
    return any(not is_catalogue(name) or "metric" in s or "filter" in s for name, s in settings.items())


def check_lm_eval_tasks(evaluation: dict, domain: dict, where: str, index=None) -> None:
    """Tasks named by their lm-eval name (and metrics or filters configured on any task), against lm-eval's task
    index (built-in + include_path; forgetbench.evaluation.lm_eval_index, cached): an unknown name with
    lm-eval's closest names, a tag, a group without aggregate score, a configured metric or filter the task does
    not report, and with the hub switched off a hub dataset not in the local cache. Read only when needed."""
    for folder in include_paths(evaluation):
        if not Path(folder).is_dir():
            raise ConfigError(f"{where}: evaluation.include_path: folder not found: {folder}")
    settings = normalize_tasks(config_tasks(evaluation, domain))
    if not _needs_index(settings):
        return
    if index is None:
        index = LmEvalIndex([TASKS_DIR, *include_paths(evaluation)])
    for name, s in settings.items():
        if is_catalogue(name) and "metric" not in s and "filter" not in s:
            continue
        try:
            _check_lm_eval_task(index, name, s, bool(include_paths(evaluation)))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {config_key(name)}{exc}") from None
    _check_family_leaves(index, settings, eval_families(evaluation, where, domain), where)


def check_scaling_tasks(tasks: dict[str, dict], include_path: list[str], where: str, index=None) -> None:
    """The scaling study evaluates each checkpoint's tasks (scaling.general, the domain score, the general text)
    in one simple_evaluate call: two of them that run the same lm-eval task (scaling.general.gsm8k and
    domain.eval.gsm8k) would fail there, after training."""
    settings = normalize_tasks(tasks)
    if _needs_index(settings) and index is None:
        index = LmEvalIndex([TASKS_DIR, *include_path])
    clash = shared_lm_eval_task(settings, list(settings), index)
    if clash:
        first, second, leaf = clash
        raise ConfigError(f"{where}: scaling.general: '{first}' and '{second}' both run lm-eval task '{leaf}', and each "
                          f"checkpoint is evaluated in one simple_evaluate call, which cannot run a task twice: drop "
                          f"it from scaling.general (the domain score is evaluated at every checkpoint anyway)")


def shared_lm_eval_task(settings: dict[str, dict], members: list[str], index=None) -> tuple[str, str, str] | None:
    """Two of `members` that run the same lm-eval task, which one simple_evaluate call cannot run twice: (the
    first, the second, the task), or None. With lm-eval's index (forgetbench.evaluation.lm_eval_index) a group
    counts by its leaf tasks, so a task and a group holding it clash too."""
    owner = {}
    for name in members:
        run = lm_eval_name(name, settings[name])
        leaves = [leaf for leaf, _ in index.leaves(run)] if index is not None and not is_catalogue(name) else []
        for leaf in leaves or [run]:
            if owner.setdefault(leaf, name) != name:
                return owner[leaf], name, leaf
    return None


def _refuse_shared_task(settings: dict[str, dict], members: list[str], index, key: str) -> None:
    clash = shared_lm_eval_task(settings, members, index)
    if clash:
        first, second, leaf = clash
        raise ConfigError(f"{key}: '{first}' and '{second}' both run lm-eval task '{leaf}', which one evaluation (one "
                          f"simple_evaluate call) cannot run twice: put them in different families")


def _check_family_leaves(index, settings: dict[str, dict], families: dict[str, list[str]], where: str) -> None:
    """A task and a group holding it (or two groups sharing a task) cannot share a family: one simple_evaluate
    call runs each lm-eval task once."""
    for family, members in families.items():
        _refuse_shared_task(settings, members, index, f"{where}: evaluation.families.{family}")


def _check_lm_eval_task(index, name: str, s: dict, include: bool) -> None:
    run = lm_eval_name(name, s)
    facts = index.get(run)
    if facts is None:
        near = difflib.get_close_matches(run, index.names(), n=3, cutoff=0.6)
        where = "lm-eval's tasks and groups" + (" and evaluation.include_path" if include else "")
        hint = f"; closest lm-eval names: {', '.join(near)}" if near else ""
        raise ConfigError(f": '{run}' is neither a forgetbench catalogue task ({', '.join(OFFLINE)}) nor in "
                          f"{where}{hint}")
    if facts["kind"] == "tag":
        raise ConfigError(f": '{run}' is an lm-eval tag of {len(facts['members'])} tasks "
                          f"({', '.join(facts['members'][:6])}{', ...' if len(facts['members']) > 6 else ''}), which "
                          f"lm-eval scores one by one: name a task or a group")
    if facts["kind"] == "group":
        if not facts["aggregates"]:
            raise ConfigError(f": lm-eval group '{run}' has no aggregate_metric_list, so lm-eval reports no score for "
                              f"it: name its tasks")
        metrics = {a["metric"]: a["filters"] for a in facts["aggregates"]}
    else:
        metrics = None if facts["metrics"] is None else {m: facts["filters"] for m in facts["metrics"]}
    if metrics is not None and "metric" in s and s["metric"] not in metrics:
        raise ConfigError(f".metric: '{s['metric']}' is not a metric of lm-eval {facts['kind']} '{run}'; it has: "
                          f"{', '.join(metrics)}")
    if metrics is not None and "filter" in s:
        filters = metrics.get(s.get("metric"), next(iter(metrics.values()), []))
        if s["filter"] not in filters:
            raise ConfigError(f".filter: '{s['filter']}' is not a filter of lm-eval {facts['kind']} '{run}'; it has: "
                              f"{', '.join(filters)}")
    if offline_env():
        for leaf, leaf_facts in index.leaves(run):
            path, config_name = leaf_facts.get("dataset_path"), leaf_facts.get("dataset_name")
            if leaf_facts.get("hub") and path and not dataset_cached(path):
                leaf_text = f"lm-eval task '{leaf}'" + (f" (of group '{run}')" if leaf != run else "")
                raise ConfigError(
                    f": {leaf_text} loads hub dataset '{path}'" + (f" (config '{config_name}')" if config_name else "")
                    + f", which is not in the local cache, and HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set: download "
                    f"it once with network access, {download_command(path, config_name)}, or drop the task")


