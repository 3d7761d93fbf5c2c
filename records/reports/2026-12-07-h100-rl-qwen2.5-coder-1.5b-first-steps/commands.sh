# 2026-12-07T23:48:01Z CUDA_VISIBLE_DEVICES=all
python3 -m t2s_fast train --model-name qwen2.5-coder-1.5b --train-file /tmp/pay/prep-qwen2.5-coder-1.5b/stage1_train.jsonl --output-dir /tmp/rl/sft --num-train-epochs 1 --max-steps -1 --learning-rate 4e-4 --max-cost-usd 5
# 2026-12-07T23:54:03Z CUDA_VISIBLE_DEVICES=all
python3 -m t2s_fast rl --model-name qwen2.5-coder-1.5b --train-file /tmp/pay/prep-qwen2.5-coder-1.5b/stage1_train.jsonl --adapter-path /tmp/rl/sft/adapter --db-root /tmp/t2s-data/spider1 --output-dir /tmp/rl/rl-lr4e-5 --learning-rate 4e-5 --max-prompts 1200 --vllm-gpu-memory-utilization 0.25 --vllm-cache-dir /tmp/rl/vllm-cache --resume --max-steps 24 --save-steps 8 --max-cost-usd 10
