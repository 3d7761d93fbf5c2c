#!/usr/bin/env bash
# Issue 9: the varlen kernel's GPU test, then 50 optimizer steps of the automatic choice (varlen) and of the
# previous one (--attention sdpa-no-cudnn) on the same seed and data: the loss curves must agree, and 48
# measured steps give a steadier tokens/s than the 3 of gpu_issue9_varlen.sh. ~6 min on a fresh H200.
#   bash bench/gpu_issue9_loss50.sh      (writes $OUT/bench/results/*.json and $OUT/logs/)
set -euo pipefail
source "$(dirname "$0")/gpu_setup.sh"
W=/tmp/t2s-loss50-work; rm -rf "$W"; mkdir -p "$W"
if python3 -c "import pytest" 2>/dev/null; then
  timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_packing.py -k "shim or segments or varlen_kernel" 2>&1 | tail -15 | tee "$OUT/logs/test_torch_varlen.txt" || true
fi
python3 -m t2s_fast bench train --model-name "$T2S_MODEL" --data "$T2S_DATA" --max-seq-length 3072 --max-examples 2000 \
  --warmup-steps 2 --steps 48 --out-dir "$OUT/bench/results" --gpu-hourly-usd 3.44 \
  --packing --tag packed-varlen-50steps --timeout-s 200 \
  --per-device-train-batch-size 0 --gradient-accumulation-steps 0 --backends "" \
  --variant "unsloth-auto=unsloth" \
  --variant "unsloth-sdpa-no-cudnn=unsloth --attention sdpa-no-cudnn" \
  --work-dir "$W/packed" || echo "bench exited $?"
for r in "$W"/packed/*/; do n=$(basename "$r")
  [ -f "$r/run.json" ] && cp "$r/run.json" "$OUT/logs/$n-run.json"
  [ -f "$r/train_log.jsonl" ] && cp "$r/train_log.jsonl" "$OUT/logs/$n-train_log.jsonl"; done
cp "$W"/packed/*.log "$OUT/logs/" 2>/dev/null || true
ls -la "$OUT/bench/results"
