#!/usr/bin/env bash
# Run by snakemake --use-conda inside the new envs/vllm-cuda.yaml environment.
set -euo pipefail
bash "$(dirname "$0")/install_vllm.sh" "$(command -v python)" cuda
