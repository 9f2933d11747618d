"""Starts the processes of one training job: the job's own process, or N processes under torchrun (one per GPU;
on a CPU, N gloo processes standing in for N GPUs, as the tests run them).

    python -m torch.distributed.run --standalone --nproc-per-node N -m forgetbench.training.launch SPEC.json

`run` starts that command; SPEC holds train_cell's keyword arguments. Every process runs train_cell, which
shards the work (DDP or FSDP through transformers' Trainer and accelerate) and lets process 0 write the
outputs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from forgetbench.child_process import checkout_pythonpath, run_with_spec
from forgetbench.devices import check_visible_gpus


def run(spec: dict, processes: int, threads: int, gpus: int = 0, job: str = "training") -> dict | None:
    """Train `spec` in this process (`processes` 1, returns train_cell's summary) or in `processes` processes
    under torchrun (returns None: the summary is in the run.json process 0 wrote). `gpus` is what the job
    asked for; fewer visible GPUs fail the job before anything loads."""
    check_visible_gpus(gpus, job)
    if processes <= 1:
        import torch

        from forgetbench.training.run import train_cell

        torch.set_num_threads(threads)
        return train_cell(**spec)
    env = {"OMP_NUM_THREADS": str(max(1, threads // processes)), "PYTHONPATH": checkout_pythonpath()}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "forgetbench.training.launch"]
    print(f"starting {processes} training processes: {' '.join(command)} SPEC.json", flush=True)
    run_with_spec(command, spec, env, f"training under torchrun ({processes} processes) failed with exit code "
                                      f"{{code}} (the failing process's traceback is above)")
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    import torch

    from forgetbench.training.run import train_cell

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    train_cell(**json.loads(Path(argv[0]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
