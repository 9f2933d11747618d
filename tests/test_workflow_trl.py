"""End to end on the CPU, the field's own data and benchmarks: a domain in TRL's formats (a multi-turn
`messages` dataset, a `text` corpus), a user's lm-eval task YAML over a local JSON file used both as the domain
score (`domain.eval`) and as a general task (`evaluation.include_path`), and LoRA at two ranks in one sweep."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from conftest import REPO
from test_lm_eval_tasks import write_user_tasks
from test_workflow import snakemake

TRAINING = {"max_steps": 2, "batch_size": 2, "max_seq_len": 128, "logging_steps": 1}


def turns(*pairs):
    return [{"role": role, "content": content} for role, content in pairs]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def chats(first: int, n: int) -> list[dict]:
    """Conversations with a system turn and two exchanges: every assistant turn is trained."""
    return [{"messages": turns(("system", "Answer in one word."), ("user", f"What comes after {i}?"),
                               ("assistant", f"{i + 1}."), ("user", "And before it?"), ("assistant", f"{i - 1}."))}
            for i in range(first, first + n)]


def run(folder, config: dict):
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake("--cores", "2", "--snakefile", str(REPO / "Snakefile"), f"--configfile={path}",
                       "--directory", str(folder))
    assert result.returncode == 0, result.stderr[-5000:]
    return folder / "results" / config["experiment"]


@pytest.fixture(scope="module")
def messages_run(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("trl-messages")
    tasks = write_user_tasks(folder / "tasks")
    config = {
        "experiment": "chats",
        "models": {"tiny": {"source": "local", "path": str(tiny_model_dir)}},
        "domain": {"name": "counting", "source": "local", "format": "messages",
                   "path": str(write_jsonl(folder / "train.jsonl", chats(10, 8))),
                   "test_path": str(write_jsonl(folder / "test.jsonl", chats(50, 4))),
                   "eval": {"fbt_mc": {}}},
        "methods": {"sft": {}, "lora-r2": {"method": "lora", "r": 2, "alpha": 4},
                    "lora-r4": {"method": "lora", "r": 4, "alpha": 8}},
        "learning_rates": [1e-3],
        "training": TRAINING,
        "evaluation": {"batch_size": 4, "include_path": str(tasks), "general": {"fbt_mc": {}, "fbt_gen": {}},
                       "forgetting": {"limit": 2},
                       "families": {"all": ["fbt_gen", "domain_loss", "general_text"]}},
        "resources": {"train_threads": 1, "eval_threads": 1},
    }
    return run(folder, config)


def test_a_messages_domain_scored_by_a_user_lm_eval_task(messages_run):
    results = messages_run
    tidy = pd.read_csv(results / "tables" / "tradeoff.csv")
    assert sorted(tidy["method"]) == ["base", "lora-r2", "lora-r4", "sft"]
    for _, row in tidy.iterrows():
        cell = "base" if row["method"] == "base" else f"{row['method']}/lr~0.001/seed~0"
        metrics = json.loads((results / "tiny" / cell / "eval" / "metrics.json").read_text())["metrics"]
        # the domain score is the user's task run as the domain's; the same task is also a general one
        assert row["domain"] == pytest.approx(metrics["domain.fbt_mc"]["score"])
        assert row["fbt_mc"] == pytest.approx(metrics["fbt_mc"]["score"])
        assert row["n_domain"] == 12 and row["n_fbt_mc"] == 12 and row["n_fbt_gen"] == 6
        assert "domain" not in metrics  # no answers to extract from conversations
        items = [json.loads(line) for line in (results / "tiny" / cell / "eval" / "items.jsonl").read_text().splitlines()]
        own = [i["value"] for i in items if i["task"] == "domain.fbt_mc"]
        assert len(own) == 12 and sum(own) / 12 == pytest.approx(row["domain"])
    markdown = (results / "tables" / "tradeoff.md").read_text()
    assert "Domain (n=12)" in markdown and "fbt_mc (n=12)" in markdown and "fbt_gen (n=6†)" in markdown
    assert "Domain: the primary score of lm-eval task fbt_mc." in markdown
    sft = tidy[tidy["method"] == "sft"].iloc[0]
    assert sft["delta_domain_lo"] <= sft["delta_domain"] <= sft["delta_domain_hi"]
    # every assistant turn of the 8 conversations trained; the domain loss scores the 4 held-out last turns
    run_json = json.loads((results / "tiny" / "sft" / "lr~0.001" / "seed~0" / "run.json").read_text())
    assert run_json["windows"] == 8 and run_json["truncated_responses"] == 0
    assert tidy["n_domain_loss"].iloc[0] == 4
    lora = json.loads((results / "tiny" / "lora-r4" / "lr~0.001" / "seed~0" / "run.json").read_text())
    assert lora["config"]["registry_name"] == "lora" and lora["config"]["hparams"]["r"] == 4


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("trl-text")
    tasks = write_user_tasks(folder / "tasks")
    documents = [{"id": f"doc{i}", "text": f"Report {i}. " + "The river rose and the town moved uphill. " * (2 + 12 * (i % 2))}
                 for i in range(10)]
    config = {
        "experiment": "corpus",
        "models": {"tiny": {"source": "local", "path": str(tiny_model_dir), "chat_template": "none"}},
        "domain": {"name": "reports", "source": "local", "format": "text",
                   "path": str(write_jsonl(folder / "docs.jsonl", documents)), "test_fraction": 0.2},
        "methods": {"sft": {}},
        "learning_rates": [1e-3],
        "training": TRAINING,
        "evaluation": {"batch_size": 4, "include_path": str(tasks), "general": {"fbt_mc": {}},
                       "forgetting": {"limit": 2}, "families": {"all": ["fbt_mc", "domain_loss", "general_text"]}},
        "resources": {"train_threads": 1, "eval_threads": 1},
    }
    return run(folder, config)


def test_a_text_domain_is_measured_by_its_loss(text_run):
    results = text_run
    tidy = pd.read_csv(results / "tables" / "tradeoff.csv")
    assert "domain" not in tidy.columns and tidy["domain_loss"].notna().all()
    markdown = (results / "tables" / "tradeoff.md").read_text()
    assert "| Domain (" not in markdown and "Domain loss (n=2†)" in markdown
    assert "the domain is measured by its loss only" in markdown
    run_json = json.loads((results / "tiny" / "sft" / "lr~0.001" / "seed~0" / "run.json").read_text())
    # the 8 training documents: the long ones (about 150 tokens) each split into two windows of max_seq_len 128
    train = [json.loads(line) for line in (results / "data" / "reports" / "train.jsonl").read_text().splitlines()]
    long = sum(doc["text"].count("river") > 2 for doc in train)
    assert len(train) == 8 and 0 < long < 8
    assert run_json["split_documents"] == long and run_json["windows"] == 8 + long
    assert (results / "figures" / "tradeoff.png").stat().st_size > 0
