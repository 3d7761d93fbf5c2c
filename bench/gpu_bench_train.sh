#!/usr/bin/env bash
# Issues 6 + 9: Unsloth vs the transformers+PEFT+bitsandbytes baseline, packed and at the runbook's padded
# settings, on the Qwen3-8B shape with real prepared stage-1 data. ~7 min on a warm H200 (+~90 s setup).
#   bash bench/gpu_bench_train.sh        (writes $OUT/bench/results/*.json and $OUT/logs/)
#
# Lean settings (documented in bench/README.md): 2 warm-up + 3 measured optimizer steps per row; the packed
# rows use 8 packed rows x 3072 tokens per step (~24.6k tokens, accumulation 1); the padded rows use the
# runbook's micro-batch 2 with accumulation 4 instead of 16 (tokens/s does not depend on the accumulation;
# only the optimizer's share of a step shrinks, so the runbook's real figure is if anything a little higher).
set -euo pipefail
source "$(dirname "$0")/gpu_setup.sh"
W=/tmp/t2s-bench-work; rm -rf "$W"; mkdir -p "$W"
common=(--model-name "$T2S_MODEL" --data "$T2S_DATA" --max-seq-length 3072 --max-examples 1000
        --warmup-steps 2 --steps 3 --out-dir "$OUT/bench/results" --gpu-hourly-usd 3.44)

# 1) Packed (padding-free), the issue-9 setting: `t2s-fast train`'s automatic choice, Unsloth's defaults
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

# Logs and per-step records (not the adapters) for bench/NOTES.md.
for d in "$W"/*/; do n=$(basename "$d"); mkdir -p "$OUT/logs/$n"
  cp "$d"/*.log "$OUT/logs/$n/" 2>/dev/null || true
  for r in "$d"*/; do [ -f "$r/run.json" ] && cp "$r/run.json" "$OUT/logs/$n/$(basename "$r")-run.json"; \
    [ -f "$r/train_log.jsonl" ] && cp "$r/train_log.jsonl" "$OUT/logs/$n/$(basename "$r")-train_log.jsonl"; done
done
ls -la "$OUT/bench/results"
