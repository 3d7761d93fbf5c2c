#!/usr/bin/env bash
# Issue 6: the runbook's settings WITH packing (micro-batch 2 packed rows of up to 3072 tokens, each backend at
# its default checkpointing), Unsloth against the transformers+PEFT+bitsandbytes baseline, side by side.
# Accumulation 4 instead of the runbook's 16, as in gpu_bench_train.sh (tokens/s does not depend on it).
set -euo pipefail
source "$(dirname "$0")/gpu_setup.sh"
W=/tmp/t2s-bench-work; mkdir -p "$W"
python3 -m t2s_fast bench train --model-name "$T2S_MODEL" --data "$T2S_DATA" --max-seq-length 3072 --max-examples 1000 \
  --warmup-steps 2 --steps 3 --out-dir "$OUT/bench/results" --gpu-hourly-usd 3.44 --packing --tag runbook-packed \
  --timeout-s 170 --per-device-train-batch-size 2 --gradient-accumulation-steps 4 --backends "" \
  --variant "unsloth=unsloth --gradient-checkpointing unsloth" \
  --variant "hf=hf --gradient-checkpointing plain" \
  --work-dir "$W/runbook-packed" || echo "runbook-packed bench exited $?"
ls -la "$OUT/bench/results"
