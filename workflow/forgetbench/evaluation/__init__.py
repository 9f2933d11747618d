"""Evaluation through lm-evaluation-harness with the project's own task YAMLs (workflow/tasks/).

    from forgetbench.evaluation import evaluate
    evaluate(model_dir, "eval.json", {"arc_easy": {"limit": 100}, "general_text": {"limit": 20}}, seed=1234)

Modules: general_data (offline benchmark data from installed wheels), humaneval_exec (HumanEval tests in a
subprocess), punkt_data (NLTK's punkt_tab model from a wheel, for IFEval's checkers), backend (hf or vLLM),
runner (one simple_evaluate call, results JSON). Evaluation's GPUs and vLLM's tensor-parallel size are decided at
parse time (forgetbench.config.parallel).
"""

from forgetbench.evaluation.backend import choose_backend
from forgetbench.evaluation.runner import evaluate

__all__ = ["choose_backend", "evaluate"]
