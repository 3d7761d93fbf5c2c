#!/usr/bin/env bash
# The payload a rented GPU machine needs for the bench/ drivers (it reaches nothing outside), both ends of it:
#
#   bash bench/lease/payload.sh build DIR [MODEL ...]   here, in the repository root: wheels, data, models -> .p1 ... .pN
#   bash bench/lease/payload.sh land N                  there, carrying .pN, after `bash .pK/land.sh` for K < N
#   bash bench/lease/payload.sh collect WORK_DIR        there: what a driver wrote so far -> $OUT/results.tgz
#   bash bench/lease/payload.sh keep WORK_DIR [K]       there: what a later lease starts from -> $OUT/start.tgz.NN
#
# build: DIR gets the vLLM and training wheel sets (../shared/tools/*-wheels.sh) with gguf and rapidfuzz, the
# Spider 1.0 and 2.0 folders as data.tar.xz, per MODEL (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b) its GGUF under
# models/ and `t2s-fast prepare`'s files measured with its tokenizer as prep-MODEL.tar.xz, and the Qwen3-8B config
# and tokenizer (the 8B shape: speed and memory only; 16 MiB) when no MODEL is named or WITH_SHAPE=1. Then it
# splits DIR into parts with ../shared/tools/gpu-payload/pack.sh, each as large as one call carries beside the
# working tree (64 MiB less the tree less 1 MiB; PART_SIZE, e.g. 48M, overrides). Pieces already in DIR are
# kept, so a second build only adds (one without the 8B shape removes its two folders from DIR).
#
# land: joins the parts landed in /tmp/pk, installs the wheels into /tmp/site, unpacks the data into /tmp/t2s-data
# and each prep-MODEL into /tmp/pay/prep-MODEL, and copies the code a background driver runs to /tmp/repo (a later
# call must not replace what a running job reads). It runs assemble.sh from /tmp, never from the repository root:
# there it copies from every .pK folder and stops (set -e) at the first one without payload.sha256, assembling
# nothing (that once cost a whole lease). Then, in the same call:
#   . /tmp/pay/env.sh && cd /tmp/repo && (setsid bash bench/rl_real_model.sh ... > /tmp/driver.log 2>&1 < /dev/null &)
#
# keep: what a later lease can start from, in 15 MiB pieces ($OUT brings back at most 16 MiB a file): the SFT
# start (sft/: adapter, run.json, train log), every finished filter pass (rl-*/prompts/), and each GRPO run's newest
# complete checkpoint whole (adapter, optimizer, trainer state: what --resume continues from), its older
# checkpoints' adapters (the held-out choice reads every one) and its train log (the dollars spent so far). Batch 0
# packs afresh into /tmp/keep and brings back its first KEEP_PIECES_PER_CALL (3) pieces; `keep WORK_DIR K` brings
# back batch K, one call each, as it prints. `START=FOLDER_OF_PIECES bash bench/lease/payload.sh build ...` packs
# them, land unpacks them to /tmp/pay/start, and `cp -r /tmp/pay/start/. WORK_DIR/` before the driver starts makes
# it skip SFT (its adapter is there), reuse the filter pass (its settings key matches: the same adapter and training
# file, by path and by content, and the same filter settings, RL_PROMPTS included) and continue each GRPO run from
# its checkpoint (the driver passes --resume; a larger RL_STEPS trains on, dollars carried over).
#
# collect: logs, run.json files, train logs, curves, filter summaries, reports and gzipped per-question files (no
# weights, optimizer states or caches), so that a lease cut short still brings back what finished.
set -euo pipefail
# $OUT brings back 8 files of 16 MiB, 64 MiB in all, per call: 3 pieces leave room for collect's results.tgz
KEEP_PIECES_PER_CALL=${KEEP_PIECES_PER_CALL:-3}
what=${1:?usage: bench/lease/payload.sh build DIR [MODEL ...] | land N | collect WORK_DIR | keep WORK_DIR [K]}; shift

part_size() {  # what one call carries beside the working tree that travels with it (tracked and untracked,
  # not ignored), in whole MiB: 64 less the tree (rounded up) less 1 for the transfer's own overhead
  local tree; tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 cat 2>/dev/null | wc -c)
  echo "$(( 64 - (tree + 1048575) / 1048576 - 1 ))M"
}

build() {
  local dir=${1:?payload dir}; shift; local here shared m n
  here=$(pwd); shared=$(cd "$here/../shared" && pwd)
  mkdir -p "$dir/models"; dir=$(cd "$dir" && pwd)
  [ -d "$dir/wheels-vllm" ] || bash "$shared/tools/vllm-wheels.sh" "$dir/wheels-vllm"
  [ -d "$dir/wheels-train" ] || bash "$shared/tools/gpu-wheels.sh" "$dir/wheels-train"
  if [ ! -d "$dir/wheels-extra" ]; then
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform any -d "$dir/wheels-extra.partial" gguf==0.19.0 'rapidfuzz>=3.9,<4' 2>&1 | grep -v "is ignored" || true
    mv "$dir/wheels-extra.partial" "$dir/wheels-extra"
  fi
  [ -f "$dir/data.tar.xz" ] || XZ_OPT=-6 tar -C "$shared/data" -cJf "$dir/data.tar.xz" spider1 spider2
  if [ $# = 0 ] || [ -n "${WITH_SHAPE:-}" ]; then
    [ -d "$dir/qwen3-8b-config" ] || cp -r "$shared/assets/qwen3-8b-config" "$dir/"
    [ -d "$dir/qwen3-tokenizer" ] || cp -r "$shared/assets/qwen3-tokenizer" "$dir/"
  else
    rm -rf "$dir/qwen3-8b-config" "$dir/qwen3-tokenizer"
  fi
  for m in "$@"; do
    compgen -G "$dir/models/$m-*.gguf" > /dev/null || bash "$shared/tools/small-model-gguf.sh" "$m" "$dir/models"
    if [ ! -f "$dir/prep-$m.tar.xz" ]; then
      local tmp; tmp=$(mktemp -d)
      T2S_FAST_GGUF_DIR="$dir/models" python3 -m t2s_fast prepare --spider-dir "$shared/data/spider1" \
        --spider2-dir "$shared/data/spider2" --out-dir "$tmp/prep-$m" --tokenizer "$m" --stage2-replay-ratio 4
      tar -C "$tmp" -cJf "$dir/prep-$m.tar.xz" "prep-$m" && rm -rf "$tmp"
    fi
  done
  if [ -n "${START:-}" ]; then cat "$START"/start.tgz.* > "$dir/start.tgz"; else rm -f "$dir/start.tgz"; fi
  du -sh "$dir"/*
  bash "$shared/tools/gpu-payload/pack.sh" "$dir" "${PART_SIZE:-$(part_size)}" > /dev/null
  n=$(ls -d .p[0-9]* | wc -l)
  echo "parts: $n; device calls back to back: \`bash .pK/land.sh\` carrying .pK (K < $n), then, carrying .p$n:"
  echo "  bash bench/lease/payload.sh land $n"
}

land() {
  local n=${1:?the number of the last part folder, .pN} r m; r=$(pwd)
  [ -d ".p$n" ] || { echo "no .p$n here: carry it in this call" >&2; exit 2; }
  mkdir -p /tmp/pk && cp ".p$n"/part.* /tmp/pk/
  (cd /tmp && bash "$r/.p$n/assemble.sh")
  mkdir -p /tmp/t2s-data && [ -d /tmp/t2s-data/spider1 ] || tar -C /tmp/t2s-data -xJf /tmp/pay/data.tar.xz
  for m in /tmp/pay/prep-*.tar.xz; do [ -f "$m" ] && tar -C /tmp/pay -xJf "$m"; done
  [ -f /tmp/pay/start.tgz ] && mkdir -p /tmp/pay/start && tar -C /tmp/pay/start -xzf /tmp/pay/start.tgz \
    && echo "an earlier lease's kept start (SFT, filter passes, GRPO checkpoints): /tmp/pay/start" \
    && echo "  (cp -r /tmp/pay/start/. WORK_DIR/ before the driver starts)"
  ls /tmp/pay /tmp/pay/models
  # the whole working tree but the part folders: a driver may read committed records and configs too
  rm -rf /tmp/repo && mkdir -p /tmp/repo && tar --exclude='./.p[0-9]*' --exclude=./.git -cf - . | tar -C /tmp/repo -xf -
  # the drivers' own environment (bench/lease/lib.sh's driver_env), for a shell that starts one
  printf 'R=/tmp/repo; . /tmp/repo/bench/lease/lib.sh && driver_env\n' > /tmp/pay/env.sh
  echo "landed: . /tmp/pay/env.sh; data in /tmp/t2s-data (spider1, spider2), prepared files in /tmp/pay/prep-MODEL,"
  echo "code in /tmp/repo; start a driver with: setsid bash /tmp/repo/bench/<driver>.sh ... > LOG 2>&1 < /dev/null &"
}

collect() {
  local b=${1:?work dir} f; : "${OUT:?}"
  while IFS= read -r -d '' f; do gzip -kf "$f"; done < <(find "$b" -name scored.jsonl -not -path '*/vllm-cache/*' -print0)
  tar -C "$b" -czf "$OUT/results.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.pth' \
    --exclude='*.bin' --exclude='vllm-cache' --exclude='.t2s_model_cache' --exclude='shape-adapter' \
    --exclude='scored.jsonl' --exclude='*/checkpoints/*/tokenizer*' --exclude='*/adapter/tokenizer*' \
    --exclude='merged' . 2>/dev/null || true
  ls -la "$OUT"
}

keep() {  # keep WORK_DIR [BATCH]: BATCH 0 (the default) packs afresh; each call brings back one batch of pieces
  local b=${1:?work dir} k=${2:-0} parts=() complete d c step newest pieces i; : "${OUT:?}"
  local store=${KEEP_STORE:-/tmp/keep} per=$KEEP_PIECES_PER_CALL
  if [ "$k" = 0 ]; then
    [ -f "$b/sft/adapter/adapter_model.safetensors" ] && parts+=(sft/adapter sft/run.json sft/train_log.jsonl)
    for d in "$b"/rl-*/prompts; do [ -f "$d/pass.json" ] && parts+=("${d#"$b"/}"); done
    for d in "$b"/rl-*/; do  # GRPO runs: the newest complete checkpoint whole (resume), the older ones' adapters
      newest=-1; complete=()  # complete: the marker, else trainer_state.json (what last_complete_checkpoint reads)
      for c in "$d"checkpoints/checkpoint-*; do
        step=${c##*-}
        [[ $step =~ ^[0-9]+$ ]] || continue
        [ -f "$c/t2s_checkpoint_complete" ] || [ -f "$c/trainer_state.json" ] || continue
        complete+=("$c"); [ "$step" -gt "$newest" ] && newest=$step
      done
      [ "$newest" -ge 0 ] || continue
      parts+=("${d#"$b"/}checkpoints/checkpoint-$newest")
      [ -f "${d}train_log.jsonl" ] && parts+=("${d#"$b"/}train_log.jsonl")
      for c in "${complete[@]}"; do
        [ "${c##*-}" != "$newest" ] && [ -f "$c/adapter_model.safetensors" ] || continue
        for f in adapter_model.safetensors adapter_config.json trainer_state.json t2s_checkpoint_complete; do
          [ -f "$c/$f" ] && parts+=("${c#"$b"/}/$f")
        done
      done
    done
    [ ${#parts[@]} -gt 0 ] || { echo "nothing finished to keep in $b" >&2; return 1; }
    rm -rf "$store" && mkdir -p "$store"
    tar -C "$b" -czf - "${parts[@]}" | split -b 15M -d - "$store/start.tgz."
  fi
  pieces=("$store"/start.tgz.*)
  [ -f "${pieces[0]}" ] || { echo "nothing kept yet: run keep $b (batch 0) first" >&2; return 1; }
  for ((i = k * per; i < (k + 1) * per && i < ${#pieces[@]}; i++)); do cp "${pieces[$i]}" "$OUT/"; done
  local last=$(( (k + 1) * per < ${#pieces[@]} ? (k + 1) * per - 1 : ${#pieces[@]} - 1 ))
  echo "kept: ${#pieces[@]} pieces of at most 15 MiB in $store; this call brought back pieces $(( k * per ))-$last"
  if [ "$last" -lt $(( ${#pieces[@]} - 1 )) ]; then
    echo "next: OUT=\$OUT bash bench/lease/payload.sh keep $b $(( k + 1 ))"
  else
    echo "all ${#pieces[@]} pieces brought back"
  fi
  return 0
}

case "$what" in
  build|land|collect|keep) "$what" "$@" ;;
  *) echo "unknown: $what (build, land, collect or keep)" >&2; exit 2 ;;
esac
