"""Rules `evaluate_checkpoint` and `evaluate_base_checkpoint`: one checkpoint of the scaling study (or the base
model as step 0): the domain test loss (the fine-tuning loss, with transformers, on the job's GPUs where it has
them), then the domain score, the general text (forgetting) and the configured general tasks through lm-eval
(with the vLLM backend in the vLLM environment's interpreter).

    snakemake --cores 2 results/default/smollm2-135m/scaling-lora-r8/lr~0.0002/seed~0/step~4/metrics.json
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    import json
    from pathlib import Path

    import torch

    from forgetbench.analysis.base_scores import domain_loss, scoring_device
    from forgetbench.devices import check_visible_gpus
    from forgetbench.evaluation.job import run
    from forgetbench.evaluation.vllm_env import vllm_settings

    torch.set_num_threads(snakemake.threads)
    inputs, params, wildcards = snakemake.input, snakemake.params, snakemake.wildcards
    job = f"rule {snakemake.rule} ({snakemake.output[0]})"
    check_visible_gpus(params.gpus, job)  # before the loss: a GPU job that sees none fails, not scores on the CPU
    settings = params.evaluation
    model_dir, adapter_dir, n_params = inputs.base, None, 0
    if "checkpoints" in inputs.keys():
        checkpoint = Path(inputs.checkpoints) / f"step~{wildcards.step}"
        if (checkpoint / "adapter_config.json").exists():
            adapter_dir = str(checkpoint)
        else:
            model_dir = str(checkpoint)
        n_params = json.loads(Path(inputs.run).read_text())["trainable_params"]
    ft_loss = domain_loss(model_dir, inputs.domain_test, params.domain_format, params.max_len, params.chat_template,
                          adapter_dir=adapter_dir, batch_size=settings["batch_size"],
                          assistant_turns=getattr(params, "assistant_turns", "all"),  # given for messages only
                          device=scoring_device(params.gpus))
    print(f"domain test loss {ft_loss:.4f}", flush=True)
    identity = {**params.identity, "n_params": n_params}
    vllm = vllm_settings(settings["vllm"], params.gpus)
    kwargs = dict(model_dir=str(model_dir), out_json=str(snakemake.output[0]), tasks=params.tasks,
                  adapter_dir=adapter_dir, backend=params.backend, batch_size=settings["batch_size"],
                  seed=settings["seed"], dtype=settings["dtype"], max_length=settings["max_length"], vllm=vllm,
                  domain_test_path=inputs.domain_test, domain_format=params.domain_format,
                  chat_template=params.chat_template)
    if settings.get("include_path"):  # the folders of lm-eval tasks named by their lm-eval name (domain.eval, general)
        kwargs["include_path"] = settings["include_path"]
    run({"kwargs": kwargs, "extra": {"cell": identity, "ft_loss": ft_loss}, "provenance": {**identity, "evaluation": settings}},
        params.backend, snakemake.threads, params.gpus, job=job)
