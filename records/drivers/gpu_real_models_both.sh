#!/usr/bin/env bash
# Both real models' proof runs in one lease, scheduled so the GPU is never idle and no training figure is shared:
#
#   setsid bash bench/gpu_real_models_both.sh > /tmp/both/driver.log 2>&1 &      (after the payload is assembled)
#
# 1. `setup` of the 0.5B and the 1.5B side by side (CPU only: GGUF conversion, prepare);
# 2. the 1.5B's stage 1 and stage 2 alone on the GPU (their tok/s and dollars are clean figures);
# 3. the 1.5B's eval (base, stage 1, stage 2), vote and HF check, each vLLM engine capped at T2S_REAL_GPU_MEM of
#    the GPU's memory, while the 0.5B's stage 1 is trained again beside it for its own vote (issue 12's first run
#    did not keep its adapter). That 0.5B stage 1 starts once the 1.5B engine holds its memory, so its automatic
#    setup plans on what is left. The wall times of step 3 are upper bounds (the GPU is shared); its EX is not
#    affected. The 0.5B's vote runs after the 1.5B's engines have exited: on 2026-11-29 it was started beside
#    them and its engine failed to start (it ran alone afterwards, as below).
# Each job writes its phase tars under /tmp/both/<job>/ and its log to /tmp/both/<job>.log; /tmp/both/ALLDONE
# marks the end. Poll with `tail /tmp/both/*.log`; collect with `tar -C /tmp/both -cf $OUT/both.tar .`.
set -uo pipefail
cd "$(dirname "$0")/.."
B=/tmp/both; mkdir -p "$B"
S=qwen2.5-coder-0.5b; L=qwen2.5-coder-1.5b
job() { local name=$1; shift; echo "$(date -u +%T) start $name: $*"; OUT=$B/$name bash bench/gpu_real_model.sh "$@" > "$B/$name.log" 2>&1
        local rc=$?; echo "$(date -u +%T) end $name rc=$rc"; return $rc; }

D=/tmp/t2s-data; [ -d $D/spider1 ] || { mkdir -p $D && tar -C $D -xf /tmp/pay/data.tar.*; }  # once, before the two setups
job setup05 $S setup & job setup15 $L setup; wait
job train15 $L stage1 stage2
export T2S_REAL_GPU_MEM=${T2S_REAL_GPU_MEM:-0.4}
job eval15 $L eval vote hfcheck & ev=$!
for _ in $(seq 120); do  # up to 4 min for the 1.5B engine to take its share of memory
  used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1); [ "${used:-0}" -gt 40000 ] && break; sleep 2
done
echo "$(date -u +%T) GPU memory used before the 0.5B job: ${used:-?} MiB"
job vote05 $S stage1
wait $ev
job vote05b $S vote   # alone: a vLLM engine that starts while another one exits can fail its memory profiling
touch $B/ALLDONE; echo "$(date -u +%T) all done"
