"""The fb_gsm8k task's answer filter (lm-eval's `custom` filter): each generation's final number, canonical."""

from __future__ import annotations

INVALID = "[invalid]"  # what lm-eval's regex filters return without a match


def final_answers(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    from forgetbench.scoring import gsm8k_answer  # imported late, as fb_metrics does

    return [[gsm8k_answer(r) or INVALID for r in doc_resps] for doc_resps in resps]
