"""Prompt and response text for the two supervision formats of Lin et al. (2025): chain-of-thought ("cot":
rationale then answer) and label-only ("label": the answer alone).

Training builds (prompt, response) pairs and the domain evaluation builds the prompt and scores the
generation, both through these functions, so they must stay pure functions of the record: any change here
changes what was trained and what is measured together. Both formats end with an "Answer: <value>" line,
which is what `forgetbench.scoring.extract_answer` looks for.
"""

from __future__ import annotations

from forgetbench.errors import ConfigError

FORMATS = ("cot", "label")

INSTRUCTIONS = {
    "cot": "Think step by step, then give the final answer on the last line as 'Answer: <value>'.",
    "label": "Give only the final answer, as 'Answer: <value>'.",
}


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown supervision format '{fmt}'; valid formats: {', '.join(FORMATS)}")


def medcalc_task(note: str, question: str) -> str:
    """The task text of a MedCalc-Bench item, laid out as in the benchmark's zero-shot prompt; the generator
    and the hub loader both use it, so synthetic and real items look alike."""
    return f"Here is the patient note:\n{note.strip()}\n\nHere is the task:\n{question.strip()}"


def build_prompt(record: dict, fmt: str) -> str:
    """The record's task text followed by the format's instruction line."""
    _check_format(fmt)
    return f"{record['prompt'].rstrip()}\n\n{INSTRUCTIONS[fmt]}"


def build_response(record: dict, fmt: str) -> str:
    """The training target: for cot the rationale then 'Answer: <answer>', for label 'Answer: <answer>'."""
    _check_format(fmt)
    answer = str(record["answer"]).strip()
    if fmt == "label":
        return f"Answer: {answer}"
    rationale = (record.get("rationale") or "").strip()
    if not rationale:
        raise ConfigError(
            f"record '{record.get('id')}': format 'cot' needs a rationale and this record has none (use format: label)"
        )
    return f"{rationale}\nAnswer: {answer}"
