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
import subprocess
import sys
import tempfile
from pathlib import Path

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
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="forgetbench-train-", delete=False) as f:
        json.dump(spec, f)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // processes)),
           # the checkout's forgetbench in every process, whatever the interpreter has installed
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                       os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "forgetbench.training.launch", f.name]
    print(f"starting {processes} training processes: {' '.join(command)}", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        done = subprocess.run(command, env=env, check=False)
    finally:
        Path(f.name).unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"training under torchrun ({processes} processes) failed with exit code {done.returncode} "
                           f"(the failing process's traceback is above)")
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
