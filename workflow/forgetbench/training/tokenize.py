"""Turn canonical records into token ids with the loss masked to the response.

Chat models get their chat template (the same one lm-eval applies at evaluation); base models without a
template get the plain form `prompt + "\\n" + response + eos`, which is what lm-eval's generation sees too:
the prompt as context, the model continuing it.
"""

from __future__ import annotations

from forgetbench.data.prompts import build_prompt, build_response

IGNORE_INDEX = -100


def uses_chat_template(tokenizer, setting: str = "auto") -> bool:
    return setting == "auto" and bool(getattr(tokenizer, "chat_template", None))


def encode_example(tokenizer, record: dict, fmt: str, max_len: int, chat: bool) -> dict | None:
    """input_ids and labels (prompt tokens set to -100), right-truncated to max_len; None if no response token fits."""
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
    input_ids = (prompt_ids + response_ids)[:max_len]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids)[:max_len]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels, "attention_mask": [1] * len(input_ids)}


def encode_dataset(tokenizer, records: list[dict], fmt: str, max_len: int, chat: bool) -> tuple[list[dict], list[str]]:
    """Encoded examples and the ids of the records they came from; records whose prompt alone fills max_len
    are left out."""
    examples, ids = [], []
    for record in records:
        example = encode_example(tokenizer, record, fmt, max_len, chat)
        if example is not None:
            examples.append(example)
            ids.append(record["id"])
    return examples, ids
