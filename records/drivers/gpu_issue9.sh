#!/usr/bin/env bash
# Issue 9 (and issue 6's maximum context): one-step profiles, the maximum trainable context per backend, and
# the packing cross-attention test through Unsloth. ~8 min on a warm H200 (+~90 s setup).
#   bash bench/gpu_issue9.sh             (writes $OUT/bench/results/*.json and $OUT/logs/)
set -euo pipefail
source "$(dirname "$0")/gpu_setup.sh"
W=/tmp/t2s-issue9-work; rm -rf "$W"; mkdir -p "$W"
python3 - <<'PY'
import json, random
src = [l for l in open(".gpu/data/stage1_train.jsonl") if l.strip()]
random.Random(3407).shuffle(src)
open("/tmp/t2s-issue9-work/sample.jsonl", "w").writelines(src[:600])
PY
train=(--model-name "$T2S_MODEL" --train-file "$W/sample.jsonl" --max-seq-length 3072 --packing --save-steps 100000)

# Order: issue 6's maximum context first, then issue 9's profiles, then the Unsloth packing test on the GPU
# (the HF packing test runs in the CPU suite), so a run cut at the 10-minute limit loses the least.
# 3) Largest --max-seq-length at batch 1, each backend at its least-memory checkpointing; 1 step per probe;
#    doubling from 32768 up to Qwen3-8B's max_position_embeddings (40960).
for b in unsloth hf; do  # one result file per backend, so a time-out of one keeps the other
  timeout 150 python3 -m t2s_fast bench max-context --model-name "$T2S_MODEL" --backend $b --tag $b \
    --start 32768 --resolution 4096 --probe-steps 1 --timeout-s 110 --out-dir "$OUT/bench/results" \
    --work-dir "$W/maxctx" > "$OUT/logs/max-context-$b.log" 2>&1 || echo "max-context $b exited $?"
done
# 2) One-step profiles (step 3 of 4): the automatic choice, and Unsloth's defaults with cuDNN SDPA.
timeout 120 python3 -m t2s_fast bench profile --label unsloth-auto-packed --out-dir "$OUT/bench/results" -- \
  "${train[@]}" --output-dir "$W/prof-auto" --backend unsloth > "$OUT/logs/profile-auto.log" 2>&1 || echo "profile auto exited $?"
timeout 120 python3 -m t2s_fast bench profile --label unsloth-defaults-packed --out-dir "$OUT/bench/results" -- \
  "${train[@]}" --output-dir "$W/prof-defaults" --backend unsloth --per-device-train-batch-size 8 \
  --gradient-accumulation-steps 1 --gradient-checkpointing unsloth --attention sdpa > "$OUT/logs/profile-defaults.log" 2>&1 || echo "profile defaults exited $?"

# 1) Packing cross-attention test on the GPU: both backends (HF: 4-bit, bf16 compute; Unsloth: bf16) on a tiny
#    model: the per-example losses of a packed batch equal the same examples run one by one.
if python3 -c "import pytest" 2>/dev/null; then
  if [ ! -e ../shared/assets/qwen3-8b-config ]; then mkdir -p ../shared/assets
    ln -sfn "$PWD/.gpu/qwen3-8b-config" ../shared/assets/qwen3-8b-config
    ln -sfn "$PWD/.gpu/qwen3-tokenizer" ../shared/assets/qwen3-tokenizer; fi
  # Unsloth must be imported before trl/transformers/peft in its process: its test runs in a pytest of its own
  timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_packing.py -k unsloth 2>&1 | tail -15 | tee "$OUT/logs/packing_test_unsloth.txt" || true
else
  echo "pytest not installed on this machine: packing test skipped" | tee "$OUT/logs/packing_test.txt"
fi

find "$W/maxctx" -name probe.log | while read -r f; do cp "$f" "$OUT/logs/maxctx-$(basename "$(dirname "$f")").log"; done 2>/dev/null || true
tail -3 "$OUT"/logs/max-context-*.log; ls -la "$OUT/bench/results"
