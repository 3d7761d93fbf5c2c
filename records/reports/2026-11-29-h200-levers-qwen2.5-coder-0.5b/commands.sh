# Recorded by bench/gpu_levers_and_8b_runbook.sh on the H200 (2026-11-29), run from /tmp/s3/w, where data/prepared,
# data/prepared-qv (prepare --question-values 3), data/spider1 and runs/stage1/adapter (the runbook's stage-1
# adapter) were laid out by the driver. Two jobs started at 14:56:13 and their lines were interleaved in the raw
# record; they are separated here.
# 2026-11-29T14:54:26Z
python3 -m t2s_fast ablate --config /tmp/repo/ablations/levers-qwen2.5-coder-0.5b.json
# 2026-11-29T14:56:13Z
python3 -m t2s_fast sweep --config /tmp/repo/sweeps/stage2-replay-from-runbook-0.5b.json
# 2026-11-29T14:56:13Z
python3 -m t2s_fast train --model-name qwen2.5-coder-0.5b --train-file data/prepared-qv/stage1_train.jsonl --eval-file data/prepared-qv/stage1_valid.jsonl --output-dir runs/stage1-qv --max-cost-usd 40 --gpu-hourly-usd 3.44 --packing
# 2026-11-29T15:02:50Z (and 15:06:03Z, the retry): failed at the values3 arm, rapidfuzz missing on the GPU machine
python3 -m t2s_fast ablate --config /tmp/repo/ablations/question-values-qwen2.5-coder-0.5b.json
# 2026-11-29T15:10:52Z (rapidfuzz 3.13.0 installed): resumed, the no-values arm kept
python3 -m t2s_fast ablate --config /tmp/repo/ablations/question-values-qwen2.5-coder-0.5b.json
# locally, before the lease (2-core CPU), with the 0.5B's tokenizer:
t2s-fast prepare --spider-dir ../shared/data/spider1 --spider2-dir ../shared/data/spider2 --out-dir prep05 --tokenizer MODEL_DIR
t2s-fast prepare --spider-dir ../shared/data/spider1 --spider2-dir ../shared/data/spider2 --out-dir prep05qv --tokenizer MODEL_DIR --question-values 3
