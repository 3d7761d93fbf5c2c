"""The GPU's real dense bf16 matmul peak, measured (the datasheet's number is not what a kernel reaches).

Default: C = A @ B with 8192 x 8192 bf16 matrices, 3 warm-up matmuls, then the mean of 10 timed ones
(CUDA events). An H200 measured 775-794 TFLOP/s this way (../shared/notes).
"""

from __future__ import annotations

import json
import sys


def measure_matmul_peak(n: int = 8192, iters: int = 10, warmup: int = 3, dtype: str = "bfloat16",
                        device: str | None = None) -> dict:
    import time

    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dt = getattr(torch, dtype)
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)
    for _ in range(warmup):
        a @ b
    times = []
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)
        name = torch.cuda.get_device_name()
    else:
        for _ in range(iters):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        name = "cpu"
    mean_s = sum(times) / len(times)
    flops = 2.0 * n**3
    return {"device": name, "n": n, "dtype": dtype, "iters": iters, "warmup": warmup,
            "mean_s": mean_s, "peak_flops_per_s": flops / mean_s, "peak_tflops": round(flops / mean_s / 1e12, 1),
            "best_tflops": round(flops / min(times) / 1e12, 1),
            "method": f"mean of {iters} {n}^3 {dtype} matmuls after {warmup} warm-ups, CUDA events"}


def main(argv: list[str] | None = None) -> None:
    """`python -m t2s_fast.benchmarks.peak [N]`: prints the result as one JSON line (used in a subprocess,
    so the benchmarked training processes start with the GPU to themselves)."""
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 8192
    print(json.dumps(measure_matmul_peak(n=n)))


if __name__ == "__main__":
    main()
