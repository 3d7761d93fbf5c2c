"""Automatic choice of the training setup from the GPU, its free memory and the data's lengths.

What it picks: gradient checkpointing (off, Unsloth's CPU-offloaded, or plain), the micro-batch, and the
attention kernel policy.

Why (see ../shared/notes/h200-qlora-first-measurements.md): Unsloth's defaults are tuned for small GPUs.
On an H200, checkpointing with offload ran 4,520 tok/s at 11 GiB, plain checkpointing 4,223 tok/s at 17 GiB,
and no checkpointing 6,634 tok/s at 107 GiB; and cuDNN's SDPA backend costs 1-2 ms of CPU per packed
sequence per layer, so turning it off took the same run to 11,779 tok/s. So: use the memory the card has,
prefer no checkpointing, then Unsloth's offload (faster *and* smaller than plain), and avoid cuDNN attention
for packed (padding-free) batches.

Micro-batch units: with packing, TRL's ``per_device_train_batch_size`` counts *packed rows* of
``max_seq_length`` tokens (the notes' "batch 8 packed" is 8 rows, ~24.6k tokens), so the micro-batch here is
in rows and the accumulation keeps the runbook's tokens per optimizer step (2 x 16 examples) about the same.
Without packing it counts examples and micro-batch x accumulation stays exactly the runbook's global batch.

Packing safety (tests/test_packing.py): SDPA and eager both keep packed examples apart only
because transformers builds a block-diagonal mask from the restarting ``position_ids`` -- and it skips that
whenever a KV cache object exists (``use_cache=True``, the Qwen3 config default). Training forwards must pass
``use_cache=False`` (TRL's SFTTrainer.compute_loss does). Every choice in ATTENTION_CHOICES is safe under that.

Every choice can be overridden by a flag; the chosen setup and the reasons are logged and go to run.json.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

GIB = 1024**3

CHECKPOINTING_CHOICES = ("auto", "off", "plain", "unsloth")
ATTENTION_CHOICES = ("auto", "sdpa", "sdpa-no-cudnn", "varlen", "eager")


@dataclass
class DeviceInfo:
    name: str
    total_bytes: int
    free_bytes: int
    kind: str = "cuda"  # "cuda" or "cpu"
    torch_varlen: bool = False  # torch.nn.attention.varlen.varlen_attn with a CUDA flash kernel

    @classmethod
    def detect(cls) -> "DeviceInfo":
        import torch

        if torch.cuda.is_available():
            from t2s_fast.train.backends.torch_varlen import varlen_available

            free, total = torch.cuda.mem_get_info()
            return cls(name=torch.cuda.get_device_name(), total_bytes=total, free_bytes=free, kind="cuda",
                       torch_varlen=varlen_available())
        return cls(name="cpu", total_bytes=0, free_bytes=0, kind="cpu")


@dataclass
class ModelShape:
    n_params: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    vocab_size: int
    num_attention_heads: int = 0
    num_key_value_heads: int = 0
    head_dim: int = 0
    tie_word_embeddings: bool = False

    @classmethod
    def from_config(cls, config) -> "ModelShape":
        """From a transformers config object or a config.json dict (Llama/Qwen-style decoder)."""
        get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
        h, i, n, v = get("hidden_size"), get("intermediate_size"), get("num_hidden_layers"), get("vocab_size")
        heads = get("num_attention_heads")
        kv = get("num_key_value_heads") or heads
        hd = get("head_dim") or h // heads
        tied = bool(get("tie_word_embeddings", False))
        shape = cls(n_params=0, hidden_size=h, intermediate_size=i, num_layers=n, vocab_size=v,
                    num_attention_heads=heads, num_key_value_heads=kv, head_dim=hd, tie_word_embeddings=tied)
        shape.n_params = shape.layer_params * n + shape.embedding_params
        return shape

    @property
    def attention_width(self) -> int:
        """Width of the query/output projections (heads x head_dim)."""
        return self.num_attention_heads * self.head_dim if self.num_attention_heads else self.hidden_size

    @property
    def kv_width(self) -> int:
        return self.num_key_value_heads * self.head_dim if self.num_key_value_heads else self.hidden_size

    @property
    def layer_params(self) -> int:
        """Matmul weights of one decoder layer (q, k, v, o, gate, up, down); norms are negligible."""
        h = self.hidden_size
        return 2 * h * self.attention_width + 2 * h * self.kv_width + 3 * h * self.intermediate_size

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    def lora_params(self, r: int = 16) -> int:
        """LoRA A and B of rank ``r`` on all seven projections of every layer (the runbook's targets)."""
        h, a, kv, i = self.hidden_size, self.attention_width, self.kv_width, self.intermediate_size
        per_layer = r * ((h + a) + 2 * (h + kv) + (a + h) + 2 * (h + i) + (i + h))
        return per_layer * self.num_layers


@dataclass
class TrainSetup:
    micro_batch_size: int  # packed rows with packing, examples without
    gradient_accumulation_steps: int
    gradient_checkpointing: str  # "off" | "plain" | "unsloth"
    attention: str  # "sdpa" | "sdpa-no-cudnn" | "varlen" | "eager"
    estimated_peak_bytes: int = 0
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["estimated_peak_gib"] = round(self.estimated_peak_bytes / GIB, 1)
        return d


# ---- the memory model -------------------------------------------------------------------------------------
# Calibrated on the H200 measurements of the Qwen3-8B shape in the notes (4-bit, LoRA r16 on all projections,
# packed batch of 8 rows x 3072 = 24,576 tokens, grad-accum 1): Unsloth 107 GiB with no checkpointing, 16.6 GiB
# plain, 10.7 GiB offloaded, bf16 base no checkpointing 117 GiB; transformers+PEFT+bnb 33 GiB with
# checkpointing, out of memory at 139 GiB without; runbook padded batch 2 baseline 14.1 GiB.
# tests/test_sizing.py asserts every point within +-25%.

# Activation bytes kept per token per layer with no checkpointing, as multiples of (hidden, intermediate).
# Unsloth's fused kernels (RMSNorm, SwiGLU, RoPE, LoRA MLP) keep fewer tensors than plain transformers, whose
# RMSNorm upcasts to fp32 and whose SwiGLU keeps gate, up and act(gate) separately.
_ACT_BYTES = {"unsloth": (16.0, 4.55), "hf": (22.0, 6.4)}
# Bytes per token per vocab entry live in the loss: Unsloth uses a chunked/fused cross-entropy (cut cross
# entropy), transformers keeps bf16 logits plus an fp32 log-softmax for backward.
_LOGIT_BYTES = {"unsloth": 0.25, "hf": 4.0}
_NF4_BYTES_PER_PARAM = 0.53  # 4 bits + double-quantized absmax per 64-block; embeddings and lm_head stay bf16
_LORA_BYTES_PER_PARAM = 16  # fp32 weight + grad + two Adam moments
_FIXED_OVERHEAD = 1.0 * GIB  # cuBLAS workspaces, offload buffers, allocator slack
_SAFETY = 0.88  # fraction of free memory we plan to use (fragmentation, caches, other processes)


def _act_bytes_per_token(shape: ModelShape, backend: str) -> float:
    a_h, a_i = _ACT_BYTES["unsloth" if backend == "unsloth" else "hf"]
    return a_h * shape.hidden_size + a_i * shape.intermediate_size


def estimate_peak_bytes(shape: ModelShape, tokens_per_micro_batch: int, checkpointing: str, *, load_in_4bit: bool,
                        max_seq_length: int, backend: str = "unsloth", packing: bool = False,
                        lora_r: int = 16) -> int:
    """Estimated peak allocated GPU memory of one training micro-step.

    ``tokens_per_micro_batch``: tokens the model sees at once (packed: rows x max_seq_length; padded:
    examples x padded length). ``checkpointing``: "off", "plain" or "unsloth" (offloaded to CPU).
    """
    if checkpointing not in ("off", "plain", "unsloth"):
        raise ValueError(f"checkpointing must be off, plain or unsloth, not {checkpointing!r}")
    t = tokens_per_micro_batch
    if load_in_4bit:
        weights = shape.layer_params * shape.num_layers * _NF4_BYTES_PER_PARAM + shape.embedding_params * 2
    else:
        weights = shape.n_params * 2
    lora = shape.lora_params(lora_r) * _LORA_BYTES_PER_PARAM
    per_layer_act = t * _act_bytes_per_token(shape, backend)
    if checkpointing == "off":
        act = per_layer_act * shape.num_layers
    else:
        # one layer's full activations are live while it is recomputed in backward
        act = per_layer_act
        if checkpointing == "plain":  # each layer's bf16 input stays on the GPU
            act += t * shape.hidden_size * 2 * shape.num_layers
    logits = t * shape.vocab_size * _LOGIT_BYTES["unsloth" if backend == "unsloth" else "hf"]
    mask = 0
    if packing and backend != "unsloth":
        # transformers turns restarting position_ids into a dense block-diagonal mask for SDPA/eager
        # (a bool mask plus SDPA's bf16 additive copy), quadratic in the flattened row
        mask = t * t * 3
    return int(weights + lora + act + logits + mask + _FIXED_OVERHEAD)


def _micro_batch_options(limit: int, *, must_divide: bool) -> list[int]:
    opts = [b for b in (64, 32, 16, 8, 4, 2, 1) if b <= limit and (not must_divide or limit % b == 0)]
    return opts or [1]


def packed_rows_for(examples: int, mean_tokens_per_example: float, max_seq_length: int) -> int:
    """Packed rows of ``max_seq_length`` tokens that hold about ``examples`` examples of the mean length: how a
    batch counted in examples (the runbook's 2 x 16) becomes TRL's packed batch (counted in rows)."""
    mean = max(1.0, float(mean_tokens_per_example or max_seq_length))
    return max(1, round(max(1, examples) * min(mean, max_seq_length) / max_seq_length))


def choose_setup(
    *,
    device: DeviceInfo,
    shape: ModelShape,
    max_seq_length: int,
    mean_tokens_per_example: float,
    global_batch_examples: int,
    backend: str,
    packing: bool,
    load_in_4bit: bool = True,
    gradient_checkpointing: str = "auto",
    attention: str = "auto",
    micro_batch_size: int | None = None,
    max_tokens_per_example: int | None = None,
) -> TrainSetup:
    """The fastest setup estimated to fit. Explicit arguments (not "auto"/None) are kept as given.

    Preference order, fastest first (measured in the notes): no checkpointing; Unsloth's offloaded
    checkpointing (Unsloth only: it measured faster than plain); plain checkpointing. Within each, the largest
    micro-batch whose estimated peak fits in the free memory. ``max_tokens_per_example`` (the data's longest
    example) bounds padded batches; the peak is set by the worst batch, so padded batches are sized by it.
    """
    if gradient_checkpointing not in CHECKPOINTING_CHOICES:
        raise ValueError(f"gradient_checkpointing must be one of {CHECKPOINTING_CHOICES}")
    if attention not in ATTENTION_CHOICES:
        raise ValueError(f"attention must be one of {ATTENTION_CHOICES}")
    reasons: list[str] = []
    attention = _choose_attention(device, backend, packing, attention, reasons)
    batch = _BatchUnits.of(packing, global_batch_examples, mean_tokens_per_example, max_seq_length,
                           max_tokens_per_example)
    if device.kind != "cuda":
        ckpt = "off" if gradient_checkpointing == "auto" else gradient_checkpointing
        mbs = micro_batch_size or min(batch.global_units, 2)
        reasons.append("no GPU: small micro-batch, no checkpointing (CPU runs are tests and demos)")
        return TrainSetup(mbs, batch.accumulation(mbs), ckpt, attention, 0, reasons)

    def estimate(ckpt: str, mbs: int) -> int:
        return estimate_peak_bytes(shape, mbs * batch.unit_tokens, ckpt, load_in_4bit=load_in_4bit,
                                   max_seq_length=max_seq_length, backend=backend, packing=packing)

    return _largest_that_fits(device, backend, batch, estimate, gradient_checkpointing, micro_batch_size,
                              attention, reasons)


def _choose_attention(device: DeviceInfo, backend: str, packing: bool, attention: str, reasons: list[str]) -> str:
    """The attention kernel: as given, else the fastest measured for packed or padded batches on this device."""
    if attention != "auto":
        if attention == "varlen" and backend != "unsloth":
            raise ValueError("attention=varlen is an Unsloth option (its packed attention path); "
                             "the hf backend takes sdpa, sdpa-no-cudnn or eager")
        reasons.append(f"attention={attention} (given)")
        return attention
    if device.kind == "cuda" and packing and backend == "unsloth" and device.torch_varlen:
        reasons.append("packed batches on Unsloth: torch's varlen flash kernel, one call per layer for a packed "
                       "row instead of one SDPA call per example (cuDNN SDPA off for any fallback)")
        return "varlen"
    if device.kind == "cuda" and packing:
        reasons.append("packed batches: cuDNN SDPA costs 1-2 ms CPU per sequence per layer; use SDPA's flash kernel")
        return "sdpa-no-cudnn"
    return "sdpa"


@dataclass(frozen=True)
class _BatchUnits:
    """The global batch in the units a micro-batch counts: packed rows of max_seq_length tokens (keeping about
    the runbook's tokens per optimizer step), or examples as long as the longest one."""

    packing: bool
    global_units: int
    unit_tokens: int

    @classmethod
    def of(cls, packing, global_batch_examples, mean_tokens_per_example, max_seq_length, max_tokens_per_example):
        examples = max(1, global_batch_examples)
        if packing:
            mean_tokens = max(1.0, float(mean_tokens_per_example or max_seq_length))
            return cls(True, packed_rows_for(examples, mean_tokens, max_seq_length), max_seq_length)
        return cls(False, examples, min(max_seq_length, max_tokens_per_example or max_seq_length))

    @property
    def name(self) -> str:
        return "packed rows" if self.packing else "examples"

    def accumulation(self, mbs: int) -> int:
        return max(1, round(self.global_units / mbs)) if self.packing else max(1, self.global_units // mbs)


def _largest_that_fits(device, backend, batch: _BatchUnits, estimate, gradient_checkpointing, micro_batch_size,
                       attention, reasons) -> TrainSetup:
    """On a GPU: the first checkpointing option (fastest first) and micro-batch (largest first) whose estimated
    peak fits in the free memory; else the smallest-memory option, saying so."""
    if gradient_checkpointing != "auto":
        ckpt_options = [gradient_checkpointing]
        reasons.append(f"gradient_checkpointing={gradient_checkpointing} (given)")
    else:
        ckpt_options = ["off", "unsloth", "plain"] if backend == "unsloth" else ["off", "plain"]
    if micro_batch_size:
        mbs_options = [micro_batch_size]
        reasons.append(f"micro-batch {micro_batch_size} (given)")
    else:
        mbs_options = _micro_batch_options(batch.global_units, must_divide=not batch.packing)
    budget = device.free_bytes * _SAFETY
    for ckpt in ckpt_options:
        for mbs in mbs_options:
            peak = estimate(ckpt, mbs)
            if peak <= budget:
                reasons.append(
                    f"{device.name}: {device.free_bytes / GIB:.0f} GiB free; checkpointing={ckpt}, micro-batch {mbs} "
                    f"{batch.name} (~{mbs * batch.unit_tokens} tokens) estimated {peak / GIB:.1f} GiB peak fits in "
                    f"{budget / GIB:.0f} GiB ({_SAFETY:.0%} of free)")
                return TrainSetup(mbs, batch.accumulation(mbs), ckpt, attention, peak, reasons)
    # Nothing fits: the smallest-memory option, and say so (training may still run out of memory).
    ckpt = ckpt_options[0] if gradient_checkpointing != "auto" else ("unsloth" if backend == "unsloth" else "plain")
    mbs = micro_batch_size or 1
    peak = estimate(ckpt, mbs)
    reasons.append(f"{device.name}: nothing estimated to fit in {device.free_bytes / GIB:.0f} GiB free "
                   f"(smallest estimate {peak / GIB:.1f} GiB); falling back to micro-batch {mbs} with "
                   f"checkpointing={ckpt}; lower --max-seq-length if it runs out of memory")
    return TrainSetup(mbs, batch.accumulation(mbs), ckpt, attention, peak, reasons)


def summarize_lengths(lengths: list[int]) -> dict:
    """Mean and max token length of the training examples (what choose_setup needs)."""
    if not lengths:
        return {"mean_tokens_per_example": 0.0, "max_tokens_per_example": 0, "n_examples": 0}
    return {"mean_tokens_per_example": sum(lengths) / len(lengths), "max_tokens_per_example": max(lengths),
            "n_examples": len(lengths)}


def gib(n_bytes: float) -> float:
    return round(n_bytes / GIB, 2) if n_bytes and not math.isnan(n_bytes) else 0.0
