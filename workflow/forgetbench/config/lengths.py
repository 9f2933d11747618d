"""The lengths check at parse time: `training.max_seq_len` against the training data and the domain's
`max_gen_toks` against its test references, for every model whose tokenizer is already on disk.

The same encoding as training (forgetbench.training.tokenize.encode_records) counts the responses that
max_seq_len cuts; above training.max_truncated_share the config is refused naming the key, before any job.
A model's tokenizer is at hand for a local model, a hub model in the local cache, and any model once
prepare_model has written it (results/<experiment>/<model>/base/model); a GGUF package's tokenizer exists
only after that job, so on a first run score_base makes the same check, still before any training.

Each count is stored under .snakemake/forgetbench/lengths/, keyed by the size and modification time of the
tokenizer and data files and by the settings that change the count: a warm dry run reads one small JSON file
per model and imports neither transformers nor the data's libraries.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path

from forgetbench.atomic import write_json
from forgetbench.data.formats import has_answers
from forgetbench.data.sources import hub_dataset_ids, load_domain
from forgetbench.errors import ConfigError
from forgetbench.evaluation.tasks import DOMAIN_MAX_GEN_TOKS, config_tasks
from forgetbench.hub_cache import dataset_cached
from forgetbench.training.tokenize import (DEFAULT_MAX_TRUNCATED_SHARE, encode_records, truncation_refusal,
                                           uses_chat_template)

CACHE_DIR = Path(".snakemake") / "forgetbench" / "lengths"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "tokenizer.model", "vocab.json", "merges.txt")
# The code whose change changes a count.
CODE = [Path(__file__)] + [Path(__file__).parent / p for p in (
    "training/tokenize.py", "evaluation/runner.py", "data/prompts.py", "data/sources.py", "data/records.py",
    "data/medcalc_synth.py")]


def tokenizer_dir(cfg: dict, prepared_dir: Path) -> Path | None:
    """Where a model's tokenizer is on disk before any job, or None (a GGUF package not yet prepared, a hub
    model not in the cache)."""
    if (prepared_dir / "tokenizer_config.json").is_file():
        return prepared_dir
    if cfg["source"] == "local" and (Path(cfg["path"]) / "tokenizer_config.json").is_file():
        return Path(cfg["path"])
    if cfg["source"] == "hub":
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(cfg["id"], "tokenizer_config.json", revision=cfg.get("revision", "main"))
        if isinstance(cached, str) and (Path(cached).parent / "tokenizer.json").exists():
            return Path(cached).parent
    return None


def file_stamp(path: Path) -> list:
    """What identifies a file's content without reading it, for the parse-time caches' keys: resolved path, size
    and modification time (the path and None where it cannot be read)."""
    try:
        st = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _data_fingerprint(domain: dict) -> list | None:
    """What identifies the domain's records without reading them, or None where that is unknown."""
    source = domain["source"]
    if source == "local":
        return [file_stamp(Path(domain[k])) for k in ("path", "test_path") if domain.get(k)]
    if source == "medcalc_synth":
        return ["medcalc-bench", importlib.metadata.version("medcalc-bench")]
    if source == "hub":
        ids = hub_dataset_ids(domain)
        return ids if ids and all(dataset_cached(i) for i in ids) else None
    return None


def count_lengths(tok_dir: Path, domain: dict, max_len: int, chat_template: str, max_gen_toks: int | None,
                  eval_limit, eval_seed: int) -> dict | None:
    """Tokenize the domain's records as training and evaluation do: the cut training responses and the
    evaluated test references longer than max_gen_toks; None where the records themselves are bad."""
    # Job-time modules, imported only where no stored count exists: transformers, and the evaluation runner
    # (lm-eval); a warm dry run imports neither.
    from transformers import AutoTokenizer

    from forgetbench.evaluation.runner import references_beyond_max_gen_toks

    try:
        train, test = load_domain(domain)
    except ConfigError:
        return None  # a problem in the records themselves: prepare_domain reports it, naming the record
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    chat = uses_chat_template(tokenizer, chat_template)
    fmt = domain.get("format", "label")
    encoded = encode_records(tokenizer, train, fmt, max_len, chat, domain.get("assistant_turns", "all"))
    out = {"records": encoded.records, "truncated": len(encoded.truncated), "longest": encoded.longest,
           "summary": encoded.summary()}
    if max_gen_toks and has_answers(fmt):  # generated answers exist for the QA formats only
        out["gen"] = references_beyond_max_gen_toks(tokenizer, test, fmt, eval_limit, eval_seed, max_gen_toks)
    return out


def _domain_max_gen_toks(config: dict) -> int | None:
    tasks = config_tasks(config["evaluation"], config["domain"])
    if "domain" not in tasks:
        return None
    settings = tasks["domain"] or {}
    return settings.get("max_gen_toks") or DOMAIN_MAX_GEN_TOKS.get(config["domain"].get("format", "label"))


def check_lengths(config: dict, where: str, results_dir: str | Path, cache_dir: Path = CACHE_DIR) -> None:
    domain, training = config["domain"], config["training"]
    tokenizers = {name: tokenizer_dir(cfg, Path(results_dir) / name / "base" / "model")
                  for name, cfg in config["models"].items()}
    if not any(tokenizers.values()):
        return
    data = _data_fingerprint(domain)  # after: a hub source's cache lookup imports datasets
    if data is None:
        return
    max_gen_toks = _domain_max_gen_toks(config)
    eval_domain = (config["evaluation"].get("domain") or {})
    code = [file_stamp(p) for p in CODE]
    for name, cfg in config["models"].items():
        tok_dir = tokenizers[name]
        if tok_dir is None:
            continue
        settings = {"domain": domain, "max_len": training["max_seq_len"], "chat": cfg.get("chat_template", "auto"),
                    "max_gen_toks": max_gen_toks, "limit": eval_domain.get("limit"),
                    "seed": config["evaluation"].get("seed", 0)}
        key = hashlib.sha256(json.dumps([data, code, [file_stamp(tok_dir / f) for f in TOKENIZER_FILES], settings],
                                        sort_keys=True, default=str).encode()).hexdigest()[:24]
        cached = cache_dir / f"{key}.json"
        if cached.is_file():
            counts = json.loads(cached.read_text())
        else:
            counts = count_lengths(tok_dir, domain, settings["max_len"], settings["chat"], max_gen_toks,
                                   settings["limit"], settings["seed"])
            if counts is None:
                return
            write_json(cached, counts)
        gen = counts.get("gen")
        if gen and gen["items"]:
            print(f"warning: {where}: evaluation.domain.max_gen_toks: {gen['items']} of {gen['of']} domain test "
                  f"references are longer than {max_gen_toks} tokens with models.{name}'s tokenizer (the longest "
                  f"has {gen['longest_tokens']}): a model answering like its training targets is cut off before the "
                  f"answer there; raise evaluation.domain.max_gen_toks to {gen['longest_tokens']}", file=sys.stderr)
        share = counts["truncated"] / counts["records"] if counts["records"] else 0.0
        limit = training.get("max_truncated_share", DEFAULT_MAX_TRUNCATED_SHARE)
        if share > limit:
            raise ConfigError(f"{where}: training.max_seq_len: with models.{name}'s tokenizer "
                              f"{truncation_refusal(counts['summary'], counts['longest'], limit)}")
