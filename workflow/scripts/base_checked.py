"""Checkpoint `base_checked`: a model's base evaluation and its scoring of the training data have finished once,
so its training may start (rules/train.smk says why this is a checkpoint).

    snakemake --cores 1 results/default/smollm2-135m/base/checked.json
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    import json
    from pathlib import Path

    from forgetbench.atomic import write_json
    from forgetbench.provenance import git_commit, machine

    evaluation = json.loads(Path(snakemake.input.evaluation).read_text())
    write_json(snakemake.output[0], {
        "model": snakemake.wildcards.model,
        "opens": "the training jobs of this model",
        "base_evaluation": {"path": snakemake.input.evaluation, "tasks": sorted(evaluation["metrics"])},
        "base_scores": snakemake.input.scores,
        "git_commit": git_commit(),
        "machine": machine(),
    })
    print(f"{snakemake.wildcards.model}: base model evaluated on {len(evaluation['metrics'])} task(s) and its "
          "training data scored; its training may start", flush=True)
