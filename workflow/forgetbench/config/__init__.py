"""The experiment config at parse time: every check that can refuse a config before a job runs, and everything
the rules need from it, behind one entry point that the Snakefile calls once.

    from forgetbench.config import load_experiment
    EXPERIMENT = load_experiment(config, schema, config_files, overrides, use_conda)

Parse time and job time. Everything in this package runs while Snakemake parses the workflow, on a login node
and for every dry run, and imports neither torch, transformers, lm-eval nor datasets (tests/test_config_package.py
checks it); the lengths check, which tokenizes, imports transformers inside the function that counts, and only
where no stored count exists. The jobs (forgetbench.training, .evaluation.runner, .aggregation, workflow/scripts)
never import this package: what a job needs of the config reaches it as the rule's params.

One job a module, in the order load_experiment runs them:

    file        the config as written: duplicate YAML keys, tabs, NaN, contradicting settings, --config origins,
                relative paths
    schema      the schema, loaded once: unknown keys (with the nearest known key), its first error in one line,
                its defaults
    checks      values a schema cannot judge: methods, models, learning rates, the scaling study, training
    tasks       the evaluation tasks: settings, families, lm-eval names against lm-eval's index, task stamps
    inputs      the config against what exists: model packages, caches and shapes, the domain's files, task data
    data        the domain's local records, read as prepare_domain reads them (cached)
    hub         hub datasets: cached, or reachable now
    gguf        a GGUF model's shape from its file's header
    lengths     max_seq_len and max_gen_toks against the tokenized data (cached)
    parallel    each model's evaluation backend, GPUs and vLLM tensor-parallel size
    vllm        the vLLM environment the vLLM evaluations need
    resources   the training memory check, and mem_mb and runtime of every job
    sweep       what the config fans out into: cells, method folders, scaling runs, GPUs, nodes, processes
    experiment  load_experiment, and the Experiment it returns
"""

from forgetbench.config.experiment import Experiment, load_experiment

__all__ = ["Experiment", "load_experiment"]
