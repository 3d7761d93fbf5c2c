"""Training throughput measured on real GPUs: the table the start-of-run cost projection (projection.py) reads.

One row per measurement: the model, the setup it trained with, trained tokens/s, its MFU at 4N against the
bf16 matmul peak measured in the same run (None where no peak was measured), the device, the date, and the
record it came from. The records live under records/ in the repository and are never read at run time;
tests/test_sizing.py (marked `records`) checks every row against its record.

A new measurement becomes a row here (and, with its result file, a record under records/).
"""

from __future__ import annotations

from dataclasses import dataclass

QWEN3_8B = "qwen3-8b"  # the Qwen3-8B shape, random init (speed and memory only), real prepared stage-1 data


@dataclass(frozen=True)
class Throughput:
    model: str  # QWEN3_8B or a packaged alias (t2s_fast/models.py)
    backend: str
    packing: bool
    checkpointing: str
    attention: str
    tokens_per_s: float  # trained (non-padding) tokens/s, steady state
    mfu_4n: float | None  # against the peak measured in the same run; None: no peak was measured
    device: str
    date: str
    record: str  # the result file (and row or key) it was copied from


# Dense bf16 matmul peaks measured by t2s_fast/benchmarks/peak.py (TFLOP/s), by GPU name, one per run.
MEASURED_PEAK_TFLOPS = {
    # records/bench/2026-11-24-h200-train-{packed,runbook-padded,runbook-packed,packed-varlen}.json
    "H200": (790.4, 756.9, 760.9, 788.0),
}

_B = "records/bench/2026-11-24-h200-train-"
_R = "records/reports/2026-11-29-h200-"
_H200 = "NVIDIA H200"

# `t2s-fast bench train` rows (2 warm-up + 3 measured steps, --max-seq-length 3072, alone on the GPU), then the
# real small models' runbook stages (packed, automatic setup: 8 rows, no checkpointing, varlen).
THROUGHPUTS = (
    Throughput(QWEN3_8B, "unsloth", True, "off", "varlen", 15769.7, 0.6556, _H200, "2026-11-24",
               _B + "packed-varlen.json unsloth-auto"),
    Throughput(QWEN3_8B, "unsloth", True, "off", "sdpa-no-cudnn", 11658.9, 0.4832, _H200, "2026-11-24",
               _B + "packed.json unsloth-auto"),
    Throughput(QWEN3_8B, "unsloth", True, "off", "sdpa-no-cudnn", 11639.0, 0.4839, _H200, "2026-11-24",
               _B + "packed-varlen.json unsloth-sdpa-no-cudnn"),
    Throughput(QWEN3_8B, "unsloth", True, "unsloth", "sdpa-no-cudnn", 8014.9, 0.3451, _H200, "2026-11-24",
               _B + "runbook-packed.json unsloth"),
    Throughput(QWEN3_8B, "unsloth", True, "unsloth", "sdpa", 4305.8, 0.1785, _H200, "2026-11-24",
               _B + "packed.json unsloth-defaults"),
    Throughput(QWEN3_8B, "unsloth", True, "unsloth", "sdpa", 4513.6, 0.1877, _H200, "2026-11-24",
               _B + "packed-varlen.json unsloth-defaults"),
    Throughput(QWEN3_8B, "unsloth", False, "unsloth", "sdpa", 3114.7, 0.1348, _H200, "2026-11-24",
               _B + "runbook-padded.json unsloth"),
    Throughput(QWEN3_8B, "hf", True, "plain", "sdpa-no-cudnn", 3202.6, 0.1379, _H200, "2026-11-24",
               _B + "runbook-packed.json hf"),
    Throughput(QWEN3_8B, "hf", True, "plain", "sdpa", 2271.3, 0.0941, _H200, "2026-11-24", _B + "packed.json hf"),
    Throughput(QWEN3_8B, "hf", True, "plain", "sdpa", 2244.5, 0.0933, _H200, "2026-11-24",
               _B + "packed-varlen.json hf"),
    Throughput(QWEN3_8B, "hf", False, "plain", "sdpa", 2023.0, 0.0876, _H200, "2026-11-24",
               _B + "runbook-padded.json hf"),
    Throughput("qwen2.5-coder-0.5b", "unsloth", True, "off", "varlen", 74932.7, None, _H200, "2026-11-29",
               _R + "qwen2.5-coder-0.5b/summary.json train.stage1"),
    Throughput("qwen2.5-coder-0.5b", "unsloth", True, "off", "varlen", 75422.3, None, _H200, "2026-11-29",
               _R + "qwen2.5-coder-0.5b/summary.json train.stage2"),
    Throughput("qwen2.5-coder-1.5b", "unsloth", True, "off", "varlen", 55868.2, None, _H200, "2026-11-29",
               _R + "qwen2.5-coder-1.5b/summary.json train.stage1"),
    Throughput("qwen2.5-coder-1.5b", "unsloth", True, "off", "varlen", 51222.0, None, _H200, "2026-11-29",
               _R + "qwen2.5-coder-1.5b/summary.json train.stage2"),
)
