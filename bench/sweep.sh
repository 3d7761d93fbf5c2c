#!/usr/bin/env bash
# A sweep on a GPU machine, with its record: `t2s-fast sweep` trains the config's variants under one dollar cap,
# evaluates every adapter (and checkpoint) on the held-out set in one engine, chooses, and reports the choice on
# Spider dev. Re-running the same command resumes (finished variants are skipped).
#
#   bash bench/sweep.sh CONFIG OUT_DIR [t2s-fast sweep flags ...]
#   e.g. bash bench/sweep.sh configs/sweep/stage1-qwen2.5-coder-0.5b.json runs/sweep-stage1 --parallel 3 --devices 0,1
#
# OUT_DIR gets the sweep's own files (sweep.json, sweep.md, ex_vs_cost.png, runs/, eval/) plus device.txt,
# versions.json, commands.sh (the command, with its start time) and sweep.log.
set -euo pipefail
CONFIG=${1:?usage: bash bench/sweep.sh CONFIG OUT_DIR [t2s-fast sweep flags ...]}; OUT=${2:?OUT_DIR missing}; shift 2
# NCCL's NVLink multicast (NVLS) must stay off on shared multi-GPU hosts.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
    || echo "no GPU: $(uname -m), $(getconf _NPROCESSORS_ONLN) CPU cores"; } > "$OUT/device.txt"
"$PY" -m t2s_fast.runinfo "$OUT/versions.json"
cmd=("$PY" -m t2s_fast sweep --config "$CONFIG" --out-dir "$OUT" "$@")
printf '# %s\n%s\n' "$(date -u +%FT%TZ)" "$(printf '%q ' "${cmd[@]}")" >> "$OUT/commands.sh"
"${cmd[@]}" 2>&1 | tee -a "$OUT/sweep.log"
