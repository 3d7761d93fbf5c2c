# Session 5 lease (2026-11-29, 18:34-18:58 UTC), nvidia-h200-x2 (two H200s), commit 059bfa9's code (da78090 plus
# the land_last_part.sh fix below). Payload: 36 parts of 50 MiB (the vLLM and training wheels, gguf, rapidfuzz, the
# 0.5B and 1.5B GGUF files, Spider data, prepare's output, the runbook's 0.5B stage-1 adapter), landed with
#   bash .pK/land.sh                      (calls 1-35)
#   bash bench/land_last_part.sh 36       (call 36)
# then the driver, in the background:
#   setsid bash /tmp/repo/bench/gpu_chosen_recipes.sh > /tmp/s5/driver.log 2>&1 < /dev/null &
# The driver's first two jobs failed at once: land_last_part.sh copied only the code folders to /tmp/repo, and
# bench/recipe_config.py reads the committed sweep reports. The reports were copied in and the two jobs (and the
# ablation that needs them) ran again from bench/rescue.sh, a copy of the driver with only those three jobs
# (logs/rescue.log, logs/*_05b.log). land_last_part.sh now copies the whole working tree (059bfa9).
# Every command below ran from the work folder /tmp/s5/w (data/prepared, data/spider1, runs/); the environment:
#   PYTHONPATH=/tmp/site:/tmp/repo HF_HUB_OFFLINE=1 VLLM_USE_FLASHINFER_SAMPLER=0 T2S_FAST_CACHE=/tmp/t2s-cache
#   T2S_FAST_GGUF_DIR=/tmp/pay/models

# setup (CPU): the GGUF models as bfloat16 folders
python3 -c 'import sys; from t2s_fast.models import resolve_model; print(resolve_model(sys.argv[1]).path)' qwen2.5-coder-0.5b
python3 -c 'import sys; from t2s_fast.models import resolve_model; print(resolve_model(sys.argv[1]).path)' qwen2.5-coder-1.5b

# the sweeps' chosen recipes, as train configs (recipes/*.json), and their training
python3 bench/recipe_config.py eval/reports/2026-11-29-h200-sweeps-qwen2.5-coder-0.5b/stage1/sweep_state.json recipe-stage1-chosen.json --model-name qwen2.5-coder-0.5b --output-dir runs/stage1-chosen --prepared data/prepared
python3 bench/recipe_config.py eval/reports/2026-11-29-h200-sweeps-qwen2.5-coder-0.5b/stage2/sweep_state.json recipe-stage2-chosen.json --model-name qwen2.5-coder-0.5b --output-dir runs/stage2-chosen --prepared data/prepared
python3 bench/recipe_config.py eval/reports/2026-11-29-h200-sweeps-qwen2.5-coder-0.5b/stage1/sweep_state.json recipe-stage1-chosen-1.5b.json --model-name qwen2.5-coder-1.5b --output-dir runs/stage1-chosen-1.5b --prepared data/prepared
CUDA_VISIBLE_DEVICES=0 t2s-fast train --config recipe-stage1-chosen.json --output-dir runs/stage1-chosen
CUDA_VISIBLE_DEVICES=1 t2s-fast train --config recipe-stage2-chosen.json --output-dir runs/stage2-chosen
CUDA_VISIBLE_DEVICES=1 t2s-fast train --config recipe-stage1-chosen-1.5b.json --output-dir runs/stage1-chosen-1.5b

# repair (b) trained (GPU 0): the runbook adapter on its own training split, repair turns from its failures, stage 1 again
CUDA_VISIBLE_DEVICES=0 t2s-fast eval --backend vllm --base-model qwen2.5-coder-0.5b --adapter stage1=runs/stage1/adapter --suite jsonl --questions data/prepared/stage1_train.jsonl --db-root data/spider1/database --workers 8 --timeout 10 --gpu-memory-utilization 0.15 --vllm-cache-dir runs/vllm-cache --out-dir runs/eval-train-split
t2s-fast prepare-repair --scored runs/eval-train-split/scored.jsonl --questions data/prepared/stage1_train.jsonl --out runs/repair/repair_train.jsonl --spider-dir data/spider1
cat data/prepared/stage1_train.jsonl runs/repair/repair_train.jsonl > runs/repair/stage1_train_plus_repair.jsonl
CUDA_VISIBLE_DEVICES=0 t2s-fast train --model-name qwen2.5-coder-0.5b --train-file runs/repair/stage1_train_plus_repair.jsonl --eval-file data/prepared/stage1_valid.jsonl --output-dir runs/stage1-repair --max-cost-usd 40 --gpu-hourly-usd 3.44 --packing

# the ablations (one vLLM engine each; held-out set, then Spider dev)
CUDA_VISIBLE_DEVICES=0 t2s-fast ablate --config ablations/chosen-recipes-qwen2.5-coder-0.5b.json
CUDA_VISIBLE_DEVICES=1 t2s-fast ablate --config ablations/levers-qwen2.5-coder-1.5b.json
CUDA_VISIBLE_DEVICES=0 t2s-fast ablate --config ablations/repair-trained-qwen2.5-coder-0.5b.json

# after the driver (18:51-18:58, GPU 1, GPU 0 idle): the 1.5B runbook stage 1 (the README's command without
# --eval-file, to fit the lease) and its greedy EX on the held-out set
CUDA_VISIBLE_DEVICES=1 t2s-fast train --model-name qwen2.5-coder-1.5b --train-file data/prepared/stage1_train.jsonl --output-dir runs/stage1-1.5b --max-cost-usd 40 --gpu-hourly-usd 3.44 --packing
CUDA_VISIBLE_DEVICES=1 t2s-fast eval --backend vllm --base-model qwen2.5-coder-1.5b --adapter runbook=runs/stage1-1.5b/adapter --suite jsonl --questions data/prepared/stage1_valid.jsonl --db-root data/spider1/database --workers 8 --timeout 10 --gpu-memory-utilization 0.3 --vllm-cache-dir runs/vllm-cache --out-dir runs/eval-heldout-1.5b-runbook
