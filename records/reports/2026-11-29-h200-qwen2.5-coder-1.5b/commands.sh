# 2026-11-29T11:44:47Z
python3 -c import\ sys\;\ from\ t2s_fast.models\ import\ resolve_model\;\ r\ =\ resolve_model\(sys.argv\[1\]\)\;\ print\(r.path\) qwen2.5-coder-1.5b
# 2026-11-29T11:46:10Z
python3 -m t2s_fast prepare --spider-dir /tmp/t2s-data/spider1 --spider2-dir /tmp/t2s-data/spider2 --out-dir /tmp/t2s-real/qwen2.5-coder-1.5b/prepared --tokenizer /tmp/t2s-cache/models/qwen2.5-coder-1.5b-bfloat16
# 2026-11-29T11:46:47Z
python3 -m t2s_fast train --model-name qwen2.5-coder-1.5b --train-file /tmp/t2s-real/qwen2.5-coder-1.5b/prepared/stage1_train.jsonl --eval-file /tmp/t2s-real/qwen2.5-coder-1.5b/prepared/stage1_valid.jsonl --max-cost-usd 40 --gpu-hourly-usd 3.44 --packing --output-dir /tmp/t2s-real/qwen2.5-coder-1.5b/stage1
# 2026-11-29T11:53:05Z
python3 -m t2s_fast train --model-name qwen2.5-coder-1.5b --adapter-path /tmp/t2s-real/qwen2.5-coder-1.5b/stage1/adapter --train-file /tmp/t2s-real/qwen2.5-coder-1.5b/prepared/stage2_mixed_train.jsonl --eval-file /tmp/t2s-real/qwen2.5-coder-1.5b/prepared/stage2_mixed_valid.jsonl --output-dir /tmp/t2s-real/qwen2.5-coder-1.5b/stage2 --max-cost-usd 20 --gpu-hourly-usd 3.44 --packing
# 2026-11-29T11:54:34Z
python3 -m t2s_fast eval --backend vllm --base-model qwen2.5-coder-1.5b --include-base --adapter stage1=/tmp/t2s-real/qwen2.5-coder-1.5b/stage1/adapter --adapter stage2=/tmp/t2s-real/qwen2.5-coder-1.5b/stage2/adapter --spider-dir /tmp/t2s-data/spider1 --workers 8 --gpu-memory-utilization 0.4 --out-dir /tmp/t2s-real/qwen2.5-coder-1.5b/eval-dev
# 2026-11-29T11:57:39Z
python3 -m t2s_fast eval --backend vllm --base-model qwen2.5-coder-1.5b --adapter stage1=/tmp/t2s-real/qwen2.5-coder-1.5b/stage1/adapter --n-samples 8 --temperature 0.8 --spider-dir /tmp/t2s-data/spider1 --workers 8 --gpu-memory-utilization 0.4 --out-dir /tmp/t2s-real/qwen2.5-coder-1.5b/eval-dev-maj8
# 2026-11-29T12:00:59Z
python3 -m t2s_fast eval --backend hf --base-model qwen2.5-coder-1.5b --adapter stage1=/tmp/t2s-real/qwen2.5-coder-1.5b/stage1/adapter --limit 200 --spider-dir /tmp/t2s-data/spider1 --workers 8 --out-dir /tmp/t2s-real/qwen2.5-coder-1.5b/eval-hf200
