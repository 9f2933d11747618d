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


def domain_loss_results(doc: dict, results: list[tuple[float, bool]]) -> dict:
    """The reference response's summed log-likelihood and its token count, for the per-token loss."""
    loglikelihood, _ = results[0]
    return {"nll_per_token": (loglikelihood, doc["n_tokens"])}


def nll_per_token(items: list[tuple[float, int]]) -> float:
    """Negative log-likelihood per token (nats) over every item: summed, not averaged per item."""
    return -sum(ll for ll, _ in items) / sum(n for _, n in items)
