"""Rule `score_base`: the pre-trained model's loss on each training sample (FLOW) and its token-probability
statistics on the domain data (TALR's analysis), once per model, on the job's GPUs where it has them.

    snakemake --cores 2 results/default/smollm2-135m/base/train_scores/token_stats.json
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    import torch

    from forgetbench.analysis.base_scores import score_with_base, scoring_device
    from forgetbench.devices import check_visible_gpus

    torch.set_num_threads(snakemake.threads)
    # The job's GPUs are its `gpu` resource, not a params entry: a params change would rerun every model's
    # scores, and a site's --set-resources score_base:gpu=N must reach the scoring too.
    gpus = int(getattr(snakemake.resources, "gpu", 0))
    check_visible_gpus(gpus, f"rule score_base ({snakemake.output.stats})")
    p = snakemake.params
    score_with_base(snakemake.input.model, snakemake.input.train, p.fmt, p.max_len, p.chat_template,
                    snakemake.output.losses, snakemake.output.stats, batch_size=p.batch_size,
                    max_truncated_share=p.max_truncated_share,
                    assistant_turns=getattr(p, "assistant_turns", "all"),  # given for messages only
                    device=scoring_device(gpus))
