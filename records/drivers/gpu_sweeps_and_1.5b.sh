#!/usr/bin/env bash
# One lease of two H200s (nvidia-h200-x2) for issues 13 and 14 (2026-11-29, session 4), started in the background
# once the payload is assembled, so that no device call has to fit a phase:
#
#   bash bench/land_last_part.sh N     (the last payload call: assembles in /tmp, copies the code to /tmp/repo)
#   setsid bash /tmp/repo/bench/gpu_sweeps_and_1.5b.sh > /tmp/s4/driver.log 2>&1 < /dev/null &
#
# Needs /tmp/site (every wheel of the payload installed: the vLLM set, the training set, gguf, rapidfuzz) and in
# /tmp/pay: models/ (the 0.5B and 1.5B GGUF files), data.tar.gz (spider1/, spider2/), prep.tar.gz (prep05/: `t2s-fast
# prepare` with the Qwen2.5-Coder tokenizer, which the 0.5B and the 1.5B share) and adapters05/stage1/adapter (the
# runbook's 0.5B stage-1 adapter, eval/reports/2026-11-29-h200-qwen2.5-coder-0.5b/).
#
# Schedule (GPU 0 and GPU 1; no speed is claimed from this lease: runs share GPUs; EX does not depend on it):
#  0. setup: the data; the 0.5B and the 1.5B GGUF -> bf16 folders, side by side on the CPU.
#  1. issue 13: the stage-1 sweep (sweeps/stage1-qwen2.5-coder-0.5b.json) with --parallel 6 --devices 0,1 (its
#     6 variants at once, 3 on each GPU), then its 24 adapters in one engine on the held-out set and the chosen
#     one on Spider dev, greedy and maj@8.
#  2. beside it on GPU 1: the runbook's stage 1 on the 1.5B (the README's command), then issue 14's winning levers on
#     it (records/configs/ablate/levers-qwen2.5-coder-1.5b.json).
#  3. beside it on GPU 0: issue 14's repair (b) trained: the runbook 0.5B stage-1 adapter's greedy answers on its own
#     training split, `t2s-fast prepare-repair` from their failures, stage 1 trained again on the training split plus
#     those repair turns, then records/configs/ablate/repair-trained-qwen2.5-coder-0.5b.json.
#  4. once the stage-1 sweep's training is over, on GPU 1: the stage-2 sweep (records/configs/sweep/stage2-replay-from-runbook-0.5b.json,
#     8 recipes from the runbook's stage-1 adapter, chosen under the runbook's Spider-2.0 valid loss).
#  5. once the stage-1 sweep has chosen, on GPU 0, if the lease has time (T2S_S4_CHOSEN_BY seconds after the
#     start): the chosen recipe on the 1.5B (skipped when it is the runbook's, which step 2 trained), and its
#     Spider dev EX, greedy and maj@8.
# T2S_S4_ONLY_SWEEPS=1: steps 0 (the 0.5B only), 1 and 4 only, the two sweeps side by side from the start, the
# stage-2 sweep on GPU 1 with --parallel 4 (the payload then needs no 1.5B GGUF).
# Each job logs to /tmp/s4/<job>.log; /tmp/s4/ALLDONE marks the end. Work folder /tmp/s4/w (the configs' relative
# paths). Collect with
#   tar -C /tmp/s4 -czf $OUT/s4.tgz --exclude='*.safetensors' --exclude='*.pt' --exclude='*.bin' --exclude=vllm-cache \
#     --exclude=unsloth_compiled_cache --exclude='*/data/*' --exclude='predictions*' --exclude='scored*' .
# (a few MB) and, when there is room, the chosen adapters: tar -C /tmp/s4 -czf $OUT/keep.tgz keep
#
# T2S_SMOKE=1 checks the plumbing on a CPU (tests/fake_vllm answers every prompt; 6 questions, 1 training step, 2
# variants a sweep; T2S_SMOKE_MODEL=<a tiny model folder> stands in for both models, and its 1-step stage 1 for the
# runbook's 0.5B adapter): no figure from it means anything.
set -uo pipefail
R=$(cd "$(dirname "$0")/.." && pwd)
B=${T2S_S4_DIR:-/tmp/s4}; W=$B/w; mkdir -p "$W/data" "$W/runs"
TWO_GPUS=(--parallel 6 --devices 0,1); CHOSEN_BY=${T2S_S4_CHOSEN_BY:-800}
source "$R/bench/gpu_lease_lib.sh"  # driver_env, say, elapsed, job, retry, record, run, gpu_used, wait_for_engine,
driver_env                          # config, on_gpu, setup_data, setup_model, repair_trained
[ -z "$SMOKE" ] || TWO_GPUS=()
stage1_sweep() {
  cd "$W" && retry run $T2S sweep --config "$(config sweeps/stage1-qwen2.5-coder-0.5b.json)" "${TWO_GPUS[@]}"
  local rc=$?; keep_chosen sweep-stage1-0.5b stage1-chosen; return $rc; }

train_runbook_15() {  # the README's stage-1 command on the 1.5B
  cd "$W" && run $T2S train --model-name "$L" --train-file data/prepared/stage1_train.jsonl \
    --eval-file "$VALID" --output-dir runs/stage1-1.5b --max-cost-usd 40 --gpu-hourly-usd 3.44 \
    --packing "${SMOKE_TRAIN[@]}" 2>&1 | grep -v '^train:' | tail -25
  [ -d runs/stage1-1.5b/adapter ]
}
levers_15() {
  local cfg; cfg=$(config records/configs/ablate/levers-qwen2.5-coder-1.5b.json)
  [ -z "$SMOKE" ] || sed -i "s/\"qwen2.5-coder-1.5b\"/\"$L\"/" "$cfg"
  cd "$W" && retry run $T2S ablate --config "$cfg"
}
one_point_five() { train_runbook_15 && levers_15; }

stage2_sweep() {
  cd "$W" && retry run $T2S sweep --config "$(config records/configs/sweep/stage2-replay-from-runbook-0.5b.json)" "$@"
  local rc=$?; keep_chosen sweep-stage2-runbook-0.5b stage2-chosen; return $rc; }
stage2_sweep_on_one_gpu() { stage2_sweep $([ -n "$SMOKE" ] || echo --parallel 4); }

chosen_on_15() {  # issue 13: the stage-1 sweep's chosen recipe on the 1.5B, on Spider dev (greedy, maj@8)
  cd "$W" || return 1
  local spec name step lr r a ep save; spec=$(python3 - runs/sweep-stage1-0.5b/sweep_state.json <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
c = s["chosen"]
t = s["variants"][c["variant"]]["train_config"]  # the settings the chosen run trained with
print(c["name"], c["step"], t["learning_rate"], t["lora_r"], t["lora_alpha"], t["num_train_epochs"], t["save_steps"])
PY
) || return 1
  read -r name step lr r a ep save <<< "$spec"
  say "chosen on the 0.5B: $name (step $step): lr $lr, r $r, alpha $a, $ep epoch(s), a checkpoint every $save steps"
  run $T2S train --model-name "$L" --train-file data/prepared/stage1_train.jsonl --eval-file "$VALID" \
    --output-dir runs/stage1-1.5b-chosen --max-cost-usd 40 --gpu-hourly-usd 3.44 --packing --learning-rate "$lr" \
    --lora-r "$r" --lora-alpha "$a" --num-train-epochs "$ep" --save-steps "$save" --eval-steps "$save" \
    --save-total-limit 0 "${SMOKE_TRAIN[@]}" 2>&1 | grep -v '^train:' | tail -25
  local adapter=runs/stage1-1.5b-chosen/adapter
  [ "${name##*@}" = final ] || adapter=$(ls -d runs/stage1-1.5b-chosen/checkpoints/checkpoint-"${name##*@step-}" 2>/dev/null || echo "$adapter")
  [ -d "$adapter" ] || { say "no $adapter"; return 1; }
  for k in 1 8; do
    retry run $T2S eval --backend vllm --base-model "$L" --adapter chosen="$adapter" --suite spider1 --repair none \
      --spider-dir data/spider1 --workers 8 --timeout 10 --gpu-memory-utilization 0.3 --vllm-cache-dir runs/vllm-cache \
      --n-samples $k $([ $k -gt 1 ] && echo --temperature 0.8) --out-dir runs/eval-dev-1.5b-chosen-k$k "${SMOKE_EVAL[@]}"
  done
}

keep_chosen() {  # the chosen adapter of a sweep, copied to $B/keep/<label> so that it can be carried back
  local path; path=$(python3 -c "import json,sys; print((json.load(open(sys.argv[1])).get('chosen') or {}).get('path',''))" \
    "$W/runs/$1/sweep_state.json" 2>/dev/null)
  [ -n "$path" ] && [ -d "$W/$path" ] && mkdir -p "$B/keep" && cp -r "$W/$path" "$B/keep/$2" && say "kept $path as keep/$2"
}

if [ -n "${T2S_S4_ONLY_SWEEPS:-}" ]; then  # the two sweeps only, side by side (a short lease; no 1.5B in the payload)
  say "driver start (the two sweeps only)"; job setup_data setup_data; job setup_05 setup_model "$S"
  job stage1_sweep stage1_sweep & sw=$!
  job stage2_sweep on_gpu 1 stage2_sweep_on_one_gpu & s2=$!
  wait $sw $s2; touch "$B/ALLDONE"; say "all done"; exit 0
fi
say "driver start"; job setup_data setup_data
job setup_15 setup_model "$L" & s15=$!
job setup_05 setup_model "$S"
job stage1_sweep stage1_sweep & sw=$!
if [ -z "$SMOKE" ]; then base0=$(gpu_used 0); wait_for_engine 30000 120 "${base0:-0}" 0; fi  # the sweep's runs took theirs
job repair_trained on_gpu 0 repair_trained & rp=$!
wait $s15; job one_point_five on_gpu 1 one_point_five & op=$!
until grep -q "sweep: evaluating" "$B/stage1_sweep.log" 2>/dev/null || ! kill -0 $sw 2>/dev/null; do sleep 10; done
say "stage-1 sweep training over"; job stage2_sweep on_gpu 1 stage2_sweep & s2=$!
wait $sw
if [ "$(elapsed)" -le "$CHOSEN_BY" ]; then job chosen_on_15 on_gpu 0 chosen_on_15
else say "chosen_on_15 skipped: $(elapsed) s after the start, later than $CHOSEN_BY s"; fi
wait $rp $op $s2
touch "$B/ALLDONE"; say "all done"
