#!/usr/bin/env bash
# The real-model proof on one H200: the whole runbook through t2s-fast's own commands on a real pretrained
# model (Qwen2.5-Coder-0.5B/1.5B-Instruct from PyPI), reproducible from the repo.
#
#   bash bench/gpu_real_model.sh MODEL [PHASE ...]     MODEL: qwen2.5-coder-0.5b | qwen2.5-coder-1.5b
#
# Phases (each fits one 10-minute device call on a warm machine; later phases reuse /tmp/t2s-real/MODEL):
#   setup   GGUF -> bf16 safetensors folder (once), `prepare` on Spider 1.0 + 2.0
#   stage1  stage 1 with the runbook's flags (+ --packing), uninterrupted
#   crash   stage 1 again, killed mid-run with SIGTERM, resumed, killed with SIGKILL, resumed to the end
#   stage2  stage 2 (mixed) from the stage-1 adapter, runbook flags (+ --packing)
#   eval    one vLLM engine: base, stage1, stage2 and the crash-resumed stage 1 on Spider dev, greedy
#   vote    stage 1 with a majority vote over 8 samples (temperature 0.8), vLLM
#   hfcheck stage 1 through the transformers+PEFT backend on the first 200 dev questions (compared with vLLM's)
#   report  eval/reports/<date>-h200-MODEL/ (README, summary, reports, run.json + loss plots, logs) as one tar
# With no PHASE, all of them in order (about 20 min for the 0.5B: split it over calls).
#
# Needs on the GPU machine (carried with ../shared/tools/gpu-payload/, see bench/README.md "Real models"):
# /tmp/site with the vLLM set (../shared/tools/vllm-wheels.sh), the training set (../shared/tools/gpu-wheels.sh)
# and gguf==0.19.0; /tmp/pay/models/<the model's GGUF> (../shared/tools/small-model-gguf.sh MODEL); and
# /tmp/pay/data.tar.gz (or .xz) holding spider1/ and spider2/ (../shared/data). Each phase writes $OUT/<phase>.tar.gz.
#
# T2S_REAL_SMOKE=1 checks the script's plumbing on a CPU in minutes (a few training steps, 20 questions, data
# read from T2S_REAL_DATA, e.g. ../shared/data; with tests/fake_vllm on T2S_REAL_PYTHONPATH): no figure from it
# means anything.
set -euo pipefail
MODEL=${1:?usage: bash bench/gpu_real_model.sh MODEL [PHASE ...]}; shift
PHASES=${*:-setup stage1 crash stage2 eval vote hfcheck report}
cd "$(dirname "$0")/.."
export PYTHONPATH=${T2S_REAL_PYTHONPATH:+$T2S_REAL_PYTHONPATH:}/tmp/site:$PWD HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export T2S_FAST_CACHE=/tmp/t2s-cache T2S_FAST_GGUF_DIR=${T2S_FAST_GGUF_DIR:-/tmp/pay/models}
export OUT=${OUT:-/tmp/t2s-real-out}
W=${T2S_REAL_WORK:-/tmp/t2s-real/$MODEL}; D=${T2S_REAL_DATA:-/tmp/t2s-data}; mkdir -p "$W/logs" "$OUT"
SMOKE_TRAIN=(); LIMIT=(); HF_LIMIT=200
# T2S_REAL_GPU_MEM=0.4 caps each vLLM engine's share of GPU memory (default 0.9), so that a second job can share
# the GPU (e.g. another model's stage 1 retrained for its vote); a shared GPU makes the wall times upper bounds.
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
pack() { tar -C "$W" -czf "$OUT/$1.tar.gz" "${@:2}" 2>/dev/null || tar -C "$W" -czf "$OUT/$1.tar.gz" logs; }
step_of() { python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]; print(max([x.get('step',0) for x in r if 'loss' in x] or [0]))" "$1" 2>/dev/null || echo 0; }

phase_setup() {
  [ -d "$D/spider1" ] || { mkdir -p "$D"; tar -C "$D" -xf /tmp/pay/data.tar.*; }  # .xz or .gz: tar reads either
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
  local name; name="$(date -u +%F)-h200-$MODEL"
  python3 bench/real_model_report.py build "$W" --model "$MODEL" --price $PRICE --out "$W/$name"
  tar -C "$W" -czf "$OUT/report.tar.gz" "$name"
  ls -la "$OUT"
}

for p in $PHASES; do
  echo "=== phase $p ($(date -u +%T))"; t=$SECONDS
  "phase_$p"
  echo "=== phase $p done in $((SECONDS - t)) s"
done
