"""A run whose loss explodes is diverged whether or not it reached NaN: the rule, the training run that records
it, and the tables that carry the cell as diverged while the rest of the sweep's tables are still written."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from forgetbench.training.divergence import DEFAULT_FACTOR, divergence

from test_aggregation import GENERAL, tables, write_eval


def logged(*losses):
    return [{"step": i + 1, "loss": loss, "grad_norm": 1.0} for i, loss in enumerate(losses)]


def test_a_loss_above_the_factor_times_its_first_steps_is_diverged():
    history = logged(1.45, 1.40, 1.50, 1.2)
    assert divergence({"step": 5, "loss": 14.0, "grad_norm": 3.0}, history) is None  # 9.7x: not yet
    found = divergence({"step": 5, "loss": 7836.0, "grad_norm": 3.0}, history)
    assert found == {"step": 5, "loss": 7836.0, "grad_norm": 3.0, "baseline_loss": 1.45,
                     "reason": "loss 7836 above 10x the first logged steps' level 1.45 (training.divergence_factor)"}
    assert DEFAULT_FACTOR == 10.0
    assert divergence({"step": 5, "loss": 4.0, "grad_norm": 1.0}, history, factor=2.0)["baseline_loss"] == 1.45
    assert divergence({"step": 5, "loss": 7836.0, "grad_norm": 1.0}, history, factor=None) is None  # rule off


def test_non_finite_values_are_diverged_whatever_the_factor():
    assert divergence({"step": 1, "loss": math.nan, "grad_norm": 1.0}, [], factor=None)["reason"] == (
        "loss nan, grad norm 1.0: not finite")
    assert divergence({"step": 2, "loss": 1.0, "grad_norm": math.inf}, logged(1.0))["reason"] == (
        "loss 1.0, grad norm inf: not finite")
    assert divergence({"step": 1, "loss": 9.0, "grad_norm": 1.0}, []) is None  # no starting level yet


def test_an_exploding_finite_loss_stops_the_run_and_is_recorded_diverged(tiny_model_dir, tmp_path):
    """Learning rate 30 on the tiny model: the loss goes 10.8 → about 1.5e4 at step 2, finite."""
    from forgetbench.atomic import write_jsonl
    from forgetbench.training.run import train_cell
    from test_training import TRAINING, cell, records

    write_jsonl(tmp_path / "train.jsonl", records())
    exploding = {**cell(), "lr": 30.0, "training": {**TRAINING, "max_steps": 8}}
    summary = train_cell(str(tiny_model_dir), str(tmp_path / "train.jsonl"), str(tmp_path / "model"),
                         str(tmp_path / "log.jsonl"), str(tmp_path / "run.json"), exploding)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["status"] == summary["status"] == "diverged" and run["steps"] == 2
    at = run["diverged_at"]
    assert at["step"] == 2 and math.isfinite(at["loss"]) and at["loss"] > 10 * at["baseline_loss"]
    assert at["reason"] == (f"loss {at['loss']:.4g} above 10x the first logged steps' level {at['baseline_loss']:.4g} "
                            f"(training.divergence_factor)")
    logged_losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged_losses == [at["baseline_loss"], at["loss"]]  # the log ends at the step that diverged


def test_a_diverged_cell_is_marked_in_the_tables_with_the_scores_it_has(tmp_path):
    """The diverged cell's evaluation kept its domain score and lost the others: the tables carry it as
    diverged with that score, and every other cell's row and interval is still computed."""
    domain = [1] * 8 + [0] * 8
    arc = [1] * 10 + [0] * 10
    evaluations = [write_eval(tmp_path, "base", "m", "base", None, None, domain, arc, [0, 0, 1, 0], 0.0),
                   write_eval(tmp_path, "sft", "m", "sft", 2e-5, 0, [1] * 12 + [0] * 4, arc, [0, 0, 1, 0], 0.05),
                   write_eval(tmp_path, "dft", "m", "dft", 2e-5, 0, [1] * 4 + [0] * 12, arc, [0, 0, 1, 0], 0.0)]
    metrics_path, items_path = evaluations[2]
    result = json.loads(metrics_path.read_text())
    result["status"] = "diverged"
    for task in ("arc_easy", "gsm8k", "general_text", "domain_loss"):
        result["metrics"][task]["score"] = None
    metrics_path.write_text(json.dumps(result))
    items = [json.loads(line) for line in items_path.read_text().splitlines()]
    items_path.write_text("".join(json.dumps(i) + "\n" for i in items if i["task"] == "domain"))
    from forgetbench.aggregation.table import paper_table, to_markdown

    tidy, grouped = tables(evaluations)
    row = tidy[tidy["method"] == "dft"].iloc[0]
    assert row["status"] == "diverged" and row["domain"] == 0.25 and pd.isna(row["general_avg"])
    assert tidy[tidy["method"] == "sft"].iloc[0]["forgetting"] == pytest.approx(0.05)
    frame = paper_table(grouped, GENERAL).frame
    diverged = frame[frame["Method"] == "dft (diverged 1/1)"].iloc[0]
    assert diverged["Domain (n=16)"].startswith("0.250 [") and diverged["General avg"] == "—"
    assert "dft (diverged 1/1)" in to_markdown(paper_table(grouped, GENERAL), "t")
