"""The hub datasets a sweep reads, checked at parse time while the hub may be used (HF_HUB_OFFLINE unset): each
is in the local cache or answers a bounded lookup. Without this, an unreachable hub surfaces in prepare_domain, or
in the evaluations after hours of training. With HF_HUB_OFFLINE set the offline checks (config.inputs,
config.tasks) name the uncached datasets instead, and no lookup is made.
"""

from __future__ import annotations

from functools import lru_cache

from forgetbench.data.sources import hub_dataset_ids
from forgetbench.errors import ConfigError
from forgetbench.evaluation.tasks import HUB, base_name, config_key, config_tasks, download_command
from forgetbench.hub_cache import dataset_cached, offline_env

LOOKUP_TIMEOUT_S = 5.0  # per dataset, uncached ones only: a dry run waits at most this long for each


def used_hub_datasets(config: dict) -> list[tuple[str, str]]:
    """(config key, hub dataset id) of the domain's hub data and of every catalogue task set to `source: hub`."""
    used = [("domain", hub_id) for hub_id in hub_dataset_ids(config["domain"])]
    for name, settings in config_tasks(config["evaluation"], config["domain"]).items():
        if (settings or {}).get("source") == "hub" and base_name(name) in HUB:
            used.append((config_key(name), HUB[base_name(name)][1]))
    return used


@lru_cache(maxsize=None)
def lookup_problem(dataset: str) -> str | None:
    """Why the hub cannot give `dataset` now, or None when it answers (one metadata request, bounded)."""
    from huggingface_hub import HfApi  # here: only a dataset outside the cache is looked up
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi().dataset_info(dataset, timeout=LOOKUP_TIMEOUT_S)
    except RepositoryNotFoundError:
        return "does not exist on the hub (or is private: log in with `huggingface-cli login`)"
    except Exception as exc:  # connection refused, DNS, timeout, proxy: the hub cannot be reached
        return (f"is not in the local cache and the hub does not answer ({type(exc).__name__}, "
                f"looked up for at most {LOOKUP_TIMEOUT_S:g} s)")
    return None


def check_hub_datasets(config: dict, where: str) -> None:
    """Refuse a hub dataset that is neither cached nor reachable, naming the key that reads it."""
    if offline_env():
        return
    for key, dataset in used_hub_datasets(config):
        if dataset_cached(dataset):
            continue
        problem = lookup_problem(dataset)
        if problem:
            raise ConfigError(f"{where}: {key}: hub dataset '{dataset}' {problem}: the jobs that read it would fail "
                              f"after the others ran; download it once with network access "
                              f"({download_command(dataset)}), or drop it")
