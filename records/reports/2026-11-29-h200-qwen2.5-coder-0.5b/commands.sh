# 2026-11-29T09:19:22Z
python3 -c import\ sys\;\ from\ t2s_fast.models\ import\ resolve_model\;\ r\ =\ resolve_model\(sys.argv\[1\]\)\;\ print\(r.path\) qwen2.5-coder-0.5b
# 2026-11-29T09:21:05Z
python3 -m t2s_fast prepare --spider-dir /tmp/t2s-data/spider1 --spider2-dir /tmp/t2s-data/spider2 --out-dir /tmp/t2s-real/qwen2.5-coder-0.5b/prepared --tokenizer /tmp/t2s-cache/models/qwen2.5-coder-0.5b-bfloat16
# 2026-11-29T09:22:02Z
python3 -m t2s_fast train --model-name qwen2.5-coder-0.5b --train-file /tmp/t2s-real/qwen2.5-coder-0.5b/prepared/stage1_train.jsonl --eval-file /tmp/t2s-real/qwen2.5-coder-0.5b/prepared/stage1_valid.jsonl --max-cost-usd 40 --gpu-hourly-usd 3.44 --packing --output-dir /tmp/t2s-real/qwen2.5-coder-0.5b/stage1
# 2026-11-29T09:27:31Z
python3 -m t2s_fast train --model-name qwen2.5-coder-0.5b --train-file /tmp/t2s-real/qwen2.5-coder-0.5b/prepared/stage1_train.jsonl --eval-file /tmp/t2s-real/qwen2.5-coder-0.5b/prepared/stage1_valid.jsonl --max-cost-usd 40 --gpu-hourly-usd 3.44 --packing --output-dir /tmp/t2s-real/qwen2.5-coder-0.5b/stage1-crash
# 2026-11-29T09:29:52Z
python3 -m t2s_fast train --model-name qwen2.5-coder-0.5b --train-file /tmp/t2s-real/qwen2.5-coder-0.5b/prepared/stage1_train.jsonl --eval-file /tmp/t2s-real/qwen2.5-coder-0.5b/prepared/stage1_valid.jsonl --max-cost-usd 40 --gpu-hourly-usd 3.44 --packing --output-dir /tmp/t2s-real/qwen2.5-coder-0.5b/stage1-crash --resume
# 2026-11-29T09:32:36Z
python3 -m t2s_fast train --model-name qwen2.5-coder-0.5b --train-file /tmp/t2s-real/qwen2.5-coder-0.5b/prepared/stage1_train.jsonl --eval-file /tmp/t2s-real/qwen2.5-coder-0.5b/prepared/stage1_valid.jsonl --max-cost-usd 40 --gpu-hourly-usd 3.44 --packing --output-dir /tmp/t2s-real/qwen2.5-coder-0.5b/stage1-crash --resume
# 2026-11-29T09:36:56Z
python3 -m t2s_fast train --model-name qwen2.5-coder-0.5b --adapter-path /tmp/t2s-real/qwen2.5-coder-0.5b/stage1/adapter --train-file /tmp/t2s-real/qwen2.5-coder-0.5b/prepared/stage2_mixed_train.jsonl --eval-file /tmp/t2s-real/qwen2.5-coder-0.5b/prepared/stage2_mixed_valid.jsonl --output-dir /tmp/t2s-real/qwen2.5-coder-0.5b/stage2 --max-cost-usd 20 --gpu-hourly-usd 3.44 --packing
# 2026-11-29T09:38:14Z
python3 -m t2s_fast eval --backend vllm --base-model qwen2.5-coder-0.5b --include-base --adapter stage1=/tmp/t2s-real/qwen2.5-coder-0.5b/stage1/adapter --adapter stage2=/tmp/t2s-real/qwen2.5-coder-0.5b/stage2/adapter --adapter stage1-resumed=/tmp/t2s-real/qwen2.5-coder-0.5b/stage1-crash/adapter --spider-dir /tmp/t2s-data/spider1 --workers 8 --out-dir /tmp/t2s-real/qwen2.5-coder-0.5b/eval-dev
# 2026-11-29T09:39:33Z
python3 -m t2s_fast eval --backend vllm --base-model qwen2.5-coder-0.5b --include-base --adapter stage1=/tmp/t2s-real/qwen2.5-coder-0.5b/stage1/adapter --adapter stage2=/tmp/t2s-real/qwen2.5-coder-0.5b/stage2/adapter --adapter stage1-resumed=/tmp/t2s-real/qwen2.5-coder-0.5b/stage1-crash/adapter --spider-dir /tmp/t2s-data/spider1 --workers 8 --out-dir /tmp/t2s-real/qwen2.5-coder-0.5b/eval-dev
# 2026-11-29T09:40:31Z
python3 -m t2s_fast eval --backend vllm --base-model qwen2.5-coder-0.5b --include-base --adapter stage1=/tmp/t2s-real/qwen2.5-coder-0.5b/stage1/adapter --adapter stage2=/tmp/t2s-real/qwen2.5-coder-0.5b/stage2/adapter --adapter stage1-resumed=/tmp/t2s-real/qwen2.5-coder-0.5b/stage1-crash/adapter --spider-dir /tmp/t2s-data/spider1 --workers 8 --out-dir /tmp/t2s-real/qwen2.5-coder-0.5b/eval-dev
# 2026-11-29T09:43:58Z
python3 -m t2s_fast eval --backend hf --base-model qwen2.5-coder-0.5b --adapter stage1=/tmp/t2s-real/qwen2.5-coder-0.5b/stage1/adapter --limit 200 --spider-dir /tmp/t2s-data/spider1 --workers 8 --out-dir /tmp/t2s-real/qwen2.5-coder-0.5b/eval-hf200
# --- second lease, 2026-11-29 from 11:44Z (bench/gpu_real_models_both.sh): setup again on a fresh machine, stage 1 trained again for the vote (the first lease's adapter was not kept); the first vote command failed to start its engine beside the 1.5B's, the second ran alone
# 2026-11-29T11:44:47Z
python3 -c import\ sys\;\ from\ t2s_fast.models\ import\ resolve_model\;\ r\ =\ resolve_model\(sys.argv\[1\]\)\;\ print\(r.path\) qwen2.5-coder-0.5b
# 2026-11-29T11:45:57Z
python3 -m t2s_fast prepare --spider-dir /tmp/t2s-data/spider1 --spider2-dir /tmp/t2s-data/spider2 --out-dir /tmp/t2s-real/qwen2.5-coder-0.5b/prepared --tokenizer /tmp/t2s-cache/models/qwen2.5-coder-0.5b-bfloat16
# 2026-11-29T11:56:26Z
python3 -m t2s_fast train --model-name qwen2.5-coder-0.5b --train-file /tmp/t2s-real/qwen2.5-coder-0.5b/prepared/stage1_train.jsonl --eval-file /tmp/t2s-real/qwen2.5-coder-0.5b/prepared/stage1_valid.jsonl --max-cost-usd 40 --gpu-hourly-usd 3.44 --packing --output-dir /tmp/t2s-real/qwen2.5-coder-0.5b/stage1
# 2026-11-29T12:00:47Z
python3 -m t2s_fast eval --backend vllm --base-model qwen2.5-coder-0.5b --adapter stage1=/tmp/t2s-real/qwen2.5-coder-0.5b/stage1/adapter --n-samples 8 --temperature 0.8 --spider-dir /tmp/t2s-data/spider1 --workers 8 --gpu-memory-utilization 0.4 --out-dir /tmp/t2s-real/qwen2.5-coder-0.5b/eval-dev-maj8
# 2026-11-29T12:02:32Z
python3 -m t2s_fast eval --backend vllm --base-model qwen2.5-coder-0.5b --adapter stage1=/tmp/t2s-real/qwen2.5-coder-0.5b/stage1/adapter --n-samples 8 --temperature 0.8 --spider-dir /tmp/t2s-data/spider1 --workers 8 --out-dir /tmp/t2s-real/qwen2.5-coder-0.5b/eval-dev-maj8
