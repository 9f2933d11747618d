"""Starts the processes of one training job: the job's own process, or N processes under torchrun (one per GPU;
on a CPU, N gloo processes standing in for N GPUs, as the tests run them).

    python -m torch.distributed.run --standalone --nproc-per-node N -m forgetbench.training.launch SPEC.json

or, for a model with `nodes: k` (a SLURM job of k nodes), one torchrun per node started by srun, meeting at a
rendezvous on the job's first node:

    srun --nodes k --ntasks k --ntasks-per-node 1 python -m torch.distributed.run --nnodes k --nproc-per-node N \
        --rdzv-backend c10d --rdzv-endpoint HEAD:29500 --rdzv-id $SLURM_JOB_ID -m forgetbench.training.launch SPEC.json

`run` starts that command; SPEC holds train_cell's keyword arguments (beside the cell's outputs for several
nodes: every node reads it). Every process runs train_cell, which
shards the work (DDP or FSDP through transformers' Trainer and accelerate) and lets process 0 write the
outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from forgetbench.child_process import checkout_pythonpath, run_with_spec
from forgetbench.devices import check_visible_gpus


RENDEZVOUS_PORT = 29500


def torchrun_command(processes: int, nodes: int = 1, head: str | None = None, job_id: str = "0") -> list[str]:
    """The command that starts `processes` training processes on each of `nodes` nodes (SPEC.json follows)."""
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    module = ["-m", "forgetbench.training.launch"]
    if nodes <= 1:
        return [*torchrun, "--standalone", f"--nproc-per-node={processes}", *module]
    return ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
            *torchrun, f"--nnodes={nodes}", f"--nproc-per-node={processes}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={head}:{RENDEZVOUS_PORT}", f"--rdzv-id={job_id}", *module]


def slurm_nodes(job: str, nodes: int) -> tuple[str, str]:
    """(first node, job id) of the SLURM allocation this job runs in, which must have `nodes` nodes."""
    have = int(os.environ.get("SLURM_JOB_NUM_NODES") or os.environ.get("SLURM_NNODES") or 0)
    if have < nodes:
        raise RuntimeError(f"{job}: the model trains on {nodes} nodes but the job runs on {have or 'no SLURM allocation'}"
                           f" ({'SLURM_JOB_NUM_NODES=' + str(have) if have else 'not under SLURM'}); submit it with "
                           f"the slurm profile (resources nodes={nodes})")
    hosts = subprocess.run(["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]], check=True,
                           capture_output=True, text=True).stdout.split()
    return hosts[0], os.environ.get("SLURM_JOB_ID", "0")


def run(spec: dict, processes: int, threads: int, gpus: int = 0, job: str = "training", nodes: int = 1) -> dict | None:
    """Train `spec` in this process (`processes` 1 on one node, returns train_cell's summary) or in `processes`
    processes per node under torchrun on `nodes` nodes (returns None: the summary is in the run.json process 0
    wrote). `gpus` is what the job asked for per node; fewer visible GPUs fail the job before anything loads."""
    check_visible_gpus(gpus, job)
    if processes <= 1 and nodes <= 1:
        import torch

        from forgetbench.training.run import train_cell

        torch.set_num_threads(threads)
        return train_cell(**spec)
    env = {"OMP_NUM_THREADS": str(max(1, threads // processes)), "PYTHONPATH": checkout_pythonpath()}
    head, job_id = slurm_nodes(job, nodes) if nodes > 1 else (None, "0")
    command = torchrun_command(processes, nodes, head, job_id)
    where = f"{processes} processes" + (f" on each of {nodes} nodes" if nodes > 1 else "")
    print(f"starting {where}: {' '.join(command)} SPEC.json", flush=True)
    run_with_spec(command, spec, env, f"training under torchrun ({where}) failed with exit code "
                                      f"{{code}} (the failing process's traceback is above)",
                  spec_dir=Path(spec["out_run"]).parent if nodes > 1 else None)
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
