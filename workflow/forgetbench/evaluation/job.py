"""One evaluation job run in the interpreter of its backend: in the calling process for transformers, in the
vLLM environment's python for vLLM (a fresh process, so the main environment's packages never mix with vLLM's
and vLLM's engine processes start from a proper `__main__`).

    python -m forgetbench.evaluation.job SPEC.json      # what `run` starts; SPEC holds evaluate()'s arguments

The spec is {"kwargs": evaluate()'s keyword arguments, "extra": what is written beside the metrics,
"provenance": the cell config recorded with the package versions of the process that evaluates}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def evaluate_spec(spec: dict) -> dict:
    from forgetbench.evaluation.runner import evaluate
    from forgetbench.provenance import provenance

    extra = {**spec.get("extra", {}), **provenance(spec["provenance"])}
    return evaluate(**spec["kwargs"], extra=extra)


def run(spec: dict, python: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> None:
    """Evaluate `spec` here (`python` None) or in a child process of `python` with `env` added to its
    environment; the child's output goes where this process's goes (the job's log)."""
    if python is None:
        evaluate_spec(spec)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="forgetbench-eval-", delete=False) as f:
        json.dump(spec, f)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        done = subprocess.run([str(python), "-m", "forgetbench.evaluation.job", f.name],
                              env={**os.environ, **(env or {})}, check=False)
    finally:
        Path(f.name).unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"evaluation in {python} failed with exit code {done.returncode} (its traceback is above)")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    evaluate_spec(json.loads(Path(argv[0]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
