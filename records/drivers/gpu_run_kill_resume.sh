#!/usr/bin/env bash
# `t2s-fast run` with a shipped run file on a GPU machine, killed with SIGKILL once during stage 1 (after its first
# checkpoint is written) and started again with the same command, which must finish the run with the dollars of
# both sessions added up. Then `t2s-fast status`.
#
#   bash records/drivers/gpu_run_kill_resume.sh RUN_FILE DATA_DIR WORK_DIR [FLAG...]
#
# DATA_DIR holds spider1/ (with database/) and spider2/. The command runs in WORK_DIR, where data/ links to
# DATA_DIR, so the run file's data/spider1 and data/spider2 resolve; the run folder is the file's out_dir (or
# --out-dir among FLAGs) under WORK_DIR. FLAGs go to both `t2s-fast run` commands (e.g. --max-cost-usd 2).
# KILL_AFTER_S (20): seconds between stage 1's first checkpoint and the SIGKILL; KILL=0: no kill, one session.
# Every decoding of Spider dev (greedy, maj@8 beside eval's repair) comes from the run file's eval_variants.
# Logs: WORK_DIR/run-1.out (killed), run-2.out (resumed), status-after-kill.txt, status.txt; every
# command run: WORK_DIR/commands.sh; the driver's own lines on stdout; WORK_DIR/ALLDONE at the end.
set -uo pipefail
RUN_FILE=$(realpath "${1:?run file}"); DATA=$(realpath "${2:?data dir with spider1/ and spider2/}")
W=${3:?work dir}; shift 3
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 \
  UNSLOTH_DISABLE_STATISTICS=1
R=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$W" && cd "$W" && ln -sfn "$DATA" data && B=$PWD
source "$R/bench/lease/lib.sh"  # say, record (every command into $B/commands.sh), run, job (its log: $B/NAME.log)
read -r out_dir < <(python3 - "$RUN_FILE" "$@" <<'PY'
import sys
from t2s_fast.pipeline.config import load_run_config
cfg, args = load_run_config(sys.argv[1]), sys.argv[2:]
print(args[args.index("--out-dir") + 1] if "--out-dir" in args else cfg.out_dir)
PY
) && [ -n "$out_dir" ] || { echo "cannot read $RUN_FILE" >&2; exit 2; }
cmd=(python3 -m t2s_fast run --config "$RUN_FILE" "$@")

if [ "${KILL:-1}" != 0 ]; then
  say "start 1: ${cmd[*]}"; record "${cmd[@]}"
  setsid "${cmd[@]}" > run-1.out 2>&1 < /dev/null & pid=$!
  until compgen -G "$out_dir/stage1/checkpoints/checkpoint-*" > /dev/null; do
    kill -0 "$pid" 2>/dev/null || { say "run 1 ended before stage 1 wrote a checkpoint"; break; }; sleep 2; done
  sleep "${KILL_AFTER_S:-20}"
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 -- "-$pid"; say "SIGKILL to run 1 during $(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('stage'))" "$out_dir/status.json" 2>/dev/null)"
    wait "$pid" 2>/dev/null
  fi
  python3 -m t2s_fast status "$out_dir" > status-after-kill.txt 2>&1
fi
say "$([ "${KILL:-1}" != 0 ] && echo "start 2 (the same command)" || echo "start: ${cmd[*]}")"
run "${cmd[@]}" > run-2.out 2>&1 < /dev/null; say "run 2 exit $?"
python3 -m t2s_fast status "$out_dir" > status.txt 2>&1; cat status.txt
touch ALLDONE
