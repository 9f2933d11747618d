"""A batch larger than the training set: every step sees the whole set, and the log and run.json say so."""

from __future__ import annotations

import json

from forgetbench.training.run import batch_line


def test_the_batch_line_names_what_a_step_sees():
    training = {"batch_size": 64, "grad_accum": 1}
    assert batch_line(training, 1, 100) == "effective batch 64 = 64 per process x 1 accumulated x 1 process"
    assert batch_line(training, 1, 16) == ("effective batch 16 = all 16 training examples (64 per process x 1 "
                                           "accumulated x 1 process = 64 asks for more rows than the training set has)")
    assert batch_line({"batch_size": 2, "grad_accum": 2}, 2, 16) == (
        "effective batch 8 = 2 per process x 2 accumulated x 2 processes")


def test_a_run_whose_batch_exceeds_its_data_records_the_rows_its_steps_saw(tiny_model_dir, tmp_path, capsys):
    from forgetbench.atomic import write_jsonl
    from forgetbench.training.run import train_cell
    from test_training import TRAINING, cell, records

    write_jsonl(tmp_path / "train.jsonl", records(8))
    big = {**cell(), "training": {**TRAINING, "batch_size": 64, "max_steps": 2}}
    train_cell(str(tiny_model_dir), str(tmp_path / "train.jsonl"), str(tmp_path / "model"), str(tmp_path / "log.jsonl"),
               str(tmp_path / "run.json"), big)
    run = json.loads((tmp_path / "run.json").read_text())
    assert (run["effective_batch"], run["configured_batch"], run["examples"]) == (8, 64, 8)
    assert ("effective batch 8 = all 8 training examples (64 per process x 1 accumulated x 1 process = 64 asks for "
            "more rows than the training set has)") in capsys.readouterr().out
