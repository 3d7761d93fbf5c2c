#!/usr/bin/env bash
# A rented GPU machine's setup for the bench/ drivers (idempotent; ~90 s the first time on a fresh machine, ~5 s
# after): installs the carried wheels into /tmp/site, materializes the random-init Qwen3-8B at $T2S_MODEL, and
# sets T2S_DATA and OUT.
#   source bench/lease/setup.sh && bash bench/throughput.sh "$T2S_MODEL" "$T2S_DATA" "$OUT/bench"
# Expects (carried with the working tree): .whl/*.whl, .gpu/qwen3-8b-config/config.json, .gpu/qwen3-tokenizer/,
# .gpu/data/stage1_train.jsonl (+ stage2_mixed_train.jsonl beside it for the stage-2 cost projection).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [ ! -f /tmp/site/.t2s_installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  touch /tmp/site/.t2s_installed
fi
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 TOKENIZERS_PARALLELISM=false
export OUT=${OUT:-/tmp/t2s-out}
mkdir -p "$OUT/bench" "$OUT/logs"
python3 -c "import click, rich" 2>/dev/null || { echo "ERROR: click and rich are needed by the t2s-fast CLI: add their wheels to .whl/" >&2; exit 3; }
# The random-init Qwen3-8B (exact shape, real tokenizer), materialized once per machine on local disk.
export T2S_MODEL=/tmp/qwen3-8b-random
python3 - <<'PY'
import time
from t2s_fast.models import materialize_random_init
t = time.time()
materialize_random_init(".gpu/qwen3-8b-config/config.json", "/tmp/qwen3-8b-random", tokenizer=".gpu/qwen3-tokenizer", dtype="bfloat16")
print(f"random-init Qwen3-8B ready at /tmp/qwen3-8b-random ({time.time() - t:.0f} s)")
PY
export T2S_DATA=.gpu/data/stage1_train.jsonl
test -f "$T2S_DATA" || { echo "ERROR: $T2S_DATA missing (prepared stage-1 data)" >&2; exit 3; }
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader
