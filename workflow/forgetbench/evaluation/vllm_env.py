"""Where the vLLM evaluation environment is, which vllm it holds, and the process settings of an evaluation
that runs in it (forgetbench.config.vllm checks at parse time that it exists).

vLLM cannot share the main environment (it pins its own torch and transformers; see envs/install_vllm.sh), so
an evaluation with `backend: vllm` runs in the interpreter of that environment: `.venv-vllm/bin/python` in the
checkout (made by `make install-vllm`), or $FORGETBENCH_VLLM_PYTHON. Under `snakemake --use-conda` Snakemake
builds envs/vllm.yaml (CPU) or envs/vllm-cuda.yaml (GPU) instead and the rule already runs in it.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

from forgetbench.child_process import checkout_pythonpath

REPO = Path(__file__).resolve().parents[3]
PYTHON_VARIABLE = "FORGETBENCH_VLLM_PYTHON"
INSTALL_COMMAND = "make install-vllm"


def vllm_python() -> Path:
    """The interpreter of the vLLM environment (not checked)."""
    return Path(os.environ.get(PYTHON_VARIABLE) or REPO / ".venv-vllm" / "bin" / "python")


@functools.lru_cache(maxsize=None)
def installed_vllm_version(python: str) -> str | None:
    """The vllm version installed for `python`, or None; reads package metadata only (no `import vllm`: that
    takes 10-15 s and sets process-wide variables)."""
    code = "import importlib.metadata as m, importlib.util as u; print(m.version('vllm') if u.find_spec('vllm') else '')"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def process_env(threads: int, cpu: bool) -> dict[str, str]:
    """Environment variables of an evaluation process in the vLLM environment, on top of the job's own."""
    env = {
        "PYTHONPATH": checkout_pythonpath(),
        "TOKENIZERS_PARALLELISM": "false",
    }
    if cpu:
        env.update({
            # vLLM's CPU build takes its platform from this (and from its version suffix "+cpu").
            "VLLM_TARGET_DEVICE": "cpu",
            # Without it the KV cache claims most of the host memory and start-up fails with "Available memory
            # ... is less than desired CPU memory utilization" (GiB; 1 holds 23,000 tokens of SmolLM2).
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            # By default vLLM pins its threads to cores it picks itself, which collides with the other jobs
            # Snakemake runs side by side; the job's thread count comes from OMP_NUM_THREADS instead.
            "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind"),
            "OMP_NUM_THREADS": str(threads),
        })
    return env


def evaluation_process(backend: str, threads: int, gpus: int) -> tuple[Path | None, dict[str, str]]:
    """(interpreter, extra environment) of an evaluation job's evaluating process: (None, {}) for transformers,
    which runs in the job's own process; for vLLM this interpreter where it has vLLM (the rule's conda
    environment), else the vLLM environment's."""
    if backend != "vllm":
        return None, {}
    from forgetbench.evaluation.backend import vllm_installed

    python = Path(sys.executable) if vllm_installed() else vllm_python()
    return python, process_env(threads, cpu=gpus == 0)


def vllm_settings(vllm: dict, gpus: int) -> dict:
    """The config's evaluation.vllm for a job with `gpus` GPUs: vLLM shards the model over every GPU the job was
    given, unless the config fixes its tensor parallel size."""
    return {**vllm, "tensor_parallel_size": vllm["tensor_parallel_size"] or max(1, gpus)}
