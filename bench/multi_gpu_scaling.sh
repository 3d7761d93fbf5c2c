#!/usr/bin/env bash
# More than one GPU on one host, measured: data-parallel training against one GPU (same data, same global batch,
# same steps), a data-parallel run killed with SIGTERM on one rank and resumed, and the same evaluation on one
# vLLM engine against --data-parallel-size N. Then the report (python -m t2s_fast.benchmarks.scaling).
#
#   bash bench/multi_gpu_scaling.sh MODEL PREPARED_DIR OUT_DIR [PHASE ...]     PHASE: train resume eval report
#
#   MODEL         what `train --model-name` takes: the random-init Qwen3-8B folder bench/lease/setup.sh makes
#                 ($T2S_MODEL), a packaged alias (qwen2.5-coder-0.5b), a hub id; `tiny` with T2S_SMOKE=1
#   PREPARED_DIR  a `t2s-fast prepare` folder (stage1_train.jsonl)
#   OUT_DIR       the work folder: train/<LABEL>/gpus-<n>/, resume/, eval/dp-<k>/, report/
# Environment: NGPUS (default: every visible GPU), STEPS (50), LABEL (the model's name in the report; default the
# MODEL's last path part), SPIDER_DIR (Spider 1.0, for the eval phase), ADAPTER (the eval's adapter; default
# the resume phase's), EVAL_LIMIT (200 questions). Call it once per model with the same OUT_DIR: the report
# puts every model's table and loss curves side by side.
#
# T2S_SMOKE=1 runs the same plumbing on a CPU in a few minutes: the tiny Qwen3 (real tokenizer, random weights,
# from ../shared/assets), 2 gloo processes for "N GPUs", 3 steps, 6 questions through tests/fake_vllm. Its
# figures mean nothing.
set -euo pipefail
MODEL=${1:?usage: bash bench/multi_gpu_scaling.sh MODEL PREPARED_DIR OUT_DIR [PHASE ...]}
DATA=${2:?PREPARED_DIR missing}; OUT=${3:?OUT_DIR missing}; shift 3
PHASES=${*:-train resume eval report}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd); DATA=$(cd "$DATA" && pwd)
# NCCL's NVLink multicast (NVLS) must stay off on shared multi-GPU hosts.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
STEPS=${STEPS:-50}; EVAL_LIMIT=${EVAL_LIMIT:-200}; SMOKE=${T2S_SMOKE:-}
if [ -n "$SMOKE" ]; then
  NGPUS=${NGPUS:-2}; STEPS=3; EVAL_LIMIT=6; export OMP_NUM_THREADS=1
  export PYTHONPATH=$REPO/tests/fake_vllm:$PYTHONPATH CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0,1}
  # micro-batch 1, no padding: one process and two see the same sequences
  TRAIN=(--backend hf --max-seq-length 1024 --per-device-train-batch-size 1 --global-batch-size 4 --no-packing
         --no-auto-setup --learning-rate 1e-2 --warmup-ratio 0 --lr-scheduler-type constant)
  if [ "$MODEL" = tiny ]; then
    MODEL=$OUT/tiny-qwen3
    [ -f "$MODEL/config.json" ] || "$PY" - "$MODEL" <<'PY'
import json, sys
from pathlib import Path
from t2s_fast import paths
from t2s_fast.models import materialize_random_init, scaled_down_config
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
(out.parent / "tiny-config.json").write_text(json.dumps(scaled_down_config(paths.QWEN3_8B_CONFIG)))
materialize_random_init(out.parent / "tiny-config.json", out, tokenizer=paths.QWEN3_TOKENIZER_DIR, dtype="float32")
PY
  fi
else
  NGPUS=${NGPUS:-$(nvidia-smi -L | wc -l)}
  TRAIN=(--max-seq-length 3072 --global-batch-size "${GLOBAL_BATCH:-32}")   # the runbook's settings, packed, automatic setup
fi
LABEL=${LABEL:-$(basename "$MODEL")}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
    || echo "no GPU: $(uname -m), $(getconf _NPROCESSORS_ONLN) CPU cores"; } > "$OUT/device.txt"

launch() {  # launch N ARGS...: one process, or N under torchrun (nccl on GPUs, gloo on a CPU)
  local n=$1; shift
  if [ "$n" = 1 ]; then "$PY" -m t2s_fast "$@"
  else "$PY" -m torch.distributed.run --standalone --nproc_per_node "$n" -m t2s_fast "$@"; fi
}
train_args() {  # train_args OUT_DIR [more]
  local out=$1; shift
  echo train --model-name "$MODEL" --train-file "$DATA/stage1_train.jsonl" --output-dir "$out" \
    --max-steps "$STEPS" --save-steps 100000 "${TRAIN[@]}" "$@"
}
step_of() { "$PY" -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if '\"loss\"' in l]; print(max([x['step'] for x in r] or [0]))" "$1" 2>/dev/null || echo 0; }

phase_train() {
  for n in 1 "$NGPUS"; do
    local out="$OUT/train/$LABEL/gpus-$n"; rm -rf "$out"; mkdir -p "$out"
    echo "== $LABEL on $n process(es)"
    # shellcheck disable=SC2046
    launch "$n" $(train_args "$out") > "$out/train.log" 2>&1 || { echo "exited $?:"; tail -30 "$out/train.log"; }
  done
}

phase_resume() {
  local out="$OUT/resume" log="$OUT/resume/resume.log"; rm -rf "$out"; mkdir -p "$out"
  local total=$(( STEPS < 4 ? 4 : STEPS )); local kill_at=$(( total / 2 ))
  echo "== $NGPUS processes, $total steps, SIGTERM to the last rank at step >= $kill_at" | tee -a "$log"
  # shellcheck disable=SC2046
  local cmd=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$NGPUS" -m t2s_fast
             $(train_args "$out" --max-steps "$total" --save-steps 1))
  "${cmd[@]}" >> "$log" 2>&1 & local pid=$!   # $! is torchrun itself: its children are the ranks
  until [ "$(step_of "$out/train_log.jsonl")" -ge "$kill_at" ] || ! kill -0 "$pid" 2>/dev/null; do sleep 1; done
  local rank; rank=$(pgrep -P "$pid" | tail -1 || true)   # the last rank started
  [ -z "$rank" ] || kill -TERM "$rank" 2>/dev/null || true
  local rc=0; wait "$pid" || rc=$?
  echo "== killed run: exit code $rc, last step $(step_of "$out/train_log.jsonl"), checkpoints: $(ls "$out/checkpoints" 2>/dev/null | tr '\n' ' ')" | tee -a "$log"
  echo "== --resume to the end" | tee -a "$log"
  # shellcheck disable=SC2046
  "${cmd[@]}" --resume >> "$log" 2>&1 || echo "== resume exited $?" | tee -a "$log"
  echo "== done: $(grep -o '"stop_reason": "[a-z_]*"' "$out/run.json" 2>/dev/null || echo 'no run.json')" | tee -a "$log"
}

phase_eval() {
  local adapter=${ADAPTER:-$OUT/resume/adapter}
  : "${SPIDER_DIR:?the eval phase needs SPIDER_DIR (Spider 1.0)}"
  for k in 1 "$NGPUS"; do
    local out="$OUT/eval/dp-$k"; rm -rf "$out"; local t0=$SECONDS
    echo "== eval on $k vLLM engine(s)"
    "$PY" -m t2s_fast eval --backend vllm --data-parallel-size "$k" --base-model "$MODEL" --adapter a="$adapter" \
      --spider-dir "$SPIDER_DIR" --limit "$EVAL_LIMIT" --repair none --out-dir "$out" > "$OUT/eval-dp-$k.log" 2>&1 \
      || { echo "exited $?:"; tail -30 "$OUT/eval-dp-$k.log"; }
    echo "$((SECONDS - t0))" > "$out/wall_s.txt"
  done
}

phase_report() { "$PY" -m t2s_fast.benchmarks.scaling "$OUT"; }

for p in $PHASES; do
  echo "=== phase $p ($(date -u +%T))"; "phase_$p"
done
