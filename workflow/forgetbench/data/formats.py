"""The domain data formats (`domain.format`) and what each one supports. Parse-time module: no torch.

- `cot`, `label`: short-answer QA records (prompt, answer, optional rationale) trained in one of the two
  templates of Lin et al. (2025), ending in `Answer: <value>` (forgetbench.data.prompts); scored by answer
  extraction (the `domain` task) and by the loss of their reference responses (`domain_loss`).
- `messages`, `prompt_completion`, `text`: TRL's dataset formats (conversational, prompt-completion, language
  modelling). They carry no answer to extract: their domain score is the loss of held-out responses
  (`domain_loss`) and, where configured, lm-eval tasks (`domain.eval`).
"""

from __future__ import annotations

QA_FORMATS = ("cot", "label")
TRL_FORMATS = ("messages", "prompt_completion", "text")
FORMATS = QA_FORMATS + TRL_FORMATS


def has_answers(fmt: str) -> bool:
    """Whether records of this format carry a reference answer that the `domain` task extracts and scores."""
    return fmt in QA_FORMATS
