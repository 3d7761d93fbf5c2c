#!/usr/bin/env bash
# Issue 9, attempt 3: torch's varlen flash kernel for Unsloth's packed rows (one call per layer instead of one
# SDPA call per packed example), now `t2s-fast train`'s automatic choice for packed Unsloth runs.
# One run, side by side: the automatic choice (varlen), the previous automatic choice (--attention
# sdpa-no-cudnn), Unsloth's defaults and the transformers+PEFT+bitsandbytes baseline; then the correctness
# checks on the GPU and a one-step profile of the new choice. ~8 min on a fresh H200 (setup included).
#   bash bench/gpu_issue9_varlen.sh      (writes $OUT/bench/results/*.json and $OUT/logs/)
set -euo pipefail
source "$(dirname "$0")/gpu_setup.sh"
W=/tmp/t2s-varlen-work; rm -rf "$W"; mkdir -p "$W"
if [ ! -e ../shared/assets/qwen3-8b-config ]; then mkdir -p ../shared/assets
  ln -sfn "$PWD/.gpu/qwen3-8b-config" ../shared/assets/qwen3-8b-config
  ln -sfn "$PWD/.gpu/qwen3-tokenizer" ../shared/assets/qwen3-tokenizer; fi
have_pytest=0; python3 -c "import pytest" 2>/dev/null && have_pytest=1

# 1) The kernel itself: outputs and gradients of the shimmed varlen call = per-example SDPA (bf16, GQA 32/8).
if [ $have_pytest = 1 ]; then
  timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_packing.py -k "shim or segments or varlen_kernel" 2>&1 | tail -5 | tee "$OUT/logs/test_torch_varlen.txt" || true
fi

# 2) Throughput, same settings as bench/gpu_bench_train.sh's packed rows (2 warm-up + 3 measured steps,
#    8 packed rows x 3072 tokens, real stage-1 data).
python3 -m t2s_fast bench train --model-name "$T2S_MODEL" --data "$T2S_DATA" --max-seq-length 3072 --max-examples 1000 \
  --warmup-steps 2 --steps 3 --out-dir "$OUT/bench/results" --gpu-hourly-usd 3.44 \
  --packing --tag packed-varlen --timeout-s 170 \
  --per-device-train-batch-size 0 --gradient-accumulation-steps 0 --backends "" \
  --variant "unsloth-auto=unsloth" \
  --variant "unsloth-sdpa-no-cudnn=unsloth --attention sdpa-no-cudnn" \
  --variant "unsloth-defaults=unsloth --per-device-train-batch-size 8 --gradient-accumulation-steps 1 --gradient-checkpointing unsloth --attention sdpa" \
  --variant "hf=hf --per-device-train-batch-size 8 --gradient-accumulation-steps 1 --gradient-checkpointing plain --attention sdpa" \
  --work-dir "$W/packed" || echo "packed bench exited $?"
for r in "$W"/packed/*/; do n=$(basename "$r")
  [ -f "$r/run.json" ] && cp "$r/run.json" "$OUT/logs/$n-run.json"
  [ -f "$r/train_log.jsonl" ] && cp "$r/train_log.jsonl" "$OUT/logs/$n-train_log.jsonl"; done
cp "$W"/packed/*.log "$OUT/logs/" 2>/dev/null || true

# 3) Packed examples cannot see each other through Unsloth, with and without the varlen kernel.
if [ $have_pytest = 1 ]; then
  timeout 110 python3 -m pytest -q -p no:cacheprovider tests/test_packing.py -k unsloth 2>&1 | tail -8 | tee "$OUT/logs/packing_test_unsloth.txt" || true
fi

# 4) One-step profile of the new automatic choice (step 3 of 4), for bench/NOTES.md's breakdown table.
python3 - <<'PY'
import json, random
src = [l for l in open(".gpu/data/stage1_train.jsonl") if l.strip()]
random.Random(3407).shuffle(src)
open("/tmp/t2s-varlen-work/sample.jsonl", "w").writelines(src[:600])
PY
timeout 100 python3 -m t2s_fast bench profile --label unsloth-auto-varlen-packed --out-dir "$OUT/bench/results" -- \
  --model-name "$T2S_MODEL" --train-file "$W/sample.jsonl" --max-seq-length 3072 --packing --save-steps 100000 \
  --output-dir "$W/prof-varlen" --backend unsloth > "$OUT/logs/profile-varlen.log" 2>&1 || echo "profile varlen exited $?"
ls -la "$OUT/bench/results"
