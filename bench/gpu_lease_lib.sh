# Shared by the one-lease GPU drivers (bench/gpu_levers_and_8b_runbook.sh, bench/gpu_sweeps_and_1.5b.sh): logging,
# the record of every command run, retries of resumable commands, GPU memory polls, and the T2S_SMOKE copies of the
# config files. Source it after setting B (the lease folder) and SMOKE (non-empty: a CPU smoke run).
T0=${T0:-$(date +%s)}
say() { echo "$(date -u +%T) +$(( $(date +%s) - T0 ))s $*"; }
elapsed() { echo $(( $(date +%s) - T0 )); }
job() { local name=$1; shift; say "start $name: $*"; "$@" > "$B/$name.log" 2>&1; local rc=$?; say "end $name rc=$rc"; return $rc; }
retry() {  # every command run this way resumes; a vLLM engine can fail to start while another process frees memory
  local i; for i in 1 2; do "$@" && return 0; say "retry $i after a failure: $*"; sleep 15; done; "$@"; }
record() { echo "# $(date -u +%FT%TZ) CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-all}" >> "$B/commands.sh"
           printf '%q ' "$@" | sed 's/ $//' >> "$B/commands.sh"; echo >> "$B/commands.sh"; }
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
