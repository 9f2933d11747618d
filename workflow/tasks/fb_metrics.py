"""`process_results` of the forgetbench generation tasks that lm-eval cannot score with a built-in metric."""

from __future__ import annotations

import json

from forgetbench.evaluation.humaneval_exec import check_completion


def humaneval_results(doc: dict, results: list[str]) -> dict:
    """pass@1 of one greedy completion (1.0 or 0.0)."""
    return {"pass@1": float(check_completion(doc, results[0]))}


def domain_results(doc: dict, results: list[str]) -> dict:
    """Accuracy of one generation under the domain's own answer check (tolerances, dates, labels)."""
    from forgetbench.scoring import is_correct  # imported late: tasks load even before the module exists

    return {"accuracy": float(is_correct(results[0], json.loads(doc["record"])))}
