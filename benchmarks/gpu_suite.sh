#!/usr/bin/env bash
# GPU benchmark suite, run from the repository root on a machine with one CUDA GPU and no network:
#
#     OUT=/some/folder bash benchmarks/gpu_suite.sh
#     SUITE_MODE=lora OUT=/some/folder bash benchmarks/gpu_suite.sh     # LoRA against full fine-tuning only
#     SUITE_MODE=lora-3b OUT=/some/folder bash benchmarks/gpu_suite.sh  # the same at a 3B shape (fits 80 GB)
#
# Needs beside the git working tree (git-ignored, carried): .whl/ (lm_eval 0.4.13 and the dependencies the GPU
# image lacks, peft 0.21.2, transformers 5.23.0) and benchmarks/gpu_assets/ (SmolLM2-135M's config and
# tokenizer, optionally gemma3-270m's, and the medcalc-synth train/test JSONL written where medcalc-bench is
# installed). Models are built with random weights from their config: throughput does not depend on the weights.
#
# Sections, each under its own `timeout`, each allowed to fail without stopping the rest; the whole suite stays
# under SUITE_BUDGET_S seconds (default 450) by shrinking or skipping the optional sections at the end.
# Writes to $OUT (flat, at most 7 files): log.txt, train_smollm2_bf16.json, eval_smollm2_fp32.json and where time
# allows train_smollm2_fp32.json, eval_smollm2_bf16.json, train_gemma_bf16.json, plus summary.txt.

OUT=${OUT:-benchmarks/out/gpu}
mkdir -p "$OUT"
BUDGET=${SUITE_BUDGET_S:-450}
ASSETS=benchmarks/gpu_assets
SMOL=$ASSETS/smollm2-135m
GEMMA=$ASSETS/gemma3-270m
TRAIN=$ASSETS/medcalc_train.jsonl
TEST=$ASSETS/medcalc_test.jsonl
# Overridable for a dry run on CPU with tiny sizes (see the end of this file); the defaults are the GPU run.
PY=${SUITE_PYTHON:-python3}
SITE=${SUITE_SITE:-/tmp/site}
DEVICE=${SUITE_DEVICE:-cuda}
TRAIN_SIZE=${SUITE_TRAIN_SIZE:---batch 8 --seq 512 --format cot --steps 10 --threads 8}
EVAL_SIZE=${SUITE_EVAL_SIZE:---format cot --limit 128 --batch-size 32 --threads 8}
MODEL_EXTRA=${SUITE_MODEL_EXTRA:-}      # e.g. --num-layers 1
PIP_EXTRA=${SUITE_PIP_EXTRA:-}          # e.g. --python-version 3.12 where the local python is another
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}
STATUS=()

# section NAME MAX_SECONDS MIN_SECONDS CMD...: run CMD under timeout min(MAX, what is left of the budget minus a
# 15 s reserve); skipped when less than MIN_SECONDS would be left.
section() {
    local name=$1 max=$(($2 * ${SUITE_TIMEOUT_SCALE:-1})) min=$3; shift 3
    local left=$((BUDGET - SECONDS - 15)) t rc
    t=$((max < left ? max : left))
    echo
    echo "=================== $name (timeout ${t}s, ${SECONDS}s elapsed) ==================="
    if ((t < min)); then
        echo "SKIPPED: ${left}s left of the ${BUDGET}s budget"
        STATUS+=("$name: skipped (no time)")
        return 0
    fi
    local start=$SECONDS
    # a new bash runs the (exported) function; timeout signals its whole process group, python children included
    timeout --kill-after=10 "$t" bash -c '"$@"' _ "$@"
    rc=$?
    case $rc in
        0) STATUS+=("$name: ok ($((SECONDS - start))s)") ;;
        124 | 137) STATUS+=("$name: TIMEOUT after ${t}s") ;;
        *) STATUS+=("$name: FAILED rc=$rc ($((SECONDS - start))s)") ;;
    esac
    return 0
}

install_wheels() {
    ls .whl/*.whl >/dev/null || return 1
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" $PIP_EXTRA .whl/*.whl
}

environment() {
    nvidia-smi || echo "nvidia-smi failed (rc $?)"
    $PY - <<'EOF'
import importlib.metadata as md, sys
print("python", sys.version.split()[0], sys.executable)
for name in ["torch", "transformers", "accelerate", "peft", "lm_eval", "datasets", "evaluate", "huggingface_hub",
             "tokenizers", "safetensors", "pyarrow", "fsspec", "pandas", "numpy", "regex", "vllm"]:
    try:
        print(f"{name:16s} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name:16s} not installed")
import torch
print("cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
import transformers, peft, lm_eval, datasets
print("imported from:", transformers.__file__, peft.__file__, lm_eval.__file__, datasets.__file__, sep="\n  ")
EOF
}

train() {  # train LABEL JSON DTYPE METHODS... (extra options through TRAIN_EXTRA)
    local label=$1 json=$2 dtype=$3; shift 3
    $PY benchmarks/train_throughput.py --random-init "$MODEL" $MODEL_EXTRA --train-jsonl "$TRAIN" --device "$DEVICE" \
        --precision "$([[ $dtype == bfloat16 ]] && echo bf16-mixed || echo fp32)" $TRAIN_SIZE --timeout "${METHOD_TIMEOUT:-75}" --methods "$@" --label "$label" --json "$OUT/$json"
}

evaluate_hf() {  # evaluate_hf LABEL JSON DTYPE
    $PY benchmarks/eval_throughput.py --random-init "$SMOL" $MODEL_EXTRA --dtype "$3" --domain-test "$TEST" \
        --device "$DEVICE" $EVAL_SIZE --backends hf vllm --timeout "${EVAL_TIMEOUT:-170}" --label "$1" --json "$OUT/$2"
}

main() {
    echo "gpu_suite: device $DEVICE, $(date -u +%FT%TZ), repo $(git rev-parse --short HEAD 2>/dev/null) $(git status --short 2>/dev/null | wc -l) changed files, OUT=$OUT, budget ${BUDGET}s"
    du -sh .whl "$ASSETS" 2>/dev/null
    section "install wheels" 150 20 install_wheels && [[ ${STATUS[-1]} == *ok* ]] && export PYTHONPATH=$SITE:$PYTHONPATH
    echo "PYTHONPATH=$PYTHONPATH"
    section "environment" 60 10 environment

    export MODEL=$SMOL
    case ${SUITE_MODE:-all} in
        lora) lora_sections ;;
        lora-3b) lora_3b_sections ;;
        *) all_sections ;;
    esac

    echo
    echo "=================== summary (${SECONDS}s) ==================="
    printf '%s\n' "${STATUS[@]}" | tee "$OUT/summary.txt"
    ls -la "$OUT"
}

# Is LoRA faster than full fine-tuning where the GPU is busy? At 135M and 4k tokens a step both are bound by
# the host launching kernels (MFU 2-3 %), and LoRA launches more. SmolLM2-1.7B's shape (random weights) and a
# 4x larger batch are the compute-bound checks; lora:dropout=0 shows what the adapter's input dropout costs.
lora_sections() {
    section "train smollm2 bf16 (sft, lora, lora without dropout)" 110 45 train "smollm2-135m bf16" \
        train_smollm2_bf16.json bfloat16 sft lora lora:dropout=0
    TRAIN_SIZE="--batch 32 --seq 512 --format cot --steps 10 --threads 8" section "train smollm2 bf16 batch 32" \
        110 45 train "smollm2-135m bf16, batch 32" train_smollm2_bf16_b32.json bfloat16 sft lora
    MODEL_EXTRA="$MODEL_EXTRA --set hidden_size=2048 intermediate_size=8192 num_hidden_layers=24 \
        num_attention_heads=32 num_key_value_heads=32" METHOD_TIMEOUT=150 section "train smollm2-1.7b shape bf16" \
        330 120 train "smollm2-1.7b shape bf16" train_smollm2_1.7b_bf16.json bfloat16 sft lora
}

# Llama-3.2-3B's shape (28 layers of 3072, grouped-query attention 24/8, MLP 8192) over SmolLM2's vocabulary: 3.0B
# parameters, the size where a full step (about 0.3 s expected at 19 % MFU) should outlast LoRA's host-bound
# 0.2 s. Full fine-tuning with AdamW and float32 weights needs about 48 GB plus activations at batch 8 x 512.
lora_3b_sections() {
    MODEL_EXTRA="$MODEL_EXTRA --set hidden_size=3072 intermediate_size=8192 num_hidden_layers=28 \
        num_attention_heads=24 num_key_value_heads=8" METHOD_TIMEOUT=200 section "train 3b shape bf16 (sft, lora)" \
        430 150 train "llama-3.2-3b shape bf16" train_3b_bf16.json bfloat16 sft lora lora:dropout=0
}

all_sections() {
    section "train smollm2 bf16 (all methods)" 260 60 train "smollm2-135m bf16" train_smollm2_bf16.json bfloat16 \
        sft lora l2 talr dft flow hft
    section "eval smollm2 hf fp32" 190 60 evaluate_hf "smollm2-135m fp32 (the workflow's dtype)" eval_smollm2_fp32.json float32
    section "train smollm2 fp32 (sft, lora)" 100 45 train "smollm2-135m fp32" train_smollm2_fp32.json float32 sft lora
    if [[ -f $GEMMA/config.json ]]; then
        export MODEL=$GEMMA
        section "train gemma3 bf16 (sft, lora)" 120 50 train "gemma3-270m bf16" train_gemma_bf16.json bfloat16 sft lora
    else
        echo; echo "gemma3-270m: no assets at $GEMMA, skipped"
        STATUS+=("train gemma3: skipped (no assets)")
    fi
    section "eval smollm2 hf bf16" 120 50 evaluate_hf "smollm2-135m bf16" eval_smollm2_bf16.json bfloat16
}

export OUT ASSETS SMOL GEMMA TRAIN TEST
export PY SITE DEVICE TRAIN_SIZE EVAL_SIZE MODEL_EXTRA PIP_EXTRA METHOD_TIMEOUT EVAL_TIMEOUT
export -f install_wheels environment train evaluate_hf lora_sections lora_3b_sections all_sections section
set -o pipefail
main 2>&1 | tee "$OUT/log.txt"

# Dry run on a CPU machine (what was checked before the GPU run), e.g.:
#   SUITE_DEVICE=cpu SUITE_SITE=/tmp/site_test SUITE_PIP_EXTRA="--python-version 3.12" SUITE_MODEL_EXTRA="--num-layers 1" \
#   SUITE_TRAIN_SIZE="--batch 1 --seq 192 --format label --steps 2 --threads 2" \
#   SUITE_EVAL_SIZE="--format label --limit 2 --batch-size 2 --max-gen-toks 4 --threads 2" SUITE_BUDGET_S=3000 \
#   SUITE_TIMEOUT_SCALE=5 METHOD_TIMEOUT=300 EVAL_TIMEOUT=600 OUT=/tmp/suite_dry bash benchmarks/gpu_suite.sh
