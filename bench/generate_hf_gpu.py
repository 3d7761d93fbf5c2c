"""Generation benchmark, HF/PEFT backend (what runs on the H200, where vLLM is not installed):
N Spider dev questions x every adapter, mixed-adapter batches in one PeftModel, greedy.

    python bench/generate_hf_gpu.py --base-model .gpu/qwen3-8b-config/config.json --tokenizer .gpu/qwen3-tokenizer \
        --spider-dir .gpu/spider1 --adapter stage1=.gpu/adapters/stage1 --adapter stage2=.gpu/adapters/stage2 \
        --questions 200 --out bench/results/generate_hf_h200.json

Writes tokens/s, wall time, peak memory, device and versions to --out (JSON).
"""

from __future__ import annotations

import argparse
import json

from t2s_fast.evaluate.config import parse_adapter_specs
from t2s_fast.benchmarks.generate_run import run_generation_benchmark

BACKEND = "hf"


def main(backend: str = BACKEND) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-model", required=True)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--spider-dir", required=True)
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH")
    p.add_argument("--include-base", action="store_true")
    p.add_argument("--questions", type=int, default=200)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    result = run_generation_benchmark(backend=backend, base_model=args.base_model, tokenizer=args.tokenizer,
                                      adapters=parse_adapter_specs(args.adapter), spider_dir=args.spider_dir,
                                      n_questions=args.questions, include_base=args.include_base,
                                      max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, out_json=args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "sample_outputs"}, indent=2))


if __name__ == "__main__":
    main()
