# 2026-11-29T17:00:28Z CUDA_VISIBLE_DEVICES=all
python3 -c import\ sys\;\ from\ t2s_fast.models\ import\ resolve_model\;\ print\(resolve_model\(sys.argv\[1\]\).path\) qwen2.5-coder-0.5b
# 2026-11-29T17:01:49Z CUDA_VISIBLE_DEVICES=all
# 2026-11-29T17:01:49Z CUDA_VISIBLE_DEVICES=1
python3 -m t2s_fast sweep --config /tmp/repo/sweeps/stage1-qwen2.5-coder-0.5b.json --parallel 6 --devices 0\,1
python3 -m t2s_fast sweep --config /tmp/repo/sweeps/stage2-replay-from-runbook-0.5b.json --parallel 4
# 2026-11-29T17:10:21Z CUDA_VISIBLE_DEVICES=1
python3 -m t2s_fast sweep --config /tmp/repo/sweeps/stage2-replay-from-runbook-0.5b.json --parallel 4
