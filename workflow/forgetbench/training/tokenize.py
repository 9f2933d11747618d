"""Turn canonical records into token ids with the loss masked to the response.

Chat models get their chat template (the same one lm-eval applies at evaluation); base models without a
template get the plain form `prompt + "\\n" + response + eos`.

Whitespace where context meets response belongs to the response and is trained (`to_response`): lm-eval
scores a context's trailing whitespace as part of the continuation (its `_encode_pair` moves it there), and
the domain task generates from the bare prompt, so the model must produce the newline itself. Trained as
context instead, the newline is never predicted: a base model without a template then scored 0 of 16 after
fine-tuning (it no longer starts its answer with the newline) and its domain loss was mostly that one token.

The TRL formats (messages, prompt_completion, text; what is trained is documented in forgetbench.data.formats)
are rendered as text pieces, each trained or not (`render`), and each piece is tokenized on its own, so the
loss mask is exact; the domain_loss task renders its held-out items with the same functions (`last_turn`).
"""

from __future__ import annotations

from dataclasses import dataclass

from forgetbench.data.formats import PLAIN_LABELS, PLAIN_SEPARATOR, TRL_FORMATS
from forgetbench.data.prompts import build_prompt, build_response
from forgetbench.errors import ConfigError

IGNORE_INDEX = -100
# training.max_truncated_share's default in the config schema, for callers outside the workflow
DEFAULT_MAX_TRUNCATED_SHARE = 0.01


def to_response(context: str, response: str) -> tuple[str, str]:
    """(context, response) with the context's trailing whitespace moved to the response, as lm-eval scores it."""
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + response


def uses_chat_template(tokenizer, setting: str = "auto") -> bool:
    return setting == "auto" and bool(getattr(tokenizer, "chat_template", None))


def _token_ids(tokenizer, record: dict, fmt: str, chat: bool) -> tuple[list[int], list[int]]:
    """The prompt's and the response's token ids, untruncated."""
    prompt, response = build_prompt(record, fmt), build_response(record, fmt)
    if chat:
        user = [{"role": "user", "content": prompt}]
        prompt_text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full_text = tokenizer.apply_chat_template(
            user + [{"role": "assistant", "content": response}], tokenize=False
        )
        if not full_text.startswith(prompt_text):
            raise ValueError("the chat template does not render the prompt as a prefix of the conversation")
        context, response_text = to_response(prompt_text, full_text[len(prompt_text):])
        prompt_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(response_text, add_special_tokens=False)["input_ids"]
    else:
        prompt_ids = tokenizer(prompt)["input_ids"]  # adds BOS where the tokenizer wants one
        response_ids = tokenizer("\n" + response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids, response_ids


def _truncate(prompt_ids: list[int], response_ids: list[int], max_len: int) -> dict | None:
    input_ids = (prompt_ids + response_ids)[:max_len]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids)[:max_len]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels, "attention_mask": [1] * len(input_ids)}


def encode_example(tokenizer, record: dict, fmt: str, max_len: int, chat: bool) -> dict | None:
    """input_ids and labels (prompt tokens set to -100), right-truncated to max_len; None if no response token fits."""
    return _truncate(*_token_ids(tokenizer, record, fmt, chat), max_len)


@dataclass
class Encoded:
    """A dataset's examples and what max_len cost it: `truncated` are the ids of the records whose response
    does not fit whole (cut short, or left out because the prompt alone fills max_len: `dropped` of them).
    For `text` nothing is cut: `split_documents` documents are longer than max_len and become `windows`
    examples in all (`windows` is the example count of every format)."""

    examples: list[dict]
    ids: list[str]
    records: int
    truncated: list[str]
    dropped: int
    longest: int
    max_len: int
    split_documents: int = 0
    windows: int = 0
    chunked: bool = False  # the text format: documents chunked into windows, not truncated

    @property
    def share(self) -> float:
        return len(self.truncated) / self.records if self.records else 0.0

    def summary(self) -> str:
        if self.chunked:
            return (f"{self.split_documents} of {self.records} documents are longer than max_seq_len {self.max_len} "
                    f"(the longest has {self.longest} tokens) and were split: {self.windows} windows in all, "
                    f"per document (no packing across documents)")
        return (f"{len(self.truncated)} of {self.records} responses ({100 * self.share:.1f} %) do not fit whole in "
                f"max_seq_len {self.max_len} (the longest example has {self.longest} tokens)")

    def check(self, max_share: float, where: str) -> None:
        """Refuse a dataset whose responses are cut above `max_share`: a cut response trains without its
        answer and end of sequence, which no loss curve shows."""
        if self.share > max_share:
            raise ConfigError(f"{where}: {truncation_refusal(self.summary(), self.longest, max_share)}")


def truncation_refusal(summary: str, longest: int, max_share: float) -> str:
    """Why a dataset is refused for its cut responses and the two ways out (training, score_base, the dry run)."""
    return (f"{summary}, above training.max_truncated_share {max_share:g}: raise training.max_seq_len to {longest} "
            f"or raise training.max_truncated_share")


def encode_records(tokenizer, records: list[dict], fmt: str, max_len: int, chat: bool,
                   assistant_turns: str = "all") -> Encoded:
    """Every record encoded as encode_example does (a TRL format's as `render` lays it out), with the count of
    responses max_len cuts; `assistant_turns` (all | last) applies to messages."""
    if fmt == "text":
        return _encode_text(tokenizer, records, max_len)
    if fmt in TRL_FORMATS:
        return _encode_pieces(tokenizer, records, fmt, max_len, chat, assistant_turns)
    examples, ids, truncated, dropped, longest = [], [], [], 0, 0
    for record in records:
        prompt_ids, response_ids = _token_ids(tokenizer, record, fmt, chat)
        length = len(prompt_ids) + len(response_ids)
        longest = max(longest, length)
        if length > max_len:
            truncated.append(record["id"])
        example = _truncate(prompt_ids, response_ids, max_len)
        if example is None:
            dropped += 1
            continue
        examples.append(example)
        ids.append(record["id"])
    return Encoded(examples, ids, len(records), truncated, dropped, longest, max_len, windows=len(examples))


# ------------------------------------------------------------------------------------- TRL formats


@dataclass
class Rendered:
    """A record as text pieces in order, each trained or not; `eos`: an end-of-sequence token follows the last
    piece and is trained (the plain forms); `special`: the first piece is tokenized with the tokenizer's
    special tokens (BOS where it adds one: the plain forms; a chat template writes its own)."""

    pieces: list[tuple[str, bool]]
    eos: bool
    special: bool


def _name(record: dict) -> str:
    return f"record '{record.get('id')}'"


def conversation(record: dict, fmt: str) -> tuple[list[dict], set[int]]:
    """A record's conversation and the indices of its assistant turns that are trained (before assistant_turns)."""
    if fmt == "messages":
        messages = record["messages"]
        return messages, {i for i, m in enumerate(messages) if m["role"] == "assistant"}
    messages = record["prompt"] + record["completion"]
    first = len(record["prompt"])
    return messages, {i for i, m in enumerate(messages) if i >= first and m["role"] == "assistant"}


def _apply(tokenizer, messages: list[dict], record: dict, generation: bool) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    except Exception as exc:  # jinja's TemplateError, or anything a template raises on this conversation
        message = " ".join(str(exc).split())
        raise ConfigError(f"{_name(record)}: the chat template rejects the conversation "
                          f"({type(exc).__name__}: {message})") from None


def _chat_pieces(tokenizer, messages: list[dict], trained: set[int], record: dict) -> list[tuple[str, bool]]:
    """Each assistant turn's span is what the template adds for it after the generation prompt; the text between
    spans is context. Rendered incrementally, each rendering checked to extend the one before."""
    pieces, done = [], ""
    for i in (i for i, m in enumerate(messages) if m["role"] == "assistant"):
        before = _apply(tokenizer, messages[:i], record, generation=True)
        through = _apply(tokenizer, messages[:i + 1], record, generation=False)
        if not before.startswith(done) or not through.startswith(before):
            raise ConfigError(f"{_name(record)}: the chat template does not render the conversation as a prefix "
                              f"of its continuation (turn {i}): its assistant turns cannot be masked exactly")
        pieces += [(before[len(done):], False), (through[len(before):], i in trained)]
        done = through
    return pieces


def _plain_pieces(messages: list[dict], trained: set[int]) -> list[tuple[str, bool]]:
    """The plain rendering documented in forgetbench.data.formats."""
    pieces, last = [], max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    for i, m in enumerate(messages):
        if m["role"] == "system":
            pieces.append((m["content"] + PLAIN_SEPARATOR, False))
            continue
        pieces.append((PLAIN_LABELS[m["role"]], False))
        pieces.append((m["content"], i in trained))
        if i != last:
            pieces.append((PLAIN_SEPARATOR, False))
    return pieces


def render(tokenizer, record: dict, fmt: str, chat: bool, assistant_turns: str = "all") -> Rendered:
    """A messages or prompt_completion record as text pieces, trained or not (text is chunked by tokens)."""
    if fmt == "prompt_completion" and isinstance(record["prompt"], str):
        return Rendered(_merge([(record["prompt"], False), (record["completion"], True)]), eos=True, special=True)
    messages, trained = conversation(record, fmt)
    if assistant_turns == "last":
        trained = {max(trained)}
    if chat:
        return Rendered(_merge(_chat_pieces(tokenizer, messages, trained, record)), eos=False, special=False)
    return Rendered(_merge(_plain_pieces(messages, trained)), eos=True, special=True)


def _merge(pieces: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Adjacent pieces of the same kind joined (untrained turns tokenize as the context they are), empty ones
    dropped, and the whitespace that ends a context piece moved into the trained piece after it (`to_response`)."""
    out: list[tuple[str, bool]] = []
    for text, trained in pieces:
        if out and trained and text and not out[-1][1]:
            context, text = to_response(out[-1][0], text)
            out[-1] = (context, False)
        if not text:
            continue
        if out and out[-1][1] == trained:
            out[-1] = (out[-1][0] + text, trained)
        else:
            out.append((text, trained))
    return [(text, trained) for text, trained in out if text]


def last_turn(tokenizer, record: dict, fmt: str, chat: bool) -> tuple[str, str]:
    """(context, continuation) of a held-out messages or prompt_completion record for the domain loss: the
    conversation up to its last assistant turn and that turn's span, exactly as training renders it (the
    plain forms' EOS written as the tokenizer's eos_token text)."""
    rendered = render(tokenizer, record, fmt, chat, assistant_turns="last")
    texts = [text for text, _ in rendered.pieces]
    last = max(i for i, (_, trained) in enumerate(rendered.pieces) if trained)
    tail = tokenizer.eos_token if rendered.eos else ""
    return "".join(texts[:last]), "".join(texts[last:]) + tail


def _piece_ids(tokenizer, rendered: Rendered) -> tuple[list[int], list[int]]:
    ids, labels = [], []
    for k, (text, trained) in enumerate(rendered.pieces):
        piece = tokenizer(text, add_special_tokens=rendered.special and k == 0)["input_ids"]
        ids += piece
        labels += piece if trained else [IGNORE_INDEX] * len(piece)
    if rendered.eos:
        ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    return ids, labels


def _encode_pieces(tokenizer, records, fmt, max_len, chat, assistant_turns) -> Encoded:
    """messages and prompt_completion: right-truncated to max_len like cot/label, the cut ones counted."""
    examples, ids, truncated, dropped, longest = [], [], [], 0, 0
    for record in records:
        input_ids, labels = _piece_ids(tokenizer, render(tokenizer, record, fmt, chat, assistant_turns))
        longest = max(longest, len(input_ids))
        if len(input_ids) > max_len:
            truncated.append(record["id"])
        if all(label == IGNORE_INDEX for label in labels[:max_len]):
            dropped += 1
            continue
        examples.append({"input_ids": input_ids[:max_len], "labels": labels[:max_len],
                         "attention_mask": [1] * len(input_ids[:max_len])})
        ids.append(record["id"])
    return Encoded(examples, ids, len(records), truncated, dropped, longest, max_len, windows=len(examples))


def text_ids(tokenizer, record: dict) -> list[int]:
    """A document's tokens: BOS where the tokenizer adds one, the text, EOS."""
    return tokenizer(record["text"])["input_ids"] + [tokenizer.eos_token_id]


def windows(n: int, max_len: int) -> list[tuple[int, int]]:
    """[start, stop) of a document's windows: consecutive, of max_len tokens at most, each after the first
    starting at the last token of the one before, so every token but the first is predicted exactly once."""
    if n <= max_len:
        return [(0, n)]
    step = max_len - 1
    return [(start, min(start + max_len, n)) for start in range(0, n - 1, step)]


def _encode_text(tokenizer, records: list[dict], max_len: int) -> Encoded:
    """Continued pretraining: every token trained, long documents chunked (per document, no packing)."""
    if max_len < 2:
        raise ConfigError(f"training.max_seq_len {max_len}: a text window needs at least 2 tokens")
    examples, ids, split, longest = [], [], 0, 0
    for record in records:
        tokens = text_ids(tokenizer, record)
        longest = max(longest, len(tokens))
        spans = windows(len(tokens), max_len)
        split += len(spans) > 1
        for k, (start, stop) in enumerate(spans):
            chunk = tokens[start:stop]
            examples.append({"input_ids": chunk, "labels": list(chunk), "attention_mask": [1] * len(chunk)})
            ids.append(f"{record['id']}#{k}")
    return Encoded(examples, ids, len(records), [], 0, longest, max_len, split_documents=split,
                   windows=len(examples), chunked=True)
