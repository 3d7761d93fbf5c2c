"""Expected trained tokens/s before any step is measured, for the start-of-run cost projection.

tokens/s = MFU x the GPU's bf16 peak / FLOPs per trained token (4N, t2s_fast/train/flops.py), where the
MFU is the band measured for the chosen setup on real H200 runs: the table in throughputs.py, one row per
measurement, grouped here into BANDS by setup (tests/test_sizing.py checks every row against the record it
names and that the projection lands within 2x of every recorded run's measured tok/s).

Where nothing was measured (a CPU, a GPU without a recorded peak), the backend's conservative default is used
and the message says so. Cost = (time already spent loading + planned tokens / (tokens/s x GPUs)) x
--gpu-hourly-usd x GPUs: the GPU is paid from the moment the run starts, as the budget guard counts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from t2s_fast.train.autotune import ModelShape
from t2s_fast.train.flops import matmul_flops_per_token, tokens_per_s_at_mfu
from t2s_fast.train.throughputs import MEASURED_PEAK_TFLOPS, THROUGHPUTS

SMALL_MODEL_PARAMS = 2e9  # below: the small-model band; at or above: the 8B-shape bands


def _qwen25(hidden: int, intermediate: int, layers: int, heads: int, head_dim: int) -> ModelShape:
    return ModelShape.from_config({"hidden_size": hidden, "intermediate_size": intermediate,
                                   "num_hidden_layers": layers,
                                   "vocab_size": 151936, "num_attention_heads": heads, "num_key_value_heads": 2,
                                   "head_dim": head_dim, "tie_word_embeddings": True})


# The real Qwen2.5-Coder-0.5B and -1.5B (the shapes of their config.json; ModelShape counts matmul parameters:
# 0.49 B and 1.54 B).
QWEN25_05B = _qwen25(896, 4864, 24, 14, 64)
QWEN25_15B = _qwen25(1536, 8960, 28, 12, 128)
KNOWN_SHAPES = {"qwen2.5-coder-0.5b": QWEN25_05B, "qwen2.5-coder-1.5b": QWEN25_15B}  # packaged alias -> shape


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
    n_params: int | None = None  # the size it was measured at (None: the Qwen3-8B shape)

    @property
    def small_model(self) -> bool:
        return self.n_params is not None and self.n_params < SMALL_MODEL_PARAMS

    @property
    def mid(self) -> float:
        return sum(self.mfu) / len(self.mfu)

    def describe(self) -> str:
        lo, hi = min(self.mfu), max(self.mfu)
        span = f"{100 * lo:.1f}%" if lo == hi else f"{100 * lo:.1f}-{100 * hi:.1f}%"
        return f"{span} MFU " + (self.source if self.source.startswith("interpolated") else f"measured ({self.source})")


def small_model_mfu(tokens_per_s: float, shape: ModelShape = QWEN25_05B) -> float:
    h200 = sum(MEASURED_PEAK_TFLOPS["H200"]) / len(MEASURED_PEAK_TFLOPS["H200"]) * 1e12
    return round(tokens_per_s * matmul_flops_per_token(shape) / h200, 4)


def _bands() -> tuple[Band, ...]:
    """THROUGHPUTS grouped by model and setup, in table order; a small model's MFU is taken against the H200's
    mean measured peak (its runs measured none)."""
    groups: dict[tuple, list] = {}
    for t in THROUGHPUTS:
        groups.setdefault((t.model, t.backend, t.packing, t.checkpointing, t.attention), []).append(t)
    bands = []
    for (model, backend, packing, checkpointing, attention), rows in groups.items():
        shape = KNOWN_SHAPES.get(model)
        mfu = tuple(r.mfu_4n if r.mfu_4n is not None else small_model_mfu(r.tokens_per_s, shape) for r in rows)
        bands.append(Band(backend, packing, checkpointing, attention, mfu, ", ".join(r.record for r in rows),
                          n_params=shape.n_params if shape else None))
    return tuple(bands)


BANDS = _bands()


def find_band(backend: str, packing: bool, checkpointing: str, attention: str, n_params: int) -> tuple[Band | None,
                                                                                                       str]:
    """The band of this setup: exact, else the same backend/packing/checkpointing, else the slowest band of the
    same backend and packing (conservative). Returns (band, how it matched)."""
    small = n_params < SMALL_MODEL_PARAMS
    pool = [b for b in BANDS if b.small_model == small and b.backend == backend] or \
        [b for b in BANDS if b.backend == backend]

    def ok(b, **want):
        return all(getattr(b, k) is None or getattr(b, k) == v for k, v in want.items())

    exact = dict(packing=packing, checkpointing=checkpointing, attention=attention)
    sized = [b for b in BANDS if b.backend == backend and b.n_params is not None and ok(b, **exact)]
    if small and sized:  # measured at several small sizes: MFU grows with the model, so read it off at this size
        return _at_size(sized, n_params), "this setup at this model size"
    for how, want in (("this setup", exact),
                      ("nearest recorded setup", dict(packing=packing, checkpointing=checkpointing)),
                      ("slowest recorded setup", dict(packing=packing))):
        found = [b for b in pool if ok(b, **want)]
        if found:
            return min(found, key=lambda b: b.mid), how
    return None, "no recorded setup"


def _at_size(bands: list[Band], n_params: int) -> Band:
    """The band at this size: the measured one, else interpolated linearly in log(parameters) between the two
    nearest measured sizes (held flat outside them)."""
    pts = sorted(bands, key=lambda b: b.n_params)
    if n_params <= pts[0].n_params:
        return pts[0]
    if n_params >= pts[-1].n_params:
        return pts[-1]
    lo, hi = next((a, b) for a, b in zip(pts, pts[1:]) if a.n_params <= n_params <= b.n_params)
    t = (math.log(n_params) - math.log(lo.n_params)) / (math.log(hi.n_params) - math.log(lo.n_params))
    mfu = round(lo.mid + t * (hi.mid - lo.mid), 4)
    return Band(lo.backend, lo.packing, lo.checkpointing, lo.attention, (mfu,),
                f"interpolated in log(parameters) between {lo.n_params / 1e9:.2f} B ({lo.source}) and "
                f"{hi.n_params / 1e9:.2f} B ({hi.source})", n_params=n_params)


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
