"""A child process that runs one of forgetbench's entry-point modules on a JSON spec (an evaluation in the vLLM
environment, the processes of a multi-GPU training job), with this checkout's forgetbench importable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WORKFLOW = Path(__file__).resolve().parents[1]  # the folder that holds the forgetbench package


def checkout_pythonpath() -> str:
    """PYTHONPATH with this checkout's forgetbench first, whatever the child's interpreter has installed."""
    return os.pathsep.join(filter(None, [str(WORKFLOW), os.environ.get("PYTHONPATH")]))


def run_with_spec(command: list[str], spec: dict, env: dict[str, str], failure: str, spec_dir=None) -> None:
    """Run `command SPEC.json` (SPEC holding `spec`, in `spec_dir` where other nodes must read it, else the temp
    folder) with `env` on top of this environment; its output goes where this process's goes (the job's log).
    A non-zero exit raises RuntimeError: `failure` and the exit code."""
    if spec_dir is not None:
        Path(spec_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="forgetbench-spec-", delete=False, dir=spec_dir) as f:
        json.dump(spec, f)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        done = subprocess.run([*command, f.name], env={**os.environ, **env}, check=False)
    finally:
        Path(f.name).unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(failure.format(code=done.returncode))
