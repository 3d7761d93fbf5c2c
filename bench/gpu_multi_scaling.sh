#!/usr/bin/env bash
# Issue 8: data-parallel scaling of `t2s-fast train` on one host: trained tokens/s on 1 GPU and on N GPUs
# (DDP, one process per GPU via `accelerate launch`), Qwen3-8B shape (random init, real tokenizer, real
# prepared stage-1 data), same per-GPU work (weak scaling: micro-batch x accumulation per GPU fixed).
#   NGPUS=4 BACKEND=unsloth bash bench/gpu_multi_scaling.sh   -> $OUT/bench/results/<date>-<device>-scaling.json
# scaling efficiency = tokens/s on N GPUs / (N x tokens/s on 1 GPU). run.json's trained_tokens_per_s already
# sums every GPU's tokens and leaves out the first (warm-up) step.
set -euo pipefail
# NCCL's NVLink multicast (NVLS) must stay off on the lent machines (../shared/notes, KINDS.md).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
source "$(dirname "$0")/gpu_setup.sh"
NGPUS=${NGPUS:-$(nvidia-smi -L | wc -l)}
BACKEND=${BACKEND:-unsloth}
STEPS=${STEPS:-6}
W=/tmp/t2s-scaling; rm -rf "$W"; mkdir -p "$W"
args=(--model-name "$T2S_MODEL" --train-file "$T2S_DATA" --backend "$BACKEND" --max-steps "$STEPS"
      --save-steps 100000 --max-seq-length 3072 --packing --per-device-train-batch-size 8
      --gradient-accumulation-steps 1 --gradient-checkpointing "${GC:-unsloth}" --attention sdpa-no-cudnn)

run() {  # run <n_gpus>
  local n=$1 out="$W/gpus-$1"
  local cmd=(python3 -m accelerate.commands.launch --num_processes "$n" --num_machines 1 --mixed_precision no
             --dynamo_backend no -m t2s_fast train "${args[@]}" --output-dir "$out")
  [ "$n" = 1 ] && cmd=(python3 -m t2s_fast train "${args[@]}" --output-dir "$out")
  echo "== $n GPU(s): ${cmd[*]}"
  CUDA_VISIBLE_DEVICES=$(seq -s, 0 $((n - 1))) timeout 1500 "${cmd[@]}" > "$W/gpus-$n.log" 2>&1 \
    || { echo "run on $n GPU(s) failed, tail of its log:"; tail -40 "$W/gpus-$n.log"; }
  mkdir -p "$OUT/logs/scaling"; cp "$W/gpus-$n.log" "$OUT/logs/scaling/"
  [ -f "$out/run.json" ] && cp "$out/run.json" "$OUT/logs/scaling/gpus-$n-run.json"
  [ -f "$out/train_log.jsonl" ] && cp "$out/train_log.jsonl" "$OUT/logs/scaling/gpus-$n-train_log.jsonl"
  return 0
}
run 1
run "$NGPUS"

python3 - "$W" "$NGPUS" "$OUT/bench/results" "$0 NGPUS=$NGPUS BACKEND=$BACKEND STEPS=$STEPS" <<'PY'
import json, subprocess, sys, datetime, pathlib
work, n, results, command = pathlib.Path(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3]), sys.argv[4]
def load(k):
    p = work / f"gpus-{k}" / "run.json"
    return json.loads(p.read_text()) if p.is_file() else None
one, many = load(1), load(n)
name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                      text=True).stdout.splitlines()[0].strip()
def row(info):
    if not info:
        return None
    keys = ("world_size", "global_batch", "trained_tokens_per_s", "steps_measured", "global_step", "backend",
            "peak_gpu_memory_allocated_gib", "peak_gpu_memory_reserved_gib", "wall_time_s", "stop_reason", "sft")
    return {k: info.get(k) for k in keys}
t1 = one and one.get("trained_tokens_per_s")
tn = many and many.get("trained_tokens_per_s")
eff = round(tn / (n * t1), 4) if t1 and tn else None
date = datetime.date.today().isoformat()
dev = name.lower().replace("nvidia ", "").replace(" ", "-")
out = {"date": date, "device": f"{n} x {name}", "command": command,
       "env": {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"},
       "versions": (many or one or {}).get("versions"), "model": "Qwen3-8B shape, random init, 4-bit QLoRA r16",
       "one_gpu": row(one), "n_gpus": row(many), "n": n,
       "speedup": round(tn / t1, 3) if t1 and tn else None, "scaling_efficiency": eff}
results.mkdir(parents=True, exist_ok=True)
path = results / f"{date}-{dev}-scaling.json"
path.write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps(out, indent=2)); print(f"wrote {path}")
PY
