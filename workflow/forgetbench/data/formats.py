"""The domain data formats (`domain.format`), their canonical records and checks. Parse-time module: no torch.

- `cot`, `label`: short-answer QA records (prompt, answer, optional rationale) trained in one of the two
  templates of Lin et al. (2025), ending in `Answer: <value>` (forgetbench.data.prompts); scored by answer
  extraction (the `domain` task) and by the loss of their reference responses (`domain_loss`).
- `messages`, `prompt_completion`, `text`: TRL's dataset formats (conversational, prompt-completion, language
  modelling). They carry no answer to extract: their domain score is the loss of held-out responses
  (`domain_loss`) and, where configured, lm-eval tasks (`domain.eval`).

Canonical prepared records (results/<exp>/data/<domain>/{train,test}.jsonl):

    messages           {"id", "messages": [{"role", "content"}, ...], "source"}
    prompt_completion  {"id", "prompt", "completion", "source"}; prompt and completion both strings, or both
                       lists of messages (TRL's conversational prompt-completion)
    text               {"id", "text", "source"}

A conversation (messages, or prompt + completion as lists) has roles system/user/assistant only, no empty
content, an optional system message first, then user and assistant turns alternating from user, and it ends with
an assistant turn: the order chat templates accept.

What is trained (forgetbench.training.tokenize; labels -100 elsewhere). In every format the whitespace where a
context meets a trained span is trained with the span (the newline that ends a chat template's generation prompt,
or the plain form's): lm-eval scores a context's trailing whitespace as the continuation's, and generation must
produce it.
- messages: the assistant turns, every one (`domain.assistant_turns: all`, the default) or the last only (`last`).
  With a chat template each turn's span is what the template adds for it after the generation prompt (its
  end-of-turn tokens included, as for cot/label).
- prompt_completion: the completion. Strings: plain concatenation `prompt + completion + EOS` with no chat
  template (as TRL does); lists of messages: the conversation prompt + completion, its completion's assistant
  turns trained.
- text: continued pretraining, the loss on every token (BOS where the tokenizer adds one, the text, EOS). A
  document longer than training.max_seq_len is chunked into consecutive windows of max_seq_len tokens, each an
  example with id `<id>#<k>` (k from 0, every document); a window after the first starts with the last token of
  the one before, so every token but the document's first is predicted exactly once. Windows are per document:
  no packing across documents. Nothing is cut, so training.max_truncated_share does not apply.

The plain rendering of a conversation, for a model without a chat template (or `models.<name>.chat_template:
none`), the same at training and at evaluation:

    <system content>\\n\\n                  (only when there is a system message)
    User:\\n<user content>\\n\\n
    Assistant:\\n<assistant content>\\n\\n   (after the last assistant turn: EOS instead of \\n\\n)

The trained span of an assistant turn is the newline after its label and its content (the label is context),
plus EOS after the last assistant turn. Each label sits on its own line so that the content starts a token of its
own (a trailing "Assistant: " would tokenize its space apart from the first word). The first piece gets the tokenizer's special
tokens (BOS where it adds one), as cot/label's plain form does.
"""

from __future__ import annotations

QA_FORMATS = ("cot", "label")
TRL_FORMATS = ("messages", "prompt_completion", "text")
FORMATS = QA_FORMATS + TRL_FORMATS
ROLES = ("system", "user", "assistant")
ASSISTANT_TURNS = ("all", "last")
# The canonical fields of each TRL format that `domain.fields` may map to columns (`id` for all).
TRL_FIELDS = {"messages": ("messages",), "prompt_completion": ("prompt", "completion"), "text": ("text",)}
PLAIN_LABELS = {"user": "User:\n", "assistant": "Assistant:\n"}
PLAIN_SEPARATOR = "\n\n"


def has_answers(fmt: str) -> bool:
    """Whether records of this format carry a reference answer that the `domain` task extracts and scores."""
    return fmt in QA_FORMATS


def row_format(row: dict) -> str | None:
    """The format a row's own keys belong to (its canonical names holding a value: a parquet file or hub dataset
    gives every row every column), or None: a file mixing formats is refused naming the first row that does not
    match."""
    for key, fmt in (("messages", "messages"), ("completion", "prompt_completion"), ("text", "text"),
                     ("answer", "cot/label")):
        if row.get(key) is not None:
            return fmt
    return None


def conversation_problem(messages, name: str) -> str | None:
    """Why a list of messages is not a conversation a chat template accepts (naming `name[i].field`), or None."""
    if not isinstance(messages, list) or not messages:
        return f"'{name}' must be a non-empty list of messages, got {_short(messages)}"
    for i, message in enumerate(messages):
        problem = _message_problem(message, f"{name}[{i}]")
        if problem:
            return problem
    roles = [m["role"] for m in messages]
    if "assistant" not in roles:
        return f"'{name}' has no assistant turn"
    return _order_problem(roles, name)


def _message_problem(message, name: str) -> str | None:
    if not isinstance(message, dict):
        return f"'{name}' must be an object with role and content, got {_short(message)}"
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        return f"'{name}.role' {role!r} is not one of {', '.join(ROLES)}"
    if not isinstance(content, str) or not content.strip():
        return f"'{name}.content' is empty" if isinstance(content, str) or content is None else \
            f"'{name}.content' must be a string, got {_short(content)}"
    return None


def _order_problem(roles: list[str], name: str) -> str | None:
    """System only first, then user/assistant alternating from user, ending with assistant."""
    start = 1 if roles[0] == "system" else 0
    for i in range(start, len(roles)):
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if roles[i] != expected:
            return (f"'{name}[{i}]' is {_a(roles[i])} turn where {_a(expected)} turn belongs: after an optional "
                    f"system message first, turns alternate user, assistant, starting with user")
    if roles[-1] != "assistant":
        return f"'{name}' ends with {_a(roles[-1])} turn: the conversation must end with an assistant turn"
    return None


def _a(role: str) -> str:
    return f"an {role}" if role == "assistant" else f"a {role}"


def record_problem(record: dict, fmt: str) -> str | None:
    """Why a canonical record of a TRL format would not train (naming its field), or None."""
    if fmt == "messages":
        return conversation_problem(record.get("messages"), "messages")
    if fmt == "text":
        return _text_problem(record, "text")
    prompt, completion = record.get("prompt"), record.get("completion")
    if isinstance(prompt, list) and isinstance(completion, list):
        problem = conversation_problem(prompt + completion, "prompt + completion")
        if problem is None and not any(isinstance(m, dict) and m.get("role") == "assistant" for m in completion):
            problem = "'completion' has no assistant turn"
        return problem
    if isinstance(prompt, list) or isinstance(completion, list):
        return "'prompt' and 'completion' must both be strings or both be lists of messages"
    return _text_problem(record, "prompt") or _text_problem(record, "completion")


def _text_problem(record: dict, field: str) -> str | None:
    value = record.get(field)
    if value is None:
        return f"missing field '{field}'"
    if not isinstance(value, str):
        return f"'{field}' must be a string, got {_short(value)}"
    return f"'{field}' is empty" if not value.strip() else None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def group_key(record: dict, fmt: str) -> str:
    """What keeps records on one side of a seeded split: the first user turn, the prompt, the text."""
    if fmt == "messages":
        return next((m["content"] for m in record["messages"] if m["role"] == "user"), "")
    if fmt == "prompt_completion":
        return _as_text(record["prompt"])
    return record["text"]


def overlap_key(record: dict, fmt: str) -> str:
    """What a test record may not share with a training record: the conversation up to its last assistant
    turn, the prompt, the text."""
    if fmt == "messages":
        last = max(i for i, m in enumerate(record["messages"]) if m["role"] == "assistant")
        return _as_text(record["messages"][:last])
    if fmt == "prompt_completion":
        return _as_text(record["prompt"])
    return record["text"]


def _as_text(value) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(f"{m['role']}: {m['content']}" for m in value)
