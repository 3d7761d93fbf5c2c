#!/usr/bin/env bash
# Stage 3 (GRPO) on a real pretrained model, measured: SFT stage 1, the prompt filter, GRPO at two learning rates
# side by side, every checkpoint and the SFT start on held-out data in one engine, the held-out choice on Spider
# dev (greedy, the default repair, maj@8; per-question files) in that same engine (if it fails, each evaluation
# runs in an engine of its own, resuming from what it wrote), then GRPO steps/s and peak memory at the Qwen3-8B
# shape (random init: speed and memory only).
#
#   bash bench/rl_real_model.sh MODEL DATA_DIR PREPARED_DIR WORK_DIR      (a GPU machine with the wheels installed)
#   T2S_SMOKE=1 bash bench/rl_real_model.sh TINY_MODEL_DIR ...           (the plumbing on a CPU: a few questions,
#                                                                         2 steps, or RL_STEPS when given; no figure
#                                                                         from it means anything)
# MODEL: an alias (qwen2.5-coder-0.5b) or a model folder; DATA_DIR holds spider1/ (with database/);
# PREPARED_DIR holds `t2s-fast prepare`'s stage1_train.jsonl and stage1_valid.jsonl. Settings by environment:
# RL_STEPS (40), RL_LRS ("1e-5 3e-5"), RL_PROMPTS (2000: training prompts sampled for the filter), RL_SAVE (10),
# RL_ARGS (more `t2s-fast rl` flags for every GRPO run); SFT_EPOCHS (1), SFT_LR (4e-4), SFT_MAX_STEPS (-1: the
# epochs); STOP_AFTER_RL (1: end after the GRPO runs and the Unsloth run; with RL_LRS="0 4e-5" and a short
# SFT_MAX_STEPS it is the weight-sync check, bench/README.md); UNSLOTH_STEPS (6: the Unsloth engine's short run,
# last; 0 skips it), UNSLOTH_LR (its rate; default: the first of RL_LRS);
# DEADLINE (epoch seconds the lease ends; each GRPO run then gets the --max-cost-usd that stops it RESERVE_S, 600,
# before it, so the held-out choice and Spider dev still run; without it $10); a GRPO run whose filter pass samples
# in its own colocated engine (the default) that fails before the pass is written runs again with --filter-engine
# separate;
# SHAPE_CONFIG (a Qwen3-8B config.json; empty: skip the 8B-shape phase), SHAPE_TOKENIZER, SHAPE_STEPS (4),
# ONLY_SHAPE (1: that phase alone), SHAPE_ARGS (more rl flags for it, e.g. "--engine unsloth --load-in-4bit" or
# "--no-gradient-checkpointing --micro-batch-completions 8") and SHAPE_TAG (its folder: rl-shape-8b-TAG).
# Logs: WORK_DIR/<job>.log; every command run: WORK_DIR/commands.sh; WORK_DIR/ALLDONE at the end.
# A WORK_DIR holding a kept start (bench/lease/payload.sh keep) goes on from it: SFT is skipped when its adapter is
# there, a filter pass with the same settings is reused, and each GRPO run resumes from its newest checkpoint (a
# larger RL_STEPS trains on; the dollars already spent count).
set -uo pipefail
M=${1:?model}; DATA=${2:?data dir with spider1/}; PREP=${3:?prepared dir}; B=${4:?work dir}
R=$(cd "$(dirname "$0")/.." && pwd); T2S="python3 -m t2s_fast"; T0=$(date +%s)
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 \
  UNSLOTH_DISABLE_STATISTICS=1
RL_STEPS_GIVEN=${RL_STEPS:-}; RL_STEPS=${RL_STEPS:-40}; RL_LRS=${RL_LRS:-"1e-5 3e-5"}; RL_PROMPTS=${RL_PROMPTS:-2000}
SFT_EPOCHS=${SFT_EPOCHS:-1}; SFT_LR=${SFT_LR:-4e-4}; SAVE=${RL_SAVE:-10}
SMOKE=${T2S_SMOKE:-}; CUT=(); SFT_CUT=(); RL_CUT=()
GEN=(--gpu-memory-utilization 0.15 --vllm-cache-dir "$B/vllm-cache")
VALID=$PREP/stage1_valid.jsonl; TRAIN=$PREP/stage1_train.jsonl
mkdir -p "$B"
if [ -n "$SMOKE" ]; then
  CUT=(--limit 6); SFT_CUT=(--max-steps 1 --max-seq-length 1024 --per-device-train-batch-size 1
  --gradient-accumulation-steps 1 --no-auto-setup --no-packing); RL_STEPS=${RL_STEPS_GIVEN:-2}; SAVE=1; RL_PROMPTS=4
  RL_CUT=(--filter-samples 2 --filter-min-correct 0 --num-generations 2 --prompts-per-step 2
          --micro-batch-completions 2 --max-completion-length 8 --reward-workers 1); GEN=()
  head -n 6 "$VALID" > "$B/valid6.jsonl"; VALID=$B/valid6.jsonl
  head -n 40 "$TRAIN" > "$B/train40.jsonl"; TRAIN=$B/train40.jsonl
fi
source "$R/bench/lease/lib.sh"  # say, run (every command into $B/commands.sh), job (its log: $B/NAME.log)

sft() {
  [ -d "$B/sft/adapter" ] || run $T2S train --model-name "$M" --train-file "$TRAIN" \
    --output-dir "$B/sft" --num-train-epochs "$SFT_EPOCHS" --max-steps "${SFT_MAX_STEPS:--1}" \
    --learning-rate "$SFT_LR" --max-cost-usd 5 \
    "${SFT_CUT[@]}"
}
grpo() {  # grpo NAME LR FLAGS...: GRPO from the SFT adapter into WORK_DIR/rl-NAME (FLAGS last: they win)
  run $T2S rl --model-name "$M" --train-file "$TRAIN" --adapter-path "$B/sft/adapter" \
    --db-root "$DATA/spider1" --output-dir "$B/rl-$1" --learning-rate "$2" --max-prompts "$RL_PROMPTS" \
    --vllm-gpu-memory-utilization 0.25 --vllm-cache-dir "$B/vllm-cache" --resume "${RL_CUT[@]}" "${@:3}"
}
rl_budget() {  # the dollars that end a GRPO run RESERVE_S before DEADLINE (at the card's $3.44/h), else $10
  [ -n "${DEADLINE:-}" ] || { echo 10; return; }
  python3 -c "import time; print(round(max($DEADLINE - time.time() - ${RESERVE_S:-600}, 60) * 3.44 / 3600, 4))"
}
rl() {  # rl NAME LR: the measured runs (RL_STEPS, RL_SAVE, RL_ARGS)
  local rc
  grpo "$1" "$2" --max-steps "$RL_STEPS" --save-steps "$SAVE" --max-cost-usd "$(rl_budget)" ${RL_ARGS:-}; rc=$?
  # the pass samples in the run's own engine (the default); a run that failed before writing it runs again with
  # the pass in an engine of its own
  if [ $rc != 0 ] && [[ " ${RL_ARGS:-} " != *" --filter-engine separate "* ]] && [ ! -f "$B/rl-$1/prompts/pass.json" ]
  then
    say "rl-$1: exit $rc before the colocated filter pass was written: again, the pass in its own engine"
    grpo "$1" "$2" --max-steps "$RL_STEPS" --save-steps "$SAVE" --max-cost-usd "$(rl_budget)" ${RL_ARGS:-} \
      --filter-engine separate; rc=$?
  fi
  return $rc
}
candidates() {  # the SFT start and every checkpoint of every GRPO run as name=path; a run's final adapter too when
  # no checkpoint holds its last step (a budget stop between checkpoints)
  local d c n last
  echo "sft=$B/sft/adapter"
  for d in "$B"/rl-lr*/; do n=$(basename "$d"); for c in "$d"checkpoints/checkpoint-*; do
    [ -f "$c/adapter_model.safetensors" ] && echo "$n-step-${c##*-}=$c"; done
    last=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['global_step'])" "$d/run.json" 2>/dev/null)
    [ -d "$d/adapter" ] && [ ! -f "${d}checkpoints/checkpoint-$last/adapter_model.safetensors" ] \
      && echo "$n-final=$d/adapter"; done
}
write_one_engine() {  # the held-out choice, then Spider dev greedy / repair / maj@8 of the SFT start and the
  # choice, through one engine (the sweep's LazyEngine): one engine start instead of four. Written into WORK_DIR,
  # so the folder holds what ran; commands.sh has its command line.
  cat > "$B/choose_and_report.py" <<'PY'
"""Every candidate on held-out data, the choice (highest EX; ties: the SFT start, then the earlier checkpoint)
into chosen.txt, then the SFT start and the choice on Spider dev greedy, with the default repair and by maj@8,
each in its own folder with its per-question file, all through one engine (written by bench/rl_real_model.sh).
  python3 choose_and_report.py WORK MODEL VALID SPIDER_DIR LIMIT GPU_SHARE CACHE_DIR NAME=PATH ...
  python3 choose_and_report.py --choose HELDOUT_REPORT_JSON     (the choice alone: "name path")
Everything runs under `if __name__ == "__main__"`: vLLM starts its engine core in a spawned process, which imports
this script again (as __mp_main__) and must find nothing to run.
"""
import json
import sys
from pathlib import Path

from t2s_fast.evaluate.config import EvalConfig
from t2s_fast.evaluate.harness import evaluate
from t2s_fast.evaluate.lazy_engine import LazyEngine


def choice(ex: dict) -> str:
    """The highest EX; ties: the SFT start, then the earlier checkpoint, then a run's final adapter."""
    def step(name):
        tail = name.rsplit("-", 1)[-1]
        return -1 if name == "sft" else (10**9 if tail == "final" else int(tail))
    return max(ex, key=lambda n: (ex[n], -step(n)))


def main(argv: list[str]) -> None:
    if argv[0] == "--choose":
        adapters = json.load(open(argv[1]))["adapters"]
        best = choice({name: a["ex"] for name, a in adapters.items()})
        print(best, adapters[best]["path"])
        return
    work, model, valid, spider, limit, share, cache = argv[:7]
    adapters = dict(a.split("=", 1) for a in argv[7:])
    engine_settings = dict(base_model=model, adapters=adapters, timeout=10, limit=int(limit) if limit else None,
                           **({"gpu_memory_utilization": float(share)} if share else {}),
                           **({"vllm_cache_dir": cache} if cache else {}))
    held = EvalConfig(**engine_settings, suite="heldout", questions=valid, spider_dir=spider, repair="none",
                      workers=12, out_dir=f"{work}/heldout")
    engine = LazyEngine(held)
    try:
        ex = {name: a["ex"] for name, a in evaluate(held, generator=engine)["adapters"].items()}
        best = choice(ex)
        Path(work, "chosen.txt").write_text(f"{best} {adapters[best]}\n")
        print(f"chosen on held-out: {best} (EX {ex[best]:.4f})", flush=True)
        finalists = {n: adapters[n] for n in ("sft", best)}
        for name, decoding in (("greedy", {"repair": "none"}), ("repair", {"repair": "auto"}),
                               ("maj8", {"repair": "none", "n_samples": 8, "temperature": 0.8})):
            report = evaluate(EvalConfig(**{**engine_settings, "adapters": finalists}, suite="spider1",
                                         spider_dir=spider, workers=6, out_dir=f"{work}/dev-{name}", **decoding),
                              generator=engine)
            print(f"dev {name}: " + ", ".join(f"{n} {a['ex']:.4f}" for n, a in report["adapters"].items()),
                  flush=True)
    finally:
        engine.close()
    print(f"engine opened once, in {engine.open_seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
PY
}
one_engine() {
  local limit= share= cache=; [ -n "$SMOKE" ] && limit=6
  # alone on the card once GRPO has ended, unless the 8B-shape run shares it: more memory, more sequences at once
  [ ${#GEN[@]} -gt 0 ] && cache=$B/vllm-cache && share=$([ -n "${SHAPE_CONFIG:-}" ] && echo 0.15 || echo 0.6)
  mapfile -t cands < <(candidates)
  write_one_engine
  run python3 "$B/choose_and_report.py" "$B" "$M" "$VALID" "$DATA/spider1" "$limit" "$share" "$cache" "${cands[@]}"
}
heldout() {  # (if the one engine failed) the candidates on held-out data in an engine of their own
  local ads=(); mapfile -t cands < <(candidates)
  for c in "${cands[@]}"; do ads+=(--adapter "$c"); done
  run $T2S eval --base-model "$M" "${ads[@]}" --suite heldout --questions "$VALID" --spider-dir "$DATA/spider1" \
    --repair none --workers 12 --timeout 10 --out-dir "$B/heldout" "${GEN[@]}" "${CUT[@]}"
}
chosen() {  # the best adapter on held-out EX, by the one engine's rule
  write_one_engine && python3 "$B/choose_and_report.py" --choose "$B/heldout/report.json"
}
dev() {  # dev NAME EXTRA...: the SFT start and the choice on Spider dev, under the choice's own name
  local name=$1; shift
  read -r best path < "$B/chosen.txt"
  local ads=(--adapter "sft=$B/sft/adapter"); [ "$best" = sft ] || ads+=(--adapter "$best=$path")
  run $T2S eval --base-model "$M" "${ads[@]}" --suite spider1 \
    --spider-dir "$DATA/spider1" --workers 6 --timeout 10 --out-dir "$B/dev-$name" "${GEN[@]}" "${CUT[@]}" "$@"
}
prepare_shape() {  # the random-init Qwen3-8B folder and a random adapter, made on the CPU while the GPU trains
  [ -n "${SHAPE_CONFIG:-}" ] || return 0
  run python3 "$R/bench/make_random_adapters.py" --base-model "$SHAPE_CONFIG" --out "$B/shape-adapter" --names a
  python3 - "$SHAPE_CONFIG" "$SHAPE_TOKENIZER" "$B/rl-shape-8b" <<'PY'
import sys
from t2s_fast.models import model_cache_dir, training_source  # the folder `t2s-fast rl` will load, made once
print(training_source(sys.argv[1], sys.argv[2], device_kind="cuda", cache_dir=model_cache_dir(sys.argv[3])))
PY
}
shape() {  # GRPO steps/s and peak memory at the Qwen3-8B shape (random init, random adapter, no filter pass)
  [ -n "${SHAPE_CONFIG:-}" ] || return 0
  wait "$SHAPE_PREP"
  run $T2S rl --model-name "$SHAPE_CONFIG" --tokenizer "$SHAPE_TOKENIZER" --train-file "$TRAIN" \
    --adapter-path "$B/shape-adapter/a" --db-root "$DATA/spider1" --output-dir "$B/rl-shape-8b${SHAPE_TAG:+-$SHAPE_TAG}" \
    --filter-samples 0 --max-prompts "${SHAPE_PROMPTS:-256}" --max-steps "${SHAPE_STEPS:-4}" --save-steps 1000 \
    --vllm-gpu-memory-utilization 0.3 --resume "${RL_CUT[@]}" ${SHAPE_ARGS:-}
}

SHAPE_JOB=shape-8b${SHAPE_TAG:+-$SHAPE_TAG}
say "driver start: $M"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$B/device.txt" 2>/dev/null
python3 -m t2s_fast.runinfo "$B/versions.json" 2>/dev/null
job prepare-shape prepare_shape & SHAPE_PREP=$!
if [ -n "${ONLY_SHAPE:-}" ]; then job "$SHAPE_JOB" shape; say "ALLDONE"; touch "$B/ALLDONE"; exit 0; fi
job sft sft || { say "SFT failed"; touch "$B/ALLDONE"; exit 1; }
set -- $RL_LRS; first=$1
kept_steps=$(cat "$B/rl-lr$first/train_log.jsonl" 2>/dev/null | wc -l)  # steps a kept start brought (payload.sh keep)
job "rl-lr$first" rl "lr$first" "$first" & pids=($!)
for lr in "${@:2}"; do  # the other rates reuse the first one's filter pass (same adapter, same settings); they
  # start once the first run has logged a step (a new one, when it continues a kept run): by then the filter's
  # engine has exited and the first run's colocated engine has taken its memory, so no engine profiles its memory
  # while another process frees or takes some
  while [ "$(cat "$B/rl-lr$first/train_log.jsonl" 2>/dev/null | wc -l)" -le "$kept_steps" ] \
    && kill -0 "${pids[0]}" 2>/dev/null; do sleep 5; done
  mkdir -p "$B/rl-lr$lr" && cp -r "$B/rl-lr$first/prompts" "$B/rl-lr$lr/" 2>/dev/null
  job "rl-lr$lr" rl "lr$lr" "$lr" & pids+=($!)
done
wait "${pids[@]}"
unsloth_engine() {  # the same GRPO through Unsloth's fast_inference engine, a few steps, for its seconds per step
  mkdir -p "$B/rl-unsloth" && cp -r "$B/rl-lr$first/prompts" "$B/rl-unsloth/" 2>/dev/null
  grpo unsloth "${UNSLOTH_LR:-$first}" --engine unsloth --no-load-in-4bit --max-steps "${UNSLOTH_STEPS:-6}" \
    --save-steps 1000
}
unsloth() { [ -n "$SMOKE" ] || [ "${UNSLOTH_STEPS:-6}" = 0 ] || job rl-unsloth unsloth_engine; }
[ -n "${STOP_AFTER_RL:-}" ] && { unsloth; say "ALLDONE"; touch "$B/ALLDONE"; exit 0; }
if job choose-and-dev one_engine; then
  say "chosen on held-out: $(cat "$B/chosen.txt")"; DEV_DONE=1
else  # each evaluation in an engine of its own, resuming from what the one engine wrote
  say "the one-engine evaluation failed: engines of their own"
  job heldout heldout && chosen > "$B/chosen.txt" && say "chosen on held-out: $(cat "$B/chosen.txt")"
fi
# On a card of 100 GB or more the 8B-shape run loads (and its engine starts) while the dev evaluations run; its
# log has the times of its steps, the evaluations' logs theirs. On a smaller card it waits for them.
big=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -1)
s=
[ "${big:-0}" -ge 100000 ] && { job "$SHAPE_JOB" shape & s=$!; }
if [ -s "$B/chosen.txt" ] && [ -z "${DEV_DONE:-}" ]; then
  # one after another: engines that start side by side misjudge the free memory when they profile it (on an
  # 80 GB card one saw "Available KV cache memory: -1.57 GiB" with the 0.5B, two found none with the 1.5B)
  job dev-greedy dev greedy --repair none
  job dev-repair dev repair --repair auto
  job dev-maj8 dev maj8 --repair none --n-samples 8 --temperature 0.8
fi
if [ -n "$s" ]; then wait $s; else job "$SHAPE_JOB" shape; fi
unsloth
say "ALLDONE"; touch "$B/ALLDONE"
