"""Expected trained tokens/s before any step is measured, for the start-of-run cost projection.

tokens/s = MFU x the GPU's bf16 peak / FLOPs per trained token (4N, t2s_fast/train/flops.py), where the
MFU is the band measured for the chosen setup on the H200 runs recorded in bench/results/ (BANDS below: each
figure names its file; tests/test_projection.py checks every one against that file and checks that the
projection lands within 2x of every recorded run's measured tok/s).

Where nothing was measured (a CPU, a GPU without a recorded peak), the backend's conservative default is used
and the message says so. Cost = (time already spent loading + planned tokens / (tokens/s x GPUs)) x
--gpu-hourly-usd x GPUs: the GPU is paid from the moment the run starts, as the budget guard counts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from t2s_fast.train.flops import matmul_flops_per_token, tokens_per_s_at_mfu
from t2s_fast.train.autotune import ModelShape

# Dense bf16 matmul peak measured by t2s_fast/benchmarks/peak.py in the recorded runs (TFLOP/s), by GPU name.
MEASURED_PEAK_TFLOPS = {
    "H200": (790.4, 756.9, 760.9, 788.0),  # bench/results/2026-11-24-h200-train-{packed,runbook-padded,runbook-packed,packed-varlen}.json
}
SMALL_MODEL_PARAMS = 2e9  # below: the small-model band; at or above: the 8B-shape bands

# Qwen2.5-Coder-0.5B (the shape of Qwen/Qwen2.5-Coder-0.5B's config.json; 0.49 B matmul parameters counted as
# ModelShape counts them, 0.63 B with the tied embedding counted twice).
QWEN25_05B = ModelShape.from_config({"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                                     "vocab_size": 151936, "num_attention_heads": 14, "num_key_value_heads": 2,
                                     "head_dim": 64, "tie_word_embeddings": True})
ISSUE16_SMALL_MODEL_TOKENS_PER_S = 94_000.0  # issue 16's quoted figure for that model (no result file): compared only
# Trained tok/s of the real Qwen2.5-Coder-0.5B runs on one H200 (packed, automatic setup: 8 rows, no checkpointing,
# varlen), eval/reports/2026-11-29-h200-qwen2.5-coder-0.5b/summary.json train.stage1 and train.stage2. No peak was
# measured in that run: the MFU is taken against the H200's mean measured peak below.
SMALL_MODEL_RUNS = (("train.stage1", 74932.7), ("train.stage2", 75422.3))
SMALL_MODEL_SOURCE = "eval/reports/2026-11-29-h200-qwen2.5-coder-0.5b/summary.json"


def peak_flops(device_name: str) -> float | None:
    """The mean measured bf16 peak of this GPU (FLOP/s), None when none was recorded."""
    for key, peaks in MEASURED_PEAK_TFLOPS.items():
        if key.lower() in (device_name or "").lower():
            return sum(peaks) / len(peaks) * 1e12
    return None


@dataclass(frozen=True)
class Band:
    """Measured MFU (at 4N) of one setup; None in a key field matches any value."""

    backend: str
    packing: bool | None
    checkpointing: str | None
    attention: str | None
    mfu: tuple[float, ...]
    source: str
    small_model: bool = False

    @property
    def mid(self) -> float:
        return sum(self.mfu) / len(self.mfu)

    def describe(self) -> str:
        lo, hi = min(self.mfu), max(self.mfu)
        span = f"{100 * lo:.1f}%" if lo == hi else f"{100 * lo:.1f}-{100 * hi:.1f}%"
        return f"{span} MFU measured ({self.source})"


def small_model_mfu(tokens_per_s: float) -> float:
    h200 = sum(MEASURED_PEAK_TFLOPS["H200"]) / len(MEASURED_PEAK_TFLOPS["H200"]) * 1e12
    return round(tokens_per_s * matmul_flops_per_token(QWEN25_05B) / h200, 4)


_R = "bench/results/2026-11-24-h200-train-"
# Qwen3-8B shape (random init), real prepared stage-1 data, --max-seq-length 3072, H200; MFU = mfu_4n of the row.
BANDS = (
    Band("unsloth", True, "off", "varlen", (0.6556,), _R + "packed-varlen.json unsloth-auto"),
    Band("unsloth", True, "off", "sdpa-no-cudnn", (0.4832, 0.4839),
         _R + "packed.json unsloth-auto, " + _R + "packed-varlen.json unsloth-sdpa-no-cudnn"),
    Band("unsloth", True, "unsloth", "sdpa-no-cudnn", (0.3451,), _R + "runbook-packed.json unsloth"),
    Band("unsloth", True, "unsloth", "sdpa", (0.1785, 0.1877),
         _R + "packed.json unsloth-defaults, " + _R + "packed-varlen.json unsloth-defaults"),
    Band("unsloth", False, "unsloth", "sdpa", (0.1348,), _R + "runbook-padded.json unsloth"),
    Band("hf", True, "plain", "sdpa-no-cudnn", (0.1379,), _R + "runbook-packed.json hf"),
    Band("hf", True, "plain", "sdpa", (0.0941, 0.0933), _R + "packed.json hf, " + _R + "packed-varlen.json hf"),
    Band("hf", False, "plain", "sdpa", (0.0876,), _R + "runbook-padded.json hf"),
    Band("unsloth", True, "off", "varlen", tuple(small_model_mfu(t) for _, t in SMALL_MODEL_RUNS),
         ", ".join(f"{SMALL_MODEL_SOURCE} {k}" for k, _ in SMALL_MODEL_RUNS), small_model=True),
)


def find_band(backend: str, packing: bool, checkpointing: str, attention: str, n_params: int) -> tuple[Band | None, str]:
    """The band of this setup: exact, else the same backend/packing/checkpointing, else the slowest band of the
    same backend and packing (conservative). Returns (band, how it matched)."""
    small = n_params < SMALL_MODEL_PARAMS
    pool = [b for b in BANDS if b.small_model == small and b.backend == backend] or \
        [b for b in BANDS if b.backend == backend]

    def ok(b, **want):
        return all(getattr(b, k) is None or getattr(b, k) == v for k, v in want.items())

    for how, want in (("this setup", dict(packing=packing, checkpointing=checkpointing, attention=attention)),
                      ("nearest recorded setup", dict(packing=packing, checkpointing=checkpointing)),
                      ("slowest recorded setup", dict(packing=packing))):
        found = [b for b in pool if ok(b, **want)]
        if found:
            return min(found, key=lambda b: b.mid), how
    return None, "no recorded setup"


@dataclass
class Expected:
    tokens_per_s: float | None
    basis: str
    mfu: float | None = None


def expected_tokens_per_s(shape: ModelShape, *, device_name: str, device_kind: str, backend: str, packing: bool,
                          checkpointing: str, attention: str) -> Expected:
    """Trained tokens/s per GPU expected for this model and setup, with the basis in words."""
    if device_kind != "cuda":
        return Expected(None, "no GPU: no recorded CPU efficiency")
    peak = peak_flops(device_name)
    if peak is None:
        return Expected(None, f"no recorded bf16 peak for {device_name}")
    band, how = find_band(backend, packing, checkpointing, attention, shape.n_params)
    if band is None:
        return Expected(None, f"no recorded {backend} setup")
    fpt = matmul_flops_per_token(shape)
    tps = tokens_per_s_at_mfu(band.mid, fpt, peak)
    basis = (f"4N = {fpt:.3g} FLOPs/token, {device_name} bf16 peak {peak / 1e12:.0f} TFLOP/s (measured), "
             f"{100 * band.mid:.1f}% MFU for {how}: {band.describe()}")
    return Expected(tps, basis, band.mid)
