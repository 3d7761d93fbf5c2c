#!/usr/bin/env bash
# One lease of two H200s (nvidia-h200-x2) for issues 13 and 14 (2026-11-29, session 5): the sweeps' choices,
# trained again from their recorded settings, reported on Spider dev, and confirmed on the 1.5B. Started in the
# background once the payload is assembled, so that no device call has to fit a phase:
#
#   bash bench/land_last_part.sh N     (the last payload call: assembles in /tmp, copies the code to /tmp/repo)
#   setsid bash /tmp/repo/bench/gpu_chosen_recipes.sh > /tmp/s5/driver.log 2>&1 < /dev/null &
#
# Needs what bench/gpu_sweeps_and_1.5b.sh needs (/tmp/site with every wheel; /tmp/pay with models/ (0.5B and 1.5B
# GGUF), data.tar.gz, prep.tar.gz and adapters05/stage1/adapter, the runbook's 0.5B stage-1 adapter).
#
# The recipes come from the committed sweep reports (bench/recipe_config.py: the chosen variant's recorded
# train_config, with only the paths and the budget replaced):
#   stage 1: eval/reports/2026-11-29-h200-sweeps-qwen2.5-coder-0.5b/stage1/sweep_state.json (r16, lr 4e-4, 1 epoch)
#   stage 2: .../stage2/sweep_state.json (replay 4, lr 1e-4, from the runbook's 0.5B stage-1 adapter)
#
# Schedule (no speed is claimed from this lease: jobs share GPUs; EX does not depend on it):
#  0. setup: the data; the 0.5B and the 1.5B GGUF -> bf16 folders, side by side on the CPU.
#  1. GPU 0: the chosen stage-1 recipe on the 0.5B (runs/stage1-chosen).
#     GPU 1: the chosen stage-2 recipe on the 0.5B (runs/stage2-chosen), then, once the 1.5B is set up, the chosen
#     stage-1 recipe on the 1.5B (runs/stage1-chosen-1.5b) and issue 14's levers on it, held-out then Spider dev
#     (records/configs/ablate/levers-qwen2.5-coder-1.5b.json).
#     GPU 0, beside: issue 14's repair (b) trained (gpu_lease_lib.sh repair_trained, from the runbook adapter).
#  2. GPU 0, once both 0.5B recipes are trained: records/configs/ablate/chosen-recipes-qwen2.5-coder-0.5b.json (held-out, then
#     greedy, maj@8 and the chosen levers on Spider dev, both adapters in one engine).
# Each job logs to /tmp/s5/<job>.log; /tmp/s5/ALLDONE marks the end; the trained adapters are copied to
# /tmp/s5/keep/. Collect as bench/gpu_sweeps_and_1.5b.sh says.
#
# T2S_SMOKE=1 (with T2S_SMOKE_MODEL=<a tiny model folder>) checks the plumbing on a CPU (tests/fake_vllm answers
# every prompt; 6 questions, 1 training step): no figure from it means anything.
set -uo pipefail
R=$(cd "$(dirname "$0")/.." && pwd)
B=${T2S_S5_DIR:-/tmp/s5}; W=$B/w; mkdir -p "$W/data" "$W/runs"
SWEEPS=$R/eval/reports/2026-11-29-h200-sweeps-qwen2.5-coder-0.5b
source "$R/bench/gpu_lease_lib.sh"  # driver_env, say, job, retry, run, config, on_gpu, setup_data, setup_model,
driver_env                          # repair_trained

train_recipe() {  # train_recipe SWEEP_STATE MODEL OUTPUT_DIR: the sweep's chosen recipe, trained again
  local cfg="$B/recipe-$(basename "$3").json"
  cd "$W" && run python3 "$R/bench/recipe_config.py" "$1" "$cfg" --model-name "$2" --output-dir "$3" \
    --prepared data/prepared || return 1
  cat "$cfg"
  run $T2S train --config "$cfg" --output-dir "$3" "${SMOKE_VALID[@]}" "${SMOKE_TRAIN[@]}" 2>&1 | grep -v '^train:' | tail -25
  [ -d "$3/adapter" ] && mkdir -p "$B/keep" && cp -r "$3/adapter" "$B/keep/$(basename "$3")"
}
stage1_chosen_05() { train_recipe "$SWEEPS/stage1/sweep_state.json" "$S" runs/stage1-chosen; }
stage2_chosen_05() { train_recipe "$SWEEPS/stage2/sweep_state.json" "$S" runs/stage2-chosen; }
chosen_15() {  # issue 13's 1.5B confirmation and issue 14's levers on it, in one ablation
  train_recipe "$SWEEPS/stage1/sweep_state.json" "$L" runs/stage1-chosen-1.5b || return 1
  local cfg; cfg=$(config records/configs/ablate/levers-qwen2.5-coder-1.5b.json)
  [ -z "$SMOKE" ] || sed -i "s/\"qwen2.5-coder-1.5b\"/\"$L\"/" "$cfg"
  cd "$W" && retry run $T2S ablate --config "$cfg"
}
dev_05() { cd "$W" && retry run $T2S ablate --config "$(config records/configs/ablate/chosen-recipes-qwen2.5-coder-0.5b.json)"; }

say "driver start"; job setup_data setup_data
job setup_15 setup_model "$L" & s15=$!
job setup_05 setup_model "$S"
job stage1_chosen_05 on_gpu 0 stage1_chosen_05 & c05=$!
job stage2_chosen_05 on_gpu 1 stage2_chosen_05 & s205=$!
[ -n "$SMOKE" ] || sleep 45  # the training's memory settles before a vLLM engine measures what is free
job repair_trained on_gpu 0 repair_trained & rp=$!
wait $s15; job chosen_15 on_gpu 1 chosen_15 & c15=$!
wait $c05 $s205; job dev_05 on_gpu 0 dev_05 & d05=$!
wait $d05 $c15 $rp
touch "$B/ALLDONE"; say "all done"
