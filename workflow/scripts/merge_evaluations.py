"""Rule `merge_evaluations`: the results of one model or cell's task families in one metrics file.

    snakemake --cores 1 results/default/smollm2-135m/base/eval/metrics.json
"""

from forgetbench.rule_log import log_to

with log_to(snakemake.log[0]):
    from pathlib import Path

    from forgetbench.evaluation.merge import merge_families, merge_items

    paths = {Path(p).stem: p for p in snakemake.input.json}
    merged = merge_families(paths, snakemake.output.json)
    merge_items(snakemake.input.per_item, snakemake.output.per_item)
    print(f"merged {', '.join(paths)}: {', '.join(merged['metrics'])}", flush=True)
