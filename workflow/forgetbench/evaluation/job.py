"""One evaluation job run in the interpreter of its backend: in the calling process for transformers, in the
vLLM environment's python for vLLM (a fresh process, so the main environment's packages never mix with vLLM's
and vLLM's engine processes start from a proper `__main__`).

    python -m forgetbench.evaluation.job SPEC.json      # what `run` starts; SPEC holds evaluate()'s arguments

The spec is {"kwargs": evaluate()'s keyword arguments, "extra": what is written beside the metrics,
"provenance": the cell config recorded with the package versions of the process that evaluates}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from forgetbench.child_process import run_with_spec


def evaluate_spec(spec: dict) -> dict:
    from forgetbench.evaluation.runner import evaluate
    from forgetbench.provenance import provenance

    extra = {**spec.get("extra", {}), **provenance(spec["provenance"])}
    return evaluate(**spec["kwargs"], extra=extra)


def run(spec: dict, backend: str, threads: int, gpus: int, job: str) -> None:
    """Evaluate `spec` as an evaluation job with `threads` threads and `gpus` GPUs: transformers in this process,
    on the job's GPUs (which it must see); vLLM in the interpreter that has it (this one in the rule's conda
    environment, else the vLLM environment's), whose output goes to the job's log."""
    from forgetbench.evaluation.vllm_env import evaluation_process

    python, env = evaluation_process(backend, threads, gpus)
    if python is None:
        import torch

        from forgetbench.devices import check_visible_gpus, job_device

        check_visible_gpus(gpus, job)
        torch.set_num_threads(threads)
        evaluate_spec({**spec, "kwargs": {**spec["kwargs"], "device": job_device(gpus)}})
        return
    run_with_spec([str(python), "-m", "forgetbench.evaluation.job"], spec, env,
                  f"evaluation in {python} failed with exit code {{code}} (its traceback is above)")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    evaluate_spec(json.loads(Path(argv[0]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
