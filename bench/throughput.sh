#!/usr/bin/env bash
# Training throughput: `t2s-fast train`'s automatic setup against Unsloth's defaults and the
# transformers+PEFT+bitsandbytes baseline, packed and at the runbook's padded settings, each in its own process on
# the same batches. ~7 min on a warm H200 for the Qwen3-8B shape.
#
#   bash bench/throughput.sh MODEL TRAIN_FILE OUT_DIR
#
#   MODEL       what `train --model-name` takes (for speed alone, the random-init Qwen3-8B folder that
#               bench/lease/setup.sh makes: `source bench/lease/setup.sh && bash bench/throughput.sh "$T2S_MODEL" "$T2S_DATA" "$OUT/bench"`)
#   TRAIN_FILE  a prepared stage1_train.jsonl
#   OUT_DIR     result JSON files (render them: python -m t2s_fast.benchmarks.readme OUT_DIR) and logs/
#
# Lean settings: 2 warm-up + 3 measured optimizer steps per row; the packed rows use 8 packed rows x 3072 tokens
# per step (~24.6k tokens, accumulation 1); the padded rows use the runbook's micro-batch 2 with accumulation 4
# instead of 16 (tokens/s does not depend on the accumulation; only the optimizer's share of a step shrinks, so
# the runbook's real figure is if anything a little higher).
set -euo pipefail
MODEL=${1:?usage: bash bench/throughput.sh MODEL TRAIN_FILE OUT_DIR}; DATA=${2:?TRAIN_FILE missing}
OUT=${3:?OUT_DIR missing}
W=$(mktemp -d /tmp/t2s-throughput.XXXX); mkdir -p "$OUT/logs"
common=(--model-name "$MODEL" --data "$DATA" --max-seq-length 3072 --max-examples 1000
        --warmup-steps 2 --steps 3 --out-dir "$OUT" --gpu-hourly-usd 3.44)

# 1) Packed (padding-free): `t2s-fast train`'s automatic choice, Unsloth's defaults
#    (offloaded checkpointing, cuDNN SDPA on) and the baseline, each at 8 packed rows.
python3 -m t2s_fast bench train "${common[@]}" --packing --tag packed --timeout-s 200 \
  --per-device-train-batch-size 0 --gradient-accumulation-steps 0 --backends "" \
  --variant "unsloth-auto=unsloth" \
  --variant "unsloth-defaults=unsloth --per-device-train-batch-size 8 --gradient-accumulation-steps 1 --gradient-checkpointing unsloth --attention sdpa" \
  --variant "hf=hf --per-device-train-batch-size 8 --gradient-accumulation-steps 1 --gradient-checkpointing plain --attention sdpa" \
  --work-dir "$W/packed" || echo "packed bench exited $?"

# 2) The runbook's padded batches (micro-batch 2), each backend at its default checkpointing.
python3 -m t2s_fast bench train "${common[@]}" --no-packing --tag runbook-padded --timeout-s 150 \
  --per-device-train-batch-size 2 --gradient-accumulation-steps 4 --backends "" \
  --variant "unsloth=unsloth --gradient-checkpointing unsloth" \
  --variant "hf=hf --gradient-checkpointing plain" \
  --work-dir "$W/padded" || echo "padded bench exited $?"

# Logs and per-step records (not the adapters).
for d in "$W"/*/; do n=$(basename "$d"); mkdir -p "$OUT/logs/$n"
  cp "$d"/*.log "$OUT/logs/$n/" 2>/dev/null || true
  for r in "$d"*/; do [ -f "$r/run.json" ] && cp "$r/run.json" "$OUT/logs/$n/$(basename "$r")-run.json"; \
    [ -f "$r/train_log.jsonl" ] && cp "$r/train_log.jsonl" "$OUT/logs/$n/$(basename "$r")-train_log.jsonl"; done
done
ls -la "$OUT"
