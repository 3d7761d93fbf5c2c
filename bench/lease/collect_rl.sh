#!/usr/bin/env bash
# On the GPU machine: pack what bench/rl_real_model.sh has written so far into $OUT/rl-results.tgz (logs, run.json,
# train logs, curves, filter summaries, reports, per-question files; no weights, no optimizer states, no caches),
# so that a lease cut short still brings back what finished.   usage: bash bench/lease/collect_rl.sh WORK_DIR
set -uo pipefail
B=${1:?work dir}; OUT=${OUT:?}
for f in "$B"/*/scored.jsonl; do [ -f "$f" ] && gzip -kf "$f"; done
tar -C "$B" -czf "$OUT/rl-results.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.pth' \
  --exclude='*.bin' --exclude='vllm-cache' --exclude='.t2s_model_cache' --exclude='shape-adapter' \
  --exclude='*/scored.jsonl' --exclude='*/checkpoints/*/tokenizer*' --exclude='*/adapter/tokenizer*' . 2>/dev/null
ls -la "$OUT"
