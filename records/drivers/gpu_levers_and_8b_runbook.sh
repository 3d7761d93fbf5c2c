#!/usr/bin/env bash
# One H200 lease for issues 16 and 14 (2026-11-29, session 3), started in the background once the payload is
# assembled, so that no device call has to fit a phase:
#
#   setsid bash /tmp/repo/bench/gpu_levers_and_8b_runbook.sh > /tmp/s3/driver.log 2>&1 < /dev/null &
#
# Needs: /tmp/site (every wheel installed by the payload's assemble.sh: the vLLM set, the training set, gguf, and
# rapidfuzz for --question-values: `pip download --no-deps --only-binary=:all: --python-version 3.12
# --platform manylinux2014_x86_64 'rapidfuzz>=3.9,<4'`; on 2026-11-29 it was missing and added by hand), and in /tmp/pay:
#   models/<the 0.5B GGUF>, data.tar.gz (spider1/, spider2/),
#   prep.tar.gz: prep05/ and prep05qv/ (`t2s-fast prepare` with the 0.5B's tokenizer, without and with
#     --question-values 3),
#   adapters05/stage1/adapter (the runbook's 0.5B stage-1 adapter, eval/reports/2026-11-29-h200-qwen2.5-coder-0.5b/),
#   gpu8b.tar.gz: gpu8b/ (qwen3-8b-config/, qwen3-tokenizer/, data/stage1_{train,valid}.jsonl and
#     stage2_mixed_train.jsonl prepared with ../shared/assets/qwen3-tokenizer).
#
# Schedule (speed is claimed only for what ran alone on the GPU; EX does not depend on sharing):
#  0. setup, side by side on the CPU: the Spider data, the random-init Qwen3-8B (gpu_setup.sh), the 0.5B GGUF ->
#     bf16 folder.
#  1. issue 16 `after`: the README's stage-1 command on the Qwen3-8B shape, 51 steps, ALONE on the GPU.
#  2. side by side, each vLLM engine capped at 15% of the GPU's memory:
#     a. the levers ablation (ablations/levers-qwen2.5-coder-0.5b.json): every arm on the held-out set in one
#        engine, then each group's baseline and held-out winner on Spider dev in the same engine. Started first;
#        the others wait until its engine holds its memory (a vLLM engine that profiles memory while another
#        process frees some can fail to start).
#     b. issue 16 `loss`: the automatic setup's loss curve against the transformers+PEFT+bitsandbytes baseline on
#        the same batches (loss only: its speed is not claimed, the GPU is shared).
#     c. stage 1 with question-matched values, the runbook's recipe otherwise, then the 2x2 values ablation
#        (records/configs/ablate/question-values-qwen2.5-coder-0.5b.json: trained with/without x shown with/without).
#     d. the stage-2 sweep from the runbook's stage-1 adapter (records/configs/sweep/stage2-replay-from-runbook-0.5b.json):
#        chosen by held-out Spider 1.0 EX, the Spider-2.0 valid loss beside it.
#  3. issue 13: the held-out greedy eval with --enforce-eager, ALONE (engine start and generation timed).
#
# Each job logs to /tmp/s3/<job>.log; /tmp/s3/ALLDONE marks the end. Work folder: /tmp/s3/w (the configs' relative
# paths: data/prepared, data/prepared-qv, data/spider1, runs/...). Collect with
#   tar -C /tmp/s3 -czf $OUT/s3.tgz --exclude='*.safetensors' --exclude='checkpoints' --exclude='vllm-cache' .
#
# T2S_S3_SMOKE=1 checks the plumbing on a CPU (tests/fake_vllm answers every prompt; the 8B phases are skipped;
# 6 questions, 1 training step, 2 sweep variants; /tmp/pay and /tmp/site laid out as above): no figure from it means anything.
set -uo pipefail
R=$(cd "$(dirname "$0")/.." && pwd)
B=/tmp/s3; W=$B/w; mkdir -p "$W/data" "$W/runs"
export PYTHONPATH=/tmp/site:$R HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 TOKENIZERS_PARALLELISM=false \
  PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0 T2S_FAST_CACHE=/tmp/t2s-cache T2S_FAST_GGUF_DIR=/tmp/pay/models
T2S="python3 -m t2s_fast"
SMOKE=${T2S_S3_SMOKE:-}; SMOKE_TRAIN=()
if [ -n "$SMOKE" ]; then
  export PYTHONPATH=$R/tests/fake_vllm:$PYTHONPATH
  SMOKE_TRAIN=(--max-steps 1 --per-device-train-batch-size 1 --gradient-accumulation-steps 1 --max-seq-length 1024)
fi
SMOKE=$SMOKE source "$R/bench/gpu_lease_lib.sh"  # say, job, retry, record, run, gpu_used, wait_for_engine, config

setup_data() {
  mkdir -p /tmp/t2s-data; [ -d /tmp/t2s-data/spider1 ] || tar -C /tmp/t2s-data -xf /tmp/pay/data.tar.*
  [ -d /tmp/pay/prep05 ] || tar -C /tmp/pay -xzf /tmp/pay/prep.tar.gz
  [ -d /tmp/pay/gpu8b ] || tar -C /tmp/pay -xzf /tmp/pay/gpu8b.tar.gz
  ln -sfn /tmp/t2s-data/spider1 "$W/data/spider1"; ln -sfn /tmp/t2s-data/spider2 "$W/data/spider2"
  ln -sfn /tmp/pay/prep05 "$W/data/prepared"; ln -sfn /tmp/pay/prep05qv "$W/data/prepared-qv"
  mkdir -p "$W/runs/stage1"; [ -d "$W/runs/stage1/adapter" ] || cp -r /tmp/pay/adapters05/stage1/adapter "$W/runs/stage1/"
  [ -n "$SMOKE" ] || { ln -sfn /tmp/pay/gpu8b "$R/.gpu"; touch /tmp/site/.t2s_installed; }  # for gpu_setup.sh
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$B/device.txt"
  python3 -m t2s_fast.runinfo "$B/versions.json"
}
setup_8b() { (source "$R/bench/gpu_setup.sh"); }
setup_05() { run python3 -c "import sys; from t2s_fast.models import resolve_model; print(resolve_model(sys.argv[1]).path)" qwen2.5-coder-0.5b; }

i16() { OUT=$B/i16 CALL_LIMIT_S=$1 bash "$R/bench/gpu_issue16_runbook.sh" "$2"; }

levers() { cd "$W" && retry run $T2S ablate --config "$(config ablations/levers-qwen2.5-coder-0.5b.json)"; }

values() {  # stage 1 with question-matched values (the runbook's recipe otherwise), then the 2x2 ablation
  cd "$W" || return 1
  run $T2S train --model-name qwen2.5-coder-0.5b --train-file data/prepared-qv/stage1_train.jsonl \
    --eval-file data/prepared-qv/stage1_valid.jsonl --output-dir runs/stage1-qv --max-cost-usd 40 \
    --gpu-hourly-usd 3.44 --packing "${SMOKE_TRAIN[@]}" 2>&1 | grep -v '^train:' | tail -20
  [ -d runs/stage1-qv/adapter ] || { say "no runs/stage1-qv/adapter"; return 1; }
  retry run $T2S ablate --config "$(config records/configs/ablate/question-values-qwen2.5-coder-0.5b.json)"
}

stage2() { cd "$W" && retry run $T2S sweep --config "$(config records/configs/sweep/stage2-replay-from-runbook-0.5b.json)"; }

eager() {  # the same held-out greedy eval as eval/reports/2026-11-29-h200-vllm-engine-start/, with --enforce-eager
  cd "$W" && local t=$SECONDS
  run $T2S eval --backend vllm --base-model qwen2.5-coder-0.5b --adapter stage1=runs/stage1/adapter --repair none --suite heldout \
    --questions data/prepared/stage1_valid.jsonl --db-root data/spider1/database --workers 8 --enforce-eager \
    --out-dir runs/eval-heldout-eager ${SMOKE:+--limit 6}
  echo "eager eval wall $((SECONDS - t)) s (engine start included)"
}

say "driver start"; job setup_data setup_data
if [ -z "$SMOKE" ]; then job setup_8b setup_8b & s8=$!; fi; job setup_05 setup_05; [ -n "$SMOKE" ] || wait $s8
[ -n "$SMOKE" ] || job i16_after i16 600 after
base=$(gpu_used); job levers levers & lv=$!
wait_for_engine 15000 "$([ -n "$SMOKE" ] && echo 2 || echo 240)" "${base:-0}"
if [ -z "$SMOKE" ]; then job i16_loss i16 900 loss & ls=$!; else ls=; fi
job values values & va=$!
job stage2 stage2 & s2=$!
wait $ls $va $s2 $lv
if [ $(( $(date +%s) - T0 )) -lt 1250 ]; then job eager eager; else say "eager skipped: no time left"; fi
touch "$B/ALLDONE"; say "all done"
