#!/usr/bin/env bash
# Issue 16 on one H200, Qwen3-8B shape (random init from .gpu/qwen3-8b-config, as gpu_setup.sh materializes it;
# real prepared stage-1 data): the README runbook's stage-1 command as written, before and after packing
# became the default, 50+ measured optimizer steps each; and the automatic setup's loss curve against the
# transformers+PEFT+bitsandbytes baseline on the same batches.
#
#   bash bench/gpu_issue16_runbook.sh PHASE      PHASE: after | after-flags | before | loss | all
#
# Each phase fits one 10-minute device call on its own (run them in separate calls; `all` is for a machine
# without that limit). Results land in $OUT/bench/results/ (copy them to bench/results/, then run
# `python -m t2s_fast.benchmarks.projection_report` and `python bench/render_readme.py`):
#   <date>-h200-issue16-<phase>.json                 summary of the phase (tok/s, setup, losses, acceptance)
#   logs-<date>-h200-issue16/<phase>-run.json, -train_log.jsonl   the run's own files (projection_report reads
#                                                    the run.json files: projected vs actual cost of the 8B shape)
#   <date>-h200-train-issue16-loss50.json            (loss phase) the `t2s-fast bench train` result
#
# The stage-1 command is README's "GPU runbook" step 2 with only these substitutions: --model-name is the
# random-init folder (no hub on the device), the data paths are .gpu/data/, and --max-steps 51 (step 1 is
# excluded from run.json's steady tok/s, so 50 steps are measured). The runbook's --max-cost-usd 40 is kept.
#
# Time estimates per phase (warm machine; add ~90 s for gpu_setup.sh on a fresh one), from bench/results:
#   after        packed auto setup, 8 rows x 3072 = 24.6k tokens/step at 15,770 tok/s
#                (2026-11-24-h200-train-packed-varlen.json) = 1.6 s/step x 51 = ~80 s, + ~36 s model load
#                (logs-2026-11-24-h200-varlen/unsloth-auto-run.json: elapsed 57 s - 21 s training) + final eval
#                on stage1_valid.jsonl (~860 examples, forward only, ~20-40 s) + adapter save  => ~3 min
#   after-flags  the same with the issue's --per-device-train-batch-size 2 --gradient-accumulation-steps 16:
#                must choose the same setup (the flags define the same 32-example global batch)  => ~3 min
#   before       --no-packing (the old default): padded, automatic split of the 32 examples (expected
#                micro-batch 8 x 4, no checkpointing, SDPA). No padded setup without checkpointing was
#                recorded; the projection's fallback band (runbook-padded, 13.5% MFU) gives ~3,200 tok/s,
#                i.e. 32 x ~900 tokens = 28.8k tokens/step = ~9 s/step x 51 = ~7.7 min + load. So this phase
#                runs WITHOUT --eval-file (the end-of-run eval is outside the measured steps and would take
#                ~1 min padded) and is stopped with SIGTERM (graceful: adapter, run.json) at the call's time
#                limit; run.json's steps_measured says how many steps it got (>= 50 expected)  => <= 9 min
#   loss         `t2s-fast bench train`, same seeded 2000-example sample and seed for both rows, packed,
#                --global-batch-size 8 (2 packed rows per step, so the baseline fits in a call): the automatic
#                setup (Unsloth, varlen, no checkpointing) vs the baseline (hf, plain checkpointing, SDPA),
#                2 warm-up + 48 measured = 50 steps. Baseline 6.1k tokens/step at ~2,000-2,250 tok/s
#                (2026-11-24-h200-train-packed-varlen.json hf) = ~3 s/step x 50 = ~2.5 min; automatic
#                ~0.5 s/step = ~25 s; two model loads ~1.5 min                                 => ~5 min
set -euo pipefail
PHASE=${1:-}
case "$PHASE" in after|after-flags|before|loss|all) ;; *)
  echo "usage: bash bench/gpu_issue16_runbook.sh after|after-flags|before|loss|all" >&2; exit 2;; esac
T_START=$(date +%s)
CALL_LIMIT_S=${CALL_LIMIT_S:-600}  # the device call's limit; long phases stop gracefully before it
source "$(dirname "$0")/gpu_setup.sh"
DAY=$(date -u +%F)
W=/tmp/t2s-issue16-work; mkdir -p "$W"
LOGS="$OUT/bench/results/logs-$DAY-h200-issue16"; mkdir -p "$LOGS"
VALID="$(dirname "$T2S_DATA")/stage1_valid.jsonl"
STEPS=${STEPS:-51}

left_s() { echo $(( CALL_LIMIT_S - ($(date +%s) - T_START) - 100 )); }  # kept: graceful stop (<= 45 s) + summary

# README "GPU runbook" step 2, with the substitutions listed above, plus the phase's extra flags.
runbook_stage1() {  # NAME EVAL(yes|no) [extra flags...]
  local name=$1 with_eval=$2; shift 2
  local out="$W/$name/stage1"; rm -rf "$W/$name"; mkdir -p "$W/$name"
  local ev=(); if [ "$with_eval" = yes ] && [ -f "$VALID" ]; then ev=(--eval-file "$VALID"); fi
  local cmd=(python3 -m t2s_fast train --model-name "$T2S_MODEL" --train-file "$T2S_DATA" ${ev[@]+"${ev[@]}"}
             --output-dir "$out" --max-cost-usd 40 --max-steps "$STEPS" ${1+"$@"})
  echo "${cmd[*]}" > "$LOGS/$name-command.txt"
  local limit; limit=$(left_s)
  echo "== $name: up to ${limit} s: ${cmd[*]}"
  timeout -s TERM -k 45 "$limit" "${cmd[@]}" > "$LOGS/$name-train.log" 2>&1 || echo "$name exited $? (143/124: stopped at the time limit)"
  [ -f "$out/run.json" ] && cp "$out/run.json" "$LOGS/$name-run.json"
  [ -f "$out/train_log.jsonl" ] && cp "$out/train_log.jsonl" "$LOGS/$name-train_log.jsonl"
  summarize_run "$name"
}

summarize_run() {  # NAME -> $OUT/bench/results/<date>-h200-issue16-NAME.json
  python3 - "$1" "$LOGS" "$OUT/bench/results/$DAY-h200-issue16-$1.json" <<'PY'
import json, sys
from pathlib import Path
name, logs, dest = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
run_p, log_p = logs / f"{name}-run.json", logs / f"{name}-train_log.jsonl"
out = {"what": f"issue 16: README runbook stage-1 command, phase {name}", "phase": name,
       "command": (logs / f"{name}-command.txt").read_text().strip()}
if run_p.is_file():
    run = json.loads(run_p.read_text())
    steps = [json.loads(l) for l in log_p.read_text().splitlines() if '"loss"' in l] if log_p.is_file() else []
    after2 = steps[2:]  # the bench convention: 2 warm-up steps dropped
    t = sum(s["step_time_s"] for s in after2)
    tps2 = sum(s["trained_tokens"] for s in after2) / t if t else None
    out.update({k: run.get(k) for k in ("date", "started_at", "finished_at", "stop_reason", "device", "versions",
                                         "backend", "setup", "sft", "world_size", "global_batch", "global_step",
                                         "steps_measured", "trained_tokens_per_s", "tokens_trained",
                                         "peak_gpu_memory_allocated_gib", "peak_gpu_memory_reserved_gib",
                                         "wall_time_s", "elapsed_s_total", "cost_usd", "projected_cost_usd",
                                         "projection_tokens_per_s", "first_loss", "final_loss", "final_eval_loss")})
    out["packing"] = run["config"]["packing"]
    out["auto_setup"] = run["config"]["auto_setup"]
    out["tokens_per_s_after_2_warmup_steps"] = round(tps2, 1) if tps2 else None
    out["losses"] = [s["loss"] for s in steps]
    out["step_times_s"] = [s["step_time_s"] for s in steps]
    tps = run.get("trained_tokens_per_s") or 0
    out["acceptance_15000_tok_s_over_50_steps"] = bool(tps >= 15000 and (run.get("steps_measured") or 0) >= 50)
else:
    out["error"] = f"no run.json: see {name}-train.log"
dest.write_text(json.dumps(out, indent=1) + "\n")
print(dest, {k: out.get(k) for k in ("packing", "global_batch", "steps_measured", "trained_tokens_per_s", "cost_usd", "projected_cost_usd")})
PY
}

phase_loss() {
  local limit; limit=$(left_s)
  python3 -m t2s_fast bench train --model-name "$T2S_MODEL" --data "$T2S_DATA" --max-seq-length 3072 --max-examples 2000 \
    --warmup-steps 2 --steps 48 --out-dir "$OUT/bench/results" --gpu-hourly-usd 3.44 \
    --packing --tag issue16-loss50 --timeout-s $(( limit / 2 > 120 ? limit / 2 : 120 )) \
    --per-device-train-batch-size 0 --gradient-accumulation-steps 0 --backends "" \
    --variant "unsloth-auto=unsloth --global-batch-size 8" \
    --variant "hf=hf --global-batch-size 8 --gradient-checkpointing plain --attention sdpa" \
    --work-dir "$W/loss" > "$LOGS/loss-bench.log" 2>&1 || echo "loss bench exited $?"
  for r in "$W"/loss/*/; do n=$(basename "$r")
    [ -f "$r/run.json" ] && cp "$r/run.json" "$LOGS/loss-$n-run.json"
    [ -f "$r/train_log.jsonl" ] && cp "$r/train_log.jsonl" "$LOGS/loss-$n-train_log.jsonl"; done
  python3 - "$OUT/bench/results" "$OUT/bench/results/$DAY-h200-issue16-loss-vs-baseline.json" <<'PY'
import json, sys
from pathlib import Path
res_dir, dest = Path(sys.argv[1]), Path(sys.argv[2])
files = sorted(res_dir.glob("*-train-issue16-loss50*.json"))
if not files:
    dest.write_text(json.dumps({"error": "no bench result: see logs/loss-bench.log"}) + "\n"); sys.exit(0)
res = json.loads(files[-1].read_text())
rows = {r["label"]: r for r in res["rows"]}
a, b = rows.get("unsloth-auto", {}).get("losses") or [], rows.get("hf", {}).get("losses") or []
n = min(len(a), len(b))
pairs = [(x, y) for x, y in zip(a[:n], b[:n]) if x is not None and y is not None]
diffs = [abs(x - y) for x, y in pairs]
tail = pairs[-10:]
out = {"what": "issue 16: automatic setup's loss curve vs the transformers+PEFT+bitsandbytes baseline, same batches",
       "source": f"bench/results/{files[-1].name}", "command": res["command"], "steps_compared": len(pairs),
       "automatic_setup": rows.get("unsloth-auto", {}).get("setup"), "baseline_setup": rows.get("hf", {}).get("setup"),
       "losses_auto": a, "losses_baseline": b,
       "max_abs_diff": max(diffs) if diffs else None, "mean_abs_diff": sum(diffs) / len(diffs) if diffs else None,
       "mean_last10_auto": sum(x for x, _ in tail) / len(tail) if tail else None,
       "mean_last10_baseline": sum(y for _, y in tail) / len(tail) if tail else None,
       "step_to_step_noise_baseline": (sum(abs(b[i + 1] - b[i]) for i in range(len(b) - 1)) / (len(b) - 1))
       if len(b) > 1 and None not in b else None,
       "note": "within noise when mean_abs_diff is below the baseline's own step-to-step change"}
dest.write_text(json.dumps(out, indent=1) + "\n")
print(dest, {k: out[k] for k in ("steps_compared", "mean_abs_diff", "step_to_step_noise_baseline")})
PY
}

run_phase() {
  case "$1" in
    after)       runbook_stage1 after yes ;;
    after-flags) runbook_stage1 after-flags yes --per-device-train-batch-size 2 --gradient-accumulation-steps 16 ;;
    before)      runbook_stage1 before no --no-packing ;;
    loss)        phase_loss ;;
  esac
}

if [ "$PHASE" = all ]; then
  CALL_LIMIT_S=100000
  for p in after after-flags before loss; do T_START=$(date +%s); CALL_LIMIT_S=100000; run_phase "$p"; done
else
  run_phase "$PHASE"
fi
ls -la "$OUT/bench/results" "$LOGS"
