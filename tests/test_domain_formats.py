"""TRL's dataset formats as domain data (messages, prompt_completion, text): the loss masks on a real tokenizer
with and without a chat template, the same rendering at training and at the domain-loss evaluation, the sources,
every refusal with its text, and a few training steps."""

from __future__ import annotations

import copy
import importlib.util
import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from transformers import AutoTokenizer

from conftest import REPO
from forgetbench.atomic import write_jsonl
from forgetbench.data.records import make_record
from forgetbench.data.sources import load_domain, write_domain
from forgetbench.errors import ConfigError
from forgetbench.training.tokenize import (
    IGNORE_INDEX, encode_example, encode_records, last_turn, uses_chat_template,
)

HUB_ROWS = json.loads((REPO / "tests" / "fixtures" / "hub" / "trl_rows.json").read_text())
SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


def msgs(*turns):
    """Messages from (role, content) pairs."""
    return [{"role": role, "content": content} for role, content in turns]


CHAT = {"id": "c1", "source": "toy", "messages": msgs(
    ("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"), ("user", "2+2?"), ("assistant", "4"))}


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def spans(tok, example) -> list[str]:
    """The decoded runs of labelled tokens, in order."""
    out, run = [], []
    for token, label in zip(example["input_ids"], example["labels"]):
        if label != IGNORE_INDEX:
            assert label == token
            run.append(token)
        elif run:
            out.append(tok.decode(run))
            run = []
    return out + ([tok.decode(run)] if run else [])


def one(tok, record, fmt, chat, turns="all", max_len=512):
    encoded = encode_records(tok, [record], fmt, max_len, chat, turns)
    [example] = encoded.examples
    return example


# ------------------------------------------------------------------------------------ loss masks


def test_messages_with_the_chat_template_train_every_assistant_turn(tok):
    example = one(tok, CHAT, "messages", chat=True)
    # the newline that ends each generation prompt is the turn's: lm-eval scores it as the continuation's
    assert spans(tok, example) == ["\nHello<|im_end|>\n", "\n4<|im_end|>\n"]
    assert tok.decode(example["input_ids"]) == tok.apply_chat_template(CHAT["messages"], tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello"
        "<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n")


def test_messages_assistant_turns_last_trains_the_last_turn_only(tok):
    example = one(tok, CHAT, "messages", chat=True, turns="last")
    assert spans(tok, example) == ["\n4<|im_end|>\n"]
    assert example["input_ids"] == one(tok, CHAT, "messages", chat=True)["input_ids"]


def test_messages_without_a_chat_template_use_the_plain_rendering(tok, tiny_model_dir, tmp_path):
    bare = tmp_path / "bare"
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(bare)
    (bare / "chat_template.jinja").unlink()
    assert not uses_chat_template(AutoTokenizer.from_pretrained(bare))
    example = one(tok, CHAT, "messages", chat=False)
    assert tok.decode(example["input_ids"]) == (
        "Be brief.\n\nUser:\nHi\n\nAssistant:\nHello\n\nUser:\n2+2?\n\nAssistant:\n4<|im_end|>")
    assert spans(tok, example) == ["\nHello", "\n4<|im_end|>"]
    assert example["input_ids"][-1] == tok.eos_token_id
    assert spans(tok, one(tok, CHAT, "messages", chat=False, turns="last")) == ["\n4<|im_end|>"]


def test_string_prompt_completion_is_plain_concatenation_even_for_a_chat_model(tok):
    record = {"id": "p1", "source": "toy", "prompt": "Q: 2+2?\nA:", "completion": " 4"}
    example = one(tok, record, "prompt_completion", chat=True)
    assert tok.decode(example["input_ids"]) == "Q: 2+2?\nA: 4<|im_end|>"
    assert spans(tok, example) == [" 4<|im_end|>"]
    # a prompt that ends in whitespace gives it to the completion, where lm-eval scores it
    spaced = one(tok, {**record, "prompt": "Q: 2+2?\nA: ", "completion": "4"}, "prompt_completion", chat=True)
    assert spaced["input_ids"] == example["input_ids"] and spans(tok, spaced) == [" 4<|im_end|>"]


def test_conversational_prompt_completion_trains_the_completion(tok):
    record = {"id": "p2", "source": "toy", "prompt": msgs(("user", "Hi"), ("assistant", "Hello"), ("user", "2+2?")),
              "completion": msgs(("assistant", "4"))}
    example = one(tok, record, "prompt_completion", chat=True)
    assert spans(tok, example) == ["\n4<|im_end|>\n"]
    assert tok.decode(example["input_ids"]).startswith(SYSTEM + "<|im_start|>user\nHi<|im_end|>\n")
    assert spans(tok, one(tok, record, "prompt_completion", chat=False)) == ["\n4<|im_end|>"]


def test_text_trains_every_token_and_chunks_long_documents_per_document(tok):
    short = {"id": "d1", "source": "toy", "text": "A short note."}
    long = {"id": "d2", "source": "toy", "text": "word " * 50}
    tokens = tok(long["text"])["input_ids"] + [tok.eos_token_id]
    assert len(tokens) == 52
    encoded = encode_records(tok, [short, long], "text", 16, chat=True)
    assert encoded.ids == ["d1#0", "d2#0", "d2#1", "d2#2", "d2#3"]
    assert (encoded.split_documents, encoded.windows, encoded.records, encoded.truncated) == (1, 5, 2, [])
    assert encoded.summary() == ("1 of 2 documents are longer than max_seq_len 16 (the longest has 52 tokens) and were "
                                 "split: 5 windows in all, per document (no packing across documents)")
    first, *windows = encoded.examples
    assert first["labels"] == first["input_ids"] and tok.decode(first["input_ids"]) == "A short note.<|im_end|>"
    assert [len(w["input_ids"]) for w in windows] == [16, 16, 16, 7]
    assert all(w["labels"] == w["input_ids"] for w in windows)
    # consecutive windows sharing one token: every token but the first is predicted exactly once
    assert windows[0]["input_ids"] + [t for w in windows[1:] for t in w["input_ids"][1:]] == tokens
    encoded.check(0.0, "train.jsonl")  # nothing is cut: the truncation refusal does not apply


def test_cot_and_label_encode_as_before(tok):
    records = [make_record(f"r{i}", f"What is {i} plus 1?", str(i + 1), rationale=f"{i} + 1 = {i + 1}.")
               for i in range(3)]
    for fmt in ("cot", "label"):
        for chat in (True, False):
            encoded = encode_records(tok, records, fmt, 512, chat)
            assert encoded.examples == [encode_example(tok, r, fmt, 512, chat) for r in records]
            assert encoded.summary() == "0 of 3 responses (0.0 %) do not fit whole in max_seq_len 512 (the longest " \
                                        f"example has {encoded.longest} tokens)"


def test_cut_conversations_are_counted_like_cut_responses(tok):
    """Trained tokens at 17-20 and 33-36 of 37: max_len 30 cuts the second turn, 17 leaves none."""
    encoded = encode_records(tok, [CHAT], "messages", 30, chat=True)
    assert (len(encoded.truncated), encoded.dropped, encoded.longest) == (1, 0, 37)
    assert spans(tok, encoded.examples[0]) == ["\nHello<|im_end|>\n"]
    assert (encode_records(tok, [CHAT], "messages", 17, chat=True).dropped,
            encode_records(tok, [CHAT], "messages", 18, chat=True).dropped) == (1, 0)
    with pytest.raises(ConfigError) as error:
        encoded.check(0.01, "t.jsonl")
    assert str(error.value) == ("t.jsonl: 1 of 1 responses (100.0 %) do not fit whole in max_seq_len 30 (the longest "
                                "example has 37 tokens), above training.max_truncated_share 0.01: raise "
                                "training.max_seq_len to 37 or raise training.max_truncated_share")


def test_a_template_that_raises_is_one_line_naming_the_record(tok):
    strict = copy.deepcopy(tok)
    strict.chat_template = "{{ raise_exception('Conversation roles must alternate\nuser/assistant') }}"
    with pytest.raises(ConfigError) as error:
        encode_records(strict, [CHAT], "messages", 512, chat=True)
    assert str(error.value) == ("record 'c1': the chat template rejects the conversation (TemplateError: Conversation "
                                "roles must alternate user/assistant)")


def test_a_template_that_does_not_render_a_prefix_is_refused(tok):
    odd = copy.deepcopy(tok)
    odd.chat_template = "{% for m in messages %}{{ m['content'] }}|{% endfor %}{% if add_generation_prompt %}>>{% endif %}"
    with pytest.raises(ConfigError) as error:
        encode_records(odd, [CHAT], "messages", 512, chat=True)
    assert str(error.value) == ("record 'c1': the chat template does not render the conversation as a prefix of its "
                                "continuation (turn 2): its assistant turns cannot be masked exactly")


# ------------------------------------------------------------------ training = evaluation rendering


def _loaders():
    spec = importlib.util.spec_from_file_location("_fmt_fb_loaders", REPO / "workflow" / "tasks" / "fb_loaders.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loss_docs(tmp_path, tiny_model_dir, records, fmt, chat, **settings):
    path = tmp_path / f"{fmt}.jsonl"
    write_jsonl(path, records)
    ds = _loaders().domain_loss(forgetbench={"domain_loss": {
        "path": str(path), "format": fmt, "tokenizer": str(tiny_model_dir), "chat": chat, **settings}})
    return list(ds["test"])


@pytest.mark.parametrize("chat", [True, False])
def test_domain_loss_renders_the_last_turn_as_training_does(tok, tiny_model_dir, tmp_path, chat):
    [doc] = loss_docs(tmp_path, tiny_model_dir, [CHAT], "messages", chat)
    example = one(tok, CHAT, "messages", chat, turns="last")
    assert doc["prompt_text"] + doc["response"] == tok.decode(example["input_ids"])
    # the context's trailing newline is the continuation's, as lm-eval scores it and training trains it
    assert doc["response"] == ("\n4<|im_end|>\n" if chat else "\n4<|im_end|>")
    assert doc["response"] == spans(tok, example)[-1]
    assert doc["n_tokens"] == len(tok(doc["response"], add_special_tokens=False)["input_ids"]) == (4 if chat else 3)
    assert last_turn(tok, CHAT, "messages", chat)[1] == spans(tok, example)[-1]


def test_domain_loss_of_prompt_completion_and_text(tok, tiny_model_dir, tmp_path):
    pc = {"id": "p1", "source": "toy", "prompt": "Q: 2+2?\nA:", "completion": " 4"}
    [doc] = loss_docs(tmp_path, tiny_model_dir, [pc], "prompt_completion", True)
    assert (doc["prompt_text"], doc["response"], doc["n_tokens"]) == ("Q: 2+2?\nA:", " 4<|im_end|>", 3)
    docs = loss_docs(tmp_path, tiny_model_dir, [{"id": "d1", "source": "toy", "text": "A short note."},
                                                {"id": "d2", "source": "toy", "text": "word " * 50}], "text", True,
                     max_seq_len=16)
    assert [(d["prompt_text"], d["response"]) for d in docs] == [("", "A short note.<|im_end|>"),
                                                               ("", "word " * 15 + "word")]
    first_window = encode_records(tok, [{"id": "d2", "text": "word " * 50}], "text", 16, True).examples[0]
    assert tok(docs[1]["response"], add_special_tokens=False)["input_ids"] == first_window["input_ids"]
    with pytest.raises(ConfigError, match=r"^task 'domain_loss': format 'text' needs max_seq_len"):
        loss_docs(tmp_path, tiny_model_dir, [{"id": "d1", "source": "toy", "text": "x"}], "text", True)


def test_the_domain_task_refuses_a_format_without_answers(tmp_path):
    path = tmp_path / "test.jsonl"
    write_jsonl(path, [CHAT])
    with pytest.raises(ConfigError) as error:
        _loaders().domain(forgetbench={"domain": {"path": str(path), "format": "messages"}})
    assert str(error.value) == ("task 'domain': domain.format 'messages' carries no answers to score: the domain task "
                                "needs format cot or label (score a TRL format with domain_loss or domain.eval)")


# ----------------------------------------------------------------------------------------- sources


def test_local_messages_with_fields_json_array_and_fraction_split(tmp_path):
    (tmp_path / "chats.json").write_text(json.dumps(HUB_ROWS))
    cfg = {"name": "chat", "source": "local", "format": "messages", "path": "chats.json", "test_fraction": 0.34,
           "fields": {"id": "uid", "messages": "conversation"}}
    train, test = load_domain(cfg, tmp_path)
    assert sorted(r["id"] for r in train + test) == [f"chat-{i}" for i in range(1, 7)]
    assert len(test) == 2
    assert train[0] == {"id": train[0]["id"], "messages": train[0]["messages"], "source": "chat"}
    first = next(r for r in train + test if r["id"] == "chat-1")
    assert first["messages"] == HUB_ROWS[0]["conversation"]


def test_local_prompt_completion_parquet_and_text_jsonl_with_test_paths(tmp_path):
    rows = [{"prompt": f"Q{i}:", "completion": f" A{i}", "extra": 1} for i in range(3)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    write_jsonl(tmp_path / "test.jsonl", [{"prompt": "Q9:", "completion": " A9"}])
    train, test = load_domain({"name": "pc", "source": "local", "format": "prompt_completion",
                               "path": "train.parquet", "test_path": "test.jsonl"}, tmp_path)
    assert train[1] == {"id": "pc-train-000001", "prompt": "Q1:", "completion": " A1", "source": "pc"}
    assert test == [{"id": "pc-test-000000", "prompt": "Q9:", "completion": " A9", "source": "pc"}]
    write_jsonl(tmp_path / "docs.jsonl", [{"id": f"doc{i}", "body": f"Document number {i}."} for i in range(4)])
    train, test = load_domain({"name": "cpt", "source": "local", "format": "text", "path": "docs.jsonl",
                               "fields": {"text": "body"}, "test_fraction": 0.25, "seed": 1}, tmp_path)
    assert len(train) == 3 and len(test) == 1 and set(test[0]) == {"id", "text", "source"}


def test_a_test_conversation_that_repeats_a_training_one_is_refused(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"id": "a", "messages": msgs(("user", "Hi"), ("assistant", "Hello"))}])
    write_jsonl(tmp_path / "test.jsonl", [{"id": "b", "messages": msgs(("user", " hi "), ("assistant", "Hey"))}])
    with pytest.raises(ConfigError) as error:
        load_domain({"name": "c", "source": "local", "format": "messages", "path": "train.jsonl",
                     "test_path": "test.jsonl"}, tmp_path)
    assert str(error.value) == (f"domain 'c' (train {tmp_path / 'train.jsonl'}, test {tmp_path / 'test.jsonl'}): 1 test "
                                f"record(s) share a prompt with the training set (e.g. test id 'b' = train id 'a')")


@pytest.fixture
def fake_hub(monkeypatch):
    calls = []
    tables = {"train": HUB_ROWS[:4], "validation": HUB_ROWS[4:]}

    def load_dataset(path, name=None, split=None, **kw):
        calls.append((path, name, split))
        return datasets.Dataset.from_list(tables[split])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_reads_any_dataset_for_a_trl_format(fake_hub, tmp_path):
    cfg = {"name": "chat", "source": "hub", "format": "messages", "hub_id": "my-org/chats", "config": "en",
           "test_split": "validation", "fields": {"id": "uid", "messages": "conversation"}}
    train, test = load_domain(cfg)
    assert fake_hub == [("my-org/chats", "en", "train"), ("my-org/chats", "en", "validation")]
    assert [r["id"] for r in train] == ["chat-1", "chat-2", "chat-3", "chat-4"]
    assert [r["id"] for r in test] == ["chat-5", "chat-6"]
    assert train[0]["messages"] == HUB_ROWS[0]["conversation"]
    write_domain(cfg, tmp_path / "train.jsonl", tmp_path / "test.jsonl")
    assert json.loads((tmp_path / "test.jsonl").read_text().splitlines()[1]) == {
        "id": "chat-6", "messages": HUB_ROWS[5]["conversation"], "source": "chat"}


def test_a_bad_hub_row_names_the_dataset_split_and_row(fake_hub, monkeypatch):
    rows = copy.deepcopy(HUB_ROWS[:4])
    rows[2]["conversation"][1]["role"] = "tool"
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name=None, split=None, **kw: datasets.Dataset.from_list(rows))
    with pytest.raises(ConfigError) as error:
        load_domain({"name": "chat", "source": "hub", "format": "messages", "hub_id": "my-org/chats",
                     "fields": {"id": "uid", "messages": "conversation"}})
    assert str(error.value) == ("hub dataset 'my-org/chats' split 'train': row 2 (id 'chat-3'): 'messages[1].role' "
                                "'tool' is not one of system, user, assistant")


GOOD = {"messages": msgs(("user", "Hi"), ("assistant", "Hello"))}
BAD_ROWS = {
    "role outside system/user/assistant": (
        "messages", {"messages": msgs(("user", "Hi"), ("tool", "x"))},
        "row 1 (id 'bad-train-000001'): 'messages[1].role' 'tool' is not one of system, user, assistant"),
    "no assistant turn": (
        "messages", {"messages": msgs(("system", "S"), ("user", "Hi"))},
        "row 1 (id 'bad-train-000001'): 'messages' has no assistant turn"),
    "empty content": (
        "messages", {"messages": msgs(("user", "Hi"), ("assistant", "  "))},
        "row 1 (id 'bad-train-000001'): 'messages[1].content' is empty"),
    "system not first": (
        "messages", {"messages": msgs(("user", "Hi"), ("system", "S"), ("assistant", "Hello"))},
        "row 1 (id 'bad-train-000001'): 'messages[1]' is a system turn where an assistant turn belongs: after an "
        "optional system message first, turns alternate user, assistant, starting with user"),
    "two user turns": (
        "messages", {"messages": msgs(("user", "Hi"), ("user", "Hi again"), ("assistant", "Hello"))},
        "row 1 (id 'bad-train-000001'): 'messages[1]' is a user turn where an assistant turn belongs: after an "
        "optional system message first, turns alternate user, assistant, starting with user"),
    "starts with the assistant": (
        "messages", {"messages": msgs(("system", "S"), ("assistant", "Hello"))},
        "row 1 (id 'bad-train-000001'): 'messages[1]' is an assistant turn where a user turn belongs: after an "
        "optional system message first, turns alternate user, assistant, starting with user"),
    "ends with a user turn": (
        "messages", {"messages": msgs(("user", "Hi"), ("assistant", "Hello"), ("user", "Bye"))},
        "row 1 (id 'bad-train-000001'): 'messages' ends with a user turn: the conversation must end with an "
        "assistant turn"),
    "a row of another format": (
        "messages", {"text": "plain text"},
        "row 1: its fields (text) are format 'text', not domain.format 'messages': a dataset holds one format"),
    "QA rows for a TRL format": (
        "prompt_completion", {"prompt": "Q?", "answer": "1"},
        "row 0: its fields (answer, prompt) are format 'cot/label', not domain.format 'prompt_completion': a dataset "
        "holds one format"),
    "missing field": (
        "prompt_completion", {"prompt": "Q?"}, "row 0: missing field 'completion'"),
    "prompt and completion of two kinds": (
        "prompt_completion", {"prompt": "Q?", "completion": msgs(("assistant", "A"))},
        "row 0 (id 'bad-train-000000'): 'prompt' and 'completion' must both be strings or both be lists of messages"),
    "empty text": (
        "text", {"text": ""}, "row 0 (id 'bad-train-000000'): 'text' is empty"),
}


@pytest.mark.parametrize("case", BAD_ROWS)
def test_bad_rows_are_refused_when_the_data_is_prepared(tmp_path, case):
    fmt, row, message = BAD_ROWS[case]
    rows = [GOOD, row] if fmt == "messages" else [row]
    write_jsonl(tmp_path / "train.jsonl", rows)
    prepared = tmp_path / "prepared"
    with pytest.raises(ConfigError) as error:
        write_domain({"name": "bad", "source": "local", "format": fmt, "path": "train.jsonl"},
                     prepared / "train.jsonl", prepared / "test.jsonl", base_dir=tmp_path)
    assert str(error.value) == f"{tmp_path / 'train.jsonl'}: {message}"
    assert not prepared.exists()


PARSE_TIME = {
    "assistant_turns with another format": (
        {"format": "label", "assistant_turns": "last"},
        "domain 'mine': domain.assistant_turns does not apply to source 'local'; keys there: answer_type, eval, fields, "
        "format, limit_test, limit_train, name, path, seed, source, test_fraction, test_path"),
    "assistant_turns value": (
        {"format": "messages", "assistant_turns": "first"},
        "domain 'mine': domain.assistant_turns 'first' is not one of all, last"),
    "fields key of another format": (
        {"format": "messages", "fields": {"prompt": "question"}},
        "domain 'mine': domain.fields.prompt is not a field of format 'messages'; fields: id, messages"),
    "answer_type with a TRL format": (
        {"format": "text", "answer_type": "label"},
        "domain 'mine': domain.answer_type does not apply to source 'local' with format 'text'; keys there: eval, "
        "fields, format, limit_test, limit_train, name, path, seed, source, test_fraction, test_path"),
    "misspelt key": (
        {"format": "messages", "assistant_turn": "last"},
        "domain 'mine': unknown key 'domain.assistant_turn' (did you mean 'assistant_turns'?)"),
    "generator source": (
        {"source": "medcalc_synth", "format": "messages", "n_train": 4, "n_test": 2},
        "domain 'mine': source 'medcalc_synth' makes short-answer QA records (format cot or label); format "
        "'messages' reads source local or hub"),
    "hub without hub_id": (
        {"source": "hub", "format": "text", "dataset": "esci"},
        "domain 'mine': domain.dataset does not apply to source 'hub' with format 'text'; keys there: config, eval, "
        "fields, format, hub_id, limit_test, limit_train, name, seed, source, split, test_fraction, test_split"),
    "hub dataset not cached while offline": (
        {"source": "hub", "format": "text", "hub_id": "nobody/no-such-corpus"},
        "domain: hub dataset 'nobody/no-such-corpus' is not in the local cache and HF_HUB_OFFLINE is set"),
}


def trl_config(domain: dict, models: dict | None = None) -> dict:
    """The default config with a TRL-format domain: no `domain` task (no answers to score), no scaling study."""
    from test_bad_inputs import DEFAULT

    config = copy.deepcopy(DEFAULT)
    config["domain"] = domain
    config["evaluation"].pop("domain")
    config["evaluation"]["families"]["all"].remove("domain")
    config.pop("scaling")
    if models:
        config["models"] = models
    return config


@pytest.fixture(scope="module")
def chats(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chats")
    write_jsonl(folder / "chats.jsonl", [{"messages": msgs(("user", f"What is {i} + 1?"), ("assistant", f"{i + 1}"),
                                                           ("user", "Sure?"), ("assistant", "Yes."))} for i in range(8)])
    (folder / "results").mkdir()
    return folder


@pytest.mark.parametrize("case", PARSE_TIME)
def test_parse_time_refusals_through_the_dry_run(chats, case):
    """The workflow checks the domain section when it parses the config: one line naming the file and the key."""
    from test_bad_inputs import refused

    change, message = PARSE_TIME[case]
    local = {"source": "local", "path": str(chats / "chats.jsonl")} if "source" not in change else {}
    output = refused(chats, yaml.safe_dump(trl_config({"name": "mine", **local, **change})), "bad.yaml")
    assert f"bad.yaml: {message}" in output, output[-3000:]


def test_a_messages_domain_passes_the_dry_run_and_its_lengths_are_checked(chats, tiny_model_dir):
    """With a tokenizer on disk the dry run encodes the conversations as training does: a max_seq_len that cuts
    them is refused before any job; the QA-only check of generation lengths is not run."""
    from test_bad_inputs import refused
    from test_workflow import snakemake

    domain = {"name": "mine", "source": "local", "format": "messages", "path": str(chats / "chats.jsonl"),
              "test_fraction": 0.25, "assistant_turns": "last"}
    config = trl_config(domain, {"tiny": {"source": "local", "path": str(tiny_model_dir)}})
    (chats / "ok.yaml").write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"), f"--configfile={chats / 'ok.yaml'}",
                       "--directory", str(chats))
    assert result.returncode == 0, result.stderr[-3000:]
    config["training"]["max_seq_len"] = 40
    output = refused(chats, yaml.safe_dump(config), "short.yaml")
    assert ("short.yaml: training.max_seq_len: with models.tiny's tokenizer 6 of 6 responses (100.0 %) do not fit "
            "whole in max_seq_len 40") in output, output[-3000:]


# ---------------------------------------------------------------------------------------- training


TRAINING = {"max_steps": 2, "epochs": 1, "batch_size": 2, "grad_accum": 1, "max_seq_len": 64,
            "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0,
            "logging_steps": 1, "precision": "fp32"}


@pytest.mark.parametrize("fmt, records, turns", [
    ("messages", [{"id": f"c{i}", "source": "toy", "messages": msgs(
        ("user", f"What is {i} + 1?"), ("assistant", f"{i + 1}"), ("user", "Times two?"), ("assistant", f"{2 * i + 2}"))}
        for i in range(4)], "last"),
    ("text", [{"id": f"d{i}", "source": "toy", "text": f"Document {i}: " + "the quick brown fox " * (3 + 16 * i)}
              for i in range(3)], None),
])
def test_a_few_training_steps_on_trl_data(tiny_model_dir, tmp_path, fmt, records, turns):
    from forgetbench.training.run import train_cell

    data = tmp_path / "train.jsonl"
    write_jsonl(data, records)
    domain = {"name": "toy", "format": fmt, **({"assistant_turns": turns} if turns else {})}
    cell = {"model": "tiny", "method": "sft", "hparams": {}, "lr": 1e-3, "seed": 0, "training": TRAINING,
            "domain": domain, "chat_template": "auto"}
    out = tmp_path / "sft"
    train_cell(str(tiny_model_dir), str(data), str(out / "model"), str(out / "log.jsonl"), str(out / "run.json"), cell)
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 2 and run["status"] == "finished"
    if fmt == "text":
        lengths = [len(encode_records(AutoTokenizer.from_pretrained(tiny_model_dir), [r], "text", 64, True).examples)
                   for r in records]
        assert (run["split_documents"], run["windows"], run["truncated_responses"]) == (
            sum(n > 1 for n in lengths), sum(lengths), 0)
        assert run["split_documents"] == 2 and run["windows"] == 1 + lengths[1] + lengths[2]
    else:
        assert (run["split_documents"], run["windows"], run["truncated_responses"]) == (0, 4, 0)


@pytest.mark.parametrize("chat", [True, False])
def test_the_domain_tasks_context_is_what_training_trains_after(tok, tiny_model_dir, tmp_path, chat):
    """cot/label: the domain task generates after its prompt (lm-eval applies the chat template's generation
    prompt) and the domain loss scores the response after it; training trains exactly the tokens that follow
    that context, the joining newline among them (trained as context, a base model stopped producing it)."""
    record = make_record("q1", "What is 2 plus 2?", "4", answer_type="integer")
    write_jsonl(tmp_path / "test.jsonl", [record])
    [gen] = list(_loaders().domain(forgetbench={"domain": {"path": str(tmp_path / "test.jsonl"),
                                                           "format": "label"}})["test"])
    context = gen["prompt_text"]
    if chat:
        context = tok.apply_chat_template([{"role": "user", "content": context}], tokenize=False,
                                          add_generation_prompt=True)
    example = encode_example(tok, record, "label", 512, chat)
    [trained] = spans(tok, example)
    assert trained == ("\nAnswer: 4<|im_end|>\n" if chat else "\nAnswer: 4<|im_end|>")
    assert tok.decode(example["input_ids"]) == context.rstrip() + trained
    [loss] = loss_docs(tmp_path, tiny_model_dir, [record], "label", chat)
    assert loss["n_tokens"] == len(tok("\nAnswer: 4", add_special_tokens=False)["input_ids"]) == 5


def test_lm_eval_scores_the_tokens_training_trains(tiny_model_dir, tok, tmp_path):
    """lm-eval, given the loader's docs without its own chat template, scores the last assistant turn's tokens
    as training tokenizes them (the newline lm-eval moves out of the context among them): the same
    log-likelihood."""
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM

    write_jsonl(tmp_path / "test.jsonl", [CHAT])
    settings = {"path": str(tmp_path / "test.jsonl"), "format": "messages", "tokenizer": str(tiny_model_dir),
                "chat": True, "limit": None, "seed": 0, "num_fewshot": 0}
    manager = TaskManager(include_path=str(REPO / "workflow" / "tasks"), include_defaults=False,
                          metadata={"forgetbench": {"domain_loss": settings}})
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={tiny_model_dir},device=cpu",
                                  tasks=["fb_domain_loss"], task_manager=manager, apply_chat_template=False,
                                  log_samples=True, batch_size=1)
    [sample] = out["samples"]["fb_domain_loss"]
    scored = sample["resps"][0][0][0]
    example = one(tok, CHAT, "messages", chat=True, turns="last")
    ids = torch.tensor([example["input_ids"]])
    first = next(t for t, label in enumerate(example["labels"]) if label != IGNORE_INDEX)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
    ours = sum(logprobs[t - 1, ids[0, t]].item() for t in range(first, ids.size(1)))
    assert ids.size(1) - first == 4 and tok.decode(ids[0, first:]) == "\n4<|im_end|>\n"
    assert scored == pytest.approx(ours, abs=1e-3)
    assert out["results"]["fb_domain_loss"]["nll_per_token,none"] == pytest.approx(-ours / 4, abs=1e-3)


def test_score_base_keys_text_windows_by_their_ids(tiny_model_dir, tmp_path):
    """θ₀'s per-sample losses (FLOW's weights) are keyed by the ids training gives its examples: `<id>#<k>`."""
    from forgetbench.analysis.base_scores import score_with_base

    data = tmp_path / "train.jsonl"
    write_jsonl(data, [{"id": "d1", "source": "toy", "text": "A short note."},
                       {"id": "d2", "source": "toy", "text": "word " * 50}])
    losses, stats = tmp_path / "losses.jsonl", tmp_path / "stats.json"
    score_with_base(str(tiny_model_dir), str(data), "text", 16, "auto", str(losses), str(stats))
    rows = [json.loads(line) for line in losses.read_text().splitlines()]
    assert [(r["id"], r["tokens"]) for r in rows] == [("d1#0", 4), ("d2#0", 15), ("d2#1", 15), ("d2#2", 15),
                                                      ("d2#3", 6)]
    summary = json.loads(stats.read_text())
    assert (summary["split_documents"], summary["windows"], summary["truncated_responses"]) == (1, 5, 0)
    assert summary["tokens"] == 55


def test_a_parquet_file_mixing_formats_names_the_row(tmp_path):
    """Parquet gives every row every column (None where a row has no value): the row's values decide its format."""
    rows = [{"prompt": "Q1:", "completion": " A1", "text": None}, {"prompt": None, "completion": None, "text": "Doc."}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "mixed.parquet")
    with pytest.raises(ConfigError) as error:
        load_domain({"name": "pc", "source": "local", "format": "prompt_completion", "path": "mixed.parquet"}, tmp_path)
    assert str(error.value) == (f"{tmp_path / 'mixed.parquet'}: row 1: its fields (text) are format 'text', not "
                                f"domain.format 'prompt_completion': a dataset holds one format")
