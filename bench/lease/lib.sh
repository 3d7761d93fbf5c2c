# Shared by the drivers that run a whole lease in the background (bench/sweep.sh, records/drivers/): logging,
# the record of every command run, retries of resumable commands, GPU memory polls, and the T2S_SMOKE copies of the
# config files, the data and model setup. Source it after setting R (the repository), B (the lease folder) and W
# (the work folder), then call driver_env (T2S, S and L (the 0.5B and 1.5B models), VALID, SMOKE, SMOKE_TRAIN,
# SMOKE_EVAL, SMOKE_VALID).
T0=${T0:-$(date +%s)}

driver_env() {  # what every lease driver starts with: the environment, the two models, and the T2S_SMOKE cuts
  # (tests/fake_vllm answers every prompt; 6 questions, 1 training step; T2S_SMOKE_MODEL stands in for both models)
  export PYTHONPATH=/tmp/site:$R HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 TOKENIZERS_PARALLELISM=false \
    PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0 T2S_FAST_CACHE=/tmp/t2s-cache T2S_FAST_GGUF_DIR=/tmp/pay/models
  T2S="python3 -m t2s_fast"; SMOKE=${T2S_SMOKE:-}; SMOKE_TRAIN=(); SMOKE_EVAL=(); SMOKE_VALID=()
  VALID=data/prepared/stage1_valid.jsonl; S=qwen2.5-coder-0.5b; L=qwen2.5-coder-1.5b
  [ -n "$SMOKE" ] || return 0
  export PYTHONPATH=$R/tests/fake_vllm:$PYTHONPATH
  SMOKE_TRAIN=(--max-steps 1 --per-device-train-batch-size 1 --gradient-accumulation-steps 1 --max-seq-length 1024)
  SMOKE_EVAL=(--limit 6); S=${T2S_SMOKE_MODEL:-$S}; L=$S
  mkdir -p "$B/smoke"; head -n 6 /tmp/pay/prep05/stage1_valid.jsonl > "$B/smoke/valid6.jsonl"; VALID=$B/smoke/valid6.jsonl
  SMOKE_VALID=(--eval-file "$VALID")  # an eval loss over the whole held-out file takes minutes on a CPU
}
say() { echo "$(date -u +%T) +$(( $(date +%s) - T0 ))s $*"; }
elapsed() { echo $(( $(date +%s) - T0 )); }
job() { local name=$1; shift; say "start $name: $*"; "$@" > "$B/$name.log" 2>&1; local rc=$?; say "end $name rc=$rc"; return $rc; }
retry() {  # every command run this way resumes; a vLLM engine can fail to start while another process frees memory
  local i; for i in 1 2; do "$@" && return 0; say "retry $i after a failure: $*"; sleep 15; done; "$@"; }
record() {  # one write per command, so that jobs running side by side do not interleave their lines
  local line; line=$(printf '%q ' "$@")
  printf '# %s CUDA_VISIBLE_DEVICES=%s\n%s\n' "$(date -u +%FT%TZ)" "${CUDA_VISIBLE_DEVICES:-all}" "${line% }" >> "$B/commands.sh"; }
run() { record "$@"; "$@"; }
gpu_used() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | sed -n "$(( ${1:-0} + 1 ))p"; }
wait_for_engine() {  # until GPU $4 (default 0) memory grew by $1 MiB over $3 (the engine took its share), at most $2 s
  local base=$3 gpu=${4:-0} used
  for _ in $(seq "$(( $2 / 2 ))"); do used=$(gpu_used "$gpu"); [ "$(( ${used:-0} - base ))" -gt "$1" ] && break; sleep 2; done
  say "GPU $gpu memory used: ${used:-?} MiB (was $base)"
}
config() {  # the committed config file, or under SMOKE a copy cut to 6 questions, 1 training step, 2 variants
  # (and with T2S_SMOKE_MODEL, that model in place of the real one)
  [ -z "$SMOKE" ] && { echo "$R/$1"; return; }
  mkdir -p "$B/smoke"; python3 - "$R/$1" "$B/smoke/$(basename "$1")" "${T2S_SMOKE_MODEL:-}" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
if sys.argv[3]:  # a tiny stand-in model for the CPU
    c.get("train", {}).update(model_name=sys.argv[3]) if "train" in c else None
    c["eval"]["base_model"] = sys.argv[3] if "base_model" in c.get("eval", {}) else None
    c["eval"] = {k: v for k, v in c["eval"].items() if v is not None}
for key in ("eval", "heldout", "final"):
    if isinstance(c.get(key), dict):
        c[key]["limit"] = 6
if "train" in c:
    c["train"].update(max_steps=1, per_device_train_batch_size=1, gradient_accumulation_steps=1, max_seq_length=1024,
                      save_steps=1, eval_steps=1)
    c["variants"] = c.get("variants", [])[:2]
    if c["train"].get("eval_file"):  # its first 6 lines: an eval loss over the whole file takes minutes on a CPU
        short = sys.argv[2] + ".valid6.jsonl"
        open(short, "w").writelines(open(c["train"]["eval_file"]).readlines()[:6])
        c["train"]["eval_file"] = short
    c["grid"] = {k: v[:1] for k, v in c.get("grid", {}).items()}
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
  echo "$B/smoke/$(basename "$1")"; }

on_gpu() { local g=$1; shift; if [ -n "$SMOKE" ]; then "$@"; else CUDA_VISIBLE_DEVICES=$g "$@"; fi; }

setup_data() {
  mkdir -p /tmp/t2s-data; [ -d /tmp/t2s-data/spider1 ] || tar -C /tmp/t2s-data -xf /tmp/pay/data.tar.*
  [ -d /tmp/pay/prep05 ] || tar -C /tmp/pay -xzf /tmp/pay/prep.tar.gz
  ln -sfn /tmp/t2s-data/spider1 "$W/data/spider1"; ln -sfn /tmp/t2s-data/spider2 "$W/data/spider2"
  ln -sfn /tmp/pay/prep05 "$W/data/prepared"
  if [ -n "$SMOKE" ] && [ -n "${T2S_SMOKE_MODEL:-}" ]; then
    [ -d "$W/runs/stage1/adapter" ] || (cd "$W" && $T2S train --model-name "$S" --train-file data/prepared/stage1_train.jsonl \
      --output-dir runs/stage1 "${SMOKE_TRAIN[@]}" > /dev/null 2>&1)
  else mkdir -p "$W/runs/stage1"; [ -d "$W/runs/stage1/adapter" ] || cp -r /tmp/pay/adapters05/stage1/adapter "$W/runs/stage1/"; fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$B/device.txt"
  python3 -m t2s_fast.runinfo "$B/versions.json"
}
setup_model() { run python3 -c "import sys; from t2s_fast.models import resolve_model; print(resolve_model(sys.argv[1]).path)" "$1"; }

repair_trained() {  # repair by error feedback (b), with a model trained on real failures of the training split
  cd "$W" || return 1
  retry run $T2S eval --backend vllm --base-model "$S" --adapter stage1=runs/stage1/adapter --repair none \
    --suite jsonl --questions data/prepared/stage1_train.jsonl --db-root data/spider1/database --workers 8 \
    --timeout 10 --gpu-memory-utilization 0.15 --vllm-cache-dir runs/vllm-cache --out-dir runs/eval-train-split \
    "${SMOKE_EVAL[@]}" || return 1
  run $T2S prepare-repair --scored runs/eval-train-split/scored.jsonl --questions data/prepared/stage1_train.jsonl \
    --out runs/repair/repair_train.jsonl --spider-dir data/spider1 || return 1
  cat data/prepared/stage1_train.jsonl runs/repair/repair_train.jsonl > runs/repair/stage1_train_plus_repair.jsonl
  wc -l runs/repair/*.jsonl
  run $T2S train --model-name "$S" --train-file runs/repair/stage1_train_plus_repair.jsonl \
    --eval-file "$VALID" --output-dir runs/stage1-repair --max-cost-usd 40 \
    --gpu-hourly-usd 3.44 --packing "${SMOKE_TRAIN[@]}" 2>&1 | grep -v '^train:' | tail -25
  [ -d runs/stage1-repair/adapter ] || return 1
  retry run $T2S ablate --config "$(config records/configs/ablate/repair-trained-qwen2.5-coder-0.5b.json)"
}
