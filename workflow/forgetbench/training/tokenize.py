"""Turn canonical records into token ids with the loss masked to the response.

Chat models get their chat template (the same one lm-eval applies at evaluation); base models without a
template get the plain form `prompt + "\\n" + response + eos`, which is what lm-eval's generation sees too:
the prompt as context, the model continuing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from forgetbench.data.prompts import build_prompt, build_response
from forgetbench.errors import ConfigError

IGNORE_INDEX = -100
# training.max_truncated_share's default in the config schema, for callers outside the workflow
DEFAULT_MAX_TRUNCATED_SHARE = 0.01


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
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(full_text[len(prompt_text):], add_special_tokens=False)["input_ids"]
    else:
        prompt_ids = tokenizer(prompt + "\n")["input_ids"]  # adds BOS where the tokenizer wants one
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
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
    does not fit whole (cut short, or left out because the prompt alone fills max_len: `dropped` of them)."""

    examples: list[dict]
    ids: list[str]
    records: int
    truncated: list[str]
    dropped: int
    longest: int
    max_len: int

    @property
    def share(self) -> float:
        return len(self.truncated) / self.records if self.records else 0.0

    def summary(self) -> str:
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


def encode_records(tokenizer, records: list[dict], fmt: str, max_len: int, chat: bool) -> Encoded:
    """Every record encoded as encode_example does, with the count of responses max_len cuts."""
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
    return Encoded(examples, ids, len(records), truncated, dropped, longest, max_len)
