"""Generation benchmark, vLLM backend: the same requests as bench/generate_hf_gpu.py (N Spider dev questions x
every adapter, greedy), in one `LLM(enable_lora=True)` engine and one `generate` call. Needs `vllm` installed:

    python bench/generate_vllm.py --base-model .gpu/qwen3-8b-config/config.json --tokenizer .gpu/qwen3-tokenizer \
        --spider-dir .gpu/spider1 --adapter stage1=.gpu/adapters/stage1 --adapter stage2=.gpu/adapters/stage2 \
        --questions 200 --out bench/results/generate_vllm.json
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_hf_gpu import main  # noqa: E402 - same flags and output, another backend

if __name__ == "__main__":
    main(backend="vllm")
