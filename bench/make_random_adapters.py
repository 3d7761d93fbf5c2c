"""Write random LoRA adapters for a model shape (no weights needed), e.g. for the Qwen3-8B-shaped random-init
model on a GPU machine:

    python bench/make_random_adapters.py --base-model .gpu/qwen3-8b-config/config.json --out .gpu/adapters \
        --names stage1 stage2 --r 16

Each adapter is a normal PEFT folder (adapter_config.json + adapter_model.safetensors) with random A and B,
so it changes the model's output (PEFT's default init, B = 0, would be a no-op).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from t2s_fast.generate.random_adapters import make_random_lora_adapter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-model", required=True, help="config.json or model folder")
    p.add_argument("--out", required=True, help="folder that receives one sub-folder per adapter")
    p.add_argument("--names", nargs="+", default=["stage1", "stage2"])
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--alpha", type=int, default=32)
    args = p.parse_args()
    for i, name in enumerate(args.names):
        path = make_random_lora_adapter(args.base_model, Path(args.out) / name, r=args.r, alpha=args.alpha, seed=1 + i)
        print(f"{name}={path}")


if __name__ == "__main__":
    main()
