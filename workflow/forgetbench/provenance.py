"""What every result file carries so it can be traced: package versions, the git commit of the code, and the
machine (its CPU, and its GPU where the job used one): the same default gives other figures on another CPU, whose
bf16 kernels round differently (README, "What the default shows"), so a figure is compared within one machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

PACKAGES = ("forgetbench", "torch", "transformers", "peft", "accelerate", "datasets", "lm_eval", "vllm", "snakemake")


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD of the repository holding this package, with '-dirty' when tracked files differ from it."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# The CPU features that decide how bf16 and float32 matrix products are computed (and so rounded) on a CPU.
MATMUL_FEATURES = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


@lru_cache(maxsize=1)
def cpu_facts(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """The CPU's model name, family/model/stepping and its matmul features, from /proc/cpuinfo (Linux; elsewhere
    platform's processor string)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    first = dict(line.split(":", 1) for line in text.split("\n\n")[0].splitlines() if ":" in line)
    first = {k.strip(): v.strip() for k, v in first.items()}
    flags = set(first.get("flags", "").split())
    return {"cpu": first.get("model name", platform.machine()),
            "cpu_id": "/".join(first.get(k, "?") for k in ("cpu family", "model", "stepping")),
            "cpu_features": [f for f in MATMUL_FEATURES if f in flags], "cores": os.cpu_count()}


def machine() -> dict:
    """Where the job ran: the CPU, and the GPU where torch is loaded and sees one."""
    facts = dict(cpu_facts())
    torch = sys.modules.get("torch")  # only a job that has loaded torch asks: this module never imports it
    if torch is not None and torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def provenance(cell_config: dict) -> dict:
    return {"config": cell_config, "packages": package_versions(), "git_commit": git_commit(), "machine": machine()}


def method_version(method_class) -> str:
    """A method's version stamp: the class's `version` and a hash of its file, so that editing talr.py reruns
    the talr cells only."""
    return f"{method_class.version}+{code_stamp(method_class.__module__)}"


@lru_cache(maxsize=None)
def code_stamp(*modules: str) -> str:
    """A short hash of the source of these forgetbench modules, read without importing them (or their packages).
    Rules take it as a param, so Snakemake reruns exactly the jobs whose code changed (its own code trigger
    sees only the rule's script). Cached: the workflow asks for it once per job while it builds the DAG."""
    import hashlib

    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for module in modules:
        top, *parts = module.split(".")
        candidates = [package.joinpath(*parts).with_suffix(".py"), package.joinpath(*parts, "__init__.py")]
        source = next((c for c in candidates if top == "forgetbench" and parts and c.is_file()), None)
        if source is None:
            raise ValueError(f"code_stamp: '{module}' is not a module of the forgetbench package")
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]
