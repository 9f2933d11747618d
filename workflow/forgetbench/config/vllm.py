"""The vLLM environment a config's vLLM evaluations need, checked at parse time: without it every evaluation job
would fail after training (forgetbench.evaluation.vllm_env says where it is looked for).
"""

from __future__ import annotations

from forgetbench.errors import ConfigError
from forgetbench.evaluation.vllm_env import INSTALL_COMMAND, PYTHON_VARIABLE, installed_vllm_version, vllm_python


def check_vllm_environment(where: str, models: list[str]) -> str:
    """The vLLM environment's version; ConfigError in one line naming the install command where there is none."""
    python = vllm_python()
    who = f"models {', '.join(models)}" if len(models) > 1 else f"model {models[0]}"
    if not python.exists():
        raise ConfigError(
            f"{where}: evaluation.backend: vLLM evaluates {who}, but there is no vLLM environment ({python} not "
            f"found): run `{INSTALL_COMMAND}`, set ${PYTHON_VARIABLE} to its python, use --use-conda, or set "
            f"backend: hf"
        )
    version = installed_vllm_version(str(python))
    if version is None:
        raise ConfigError(
            f"{where}: evaluation.backend: vLLM evaluates {who}, but {python} has no vllm package: run "
            f"`{INSTALL_COMMAND}` (or set backend: hf)"
        )
    return version
