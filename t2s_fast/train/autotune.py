"""Automatic choice of the training setup from the GPU, its free memory and the data's lengths.

What it picks: gradient checkpointing (off, plain, or Unsloth's CPU-offloaded), the micro-batch (keeping the
global batch of the runbook: micro-batch x accumulation stays the same), and the attention kernel policy.

Why (see ../shared/notes/h200-qlora-first-measurements.md): Unsloth's defaults are tuned for small GPUs.
On an H200, checkpointing with offload ran 4,520 tok/s at 11 GiB while no checkpointing ran 6,634 tok/s
at 107 GiB; and cuDNN's SDPA backend costs 1-2 ms of CPU per packed sequence per layer, so turning it off
took the same run to 11,779 tok/s. So: use the memory the card has, and avoid cuDNN attention for packed
(padding-free) batches.

Every choice can be overridden by a flag; the chosen setup and the reasons are logged and go to run.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

GIB = 1024**3

CHECKPOINTING_CHOICES = ("auto", "off", "plain", "unsloth")
ATTENTION_CHOICES = ("auto", "sdpa", "sdpa-no-cudnn", "eager")


@dataclass
class DeviceInfo:
    name: str
    total_bytes: int
    free_bytes: int
    kind: str = "cuda"  # "cuda" or "cpu"

    @classmethod
    def detect(cls) -> "DeviceInfo":
        import torch

        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            return cls(name=torch.cuda.get_device_name(), total_bytes=total, free_bytes=free, kind="cuda")
        return cls(name="cpu", total_bytes=0, free_bytes=0, kind="cpu")


@dataclass
class ModelShape:
    n_params: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    vocab_size: int

    @classmethod
    def from_config(cls, config) -> "ModelShape":
        get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
        h, i, n, v = get("hidden_size"), get("intermediate_size"), get("num_hidden_layers"), get("vocab_size")
        heads, kv, hd = get("num_attention_heads"), get("num_key_value_heads") or get("num_attention_heads"), get("head_dim")
        hd = hd or h // heads
        per_layer = h * heads * hd * 2 + h * kv * hd * 2 + 3 * h * i
        tied = get("tie_word_embeddings", False)
        n_params = n * per_layer + v * h * (1 if tied else 2)
        return cls(n_params=n_params, hidden_size=h, intermediate_size=i, num_layers=n, vocab_size=v)


@dataclass
class TrainSetup:
    micro_batch_size: int
    gradient_accumulation_steps: int
    gradient_checkpointing: str  # "off" | "plain" | "unsloth"
    attention: str  # "sdpa" | "sdpa-no-cudnn" | "eager"
    estimated_peak_bytes: int = 0
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["estimated_peak_gib"] = round(self.estimated_peak_bytes / GIB, 1)
        return d


# Activation bytes kept per trained token and per layer, as multiples of the layer widths. Calibrated on the
# H200 measurements of the Qwen3-8B shape (batch 8 packed, ~24.6k tokens a step): 107 GiB peak with no
# checkpointing, 16.6 GiB with plain checkpointing, 10.7 GiB with Unsloth's offloaded checkpointing.
_ACT_PER_TOKEN_LAYER = {"off": (12.0, 3.2), "plain": (2.0, 0.0), "unsloth": (0.0, 0.0)}  # (x hidden, x intermediate)
_LOGIT_BYTES_PER_TOKEN_VOCAB = 6  # bf16 logits + fp32 upcast chunk in the loss
_SAFETY = 0.88  # leave headroom for fragmentation and allocator caches


def estimate_peak_bytes(shape: ModelShape, tokens_per_micro_batch: int, checkpointing: str, *, load_in_4bit: bool,
                        max_seq_length: int) -> int:
    weight_bytes = shape.n_params * (0.56 if load_in_4bit else 2.0)  # nf4 + absmax overhead vs bf16
    a_h, a_i = _ACT_PER_TOKEN_LAYER[checkpointing]
    act = tokens_per_micro_batch * shape.num_layers * (a_h * shape.hidden_size + a_i * shape.intermediate_size)
    if checkpointing != "off":  # one layer's full activations are live during its recomputation
        act += max_seq_length * 2 * (12.0 * shape.hidden_size + 3.2 * shape.intermediate_size)
    logits = tokens_per_micro_batch * shape.vocab_size * _LOGIT_BYTES_PER_TOKEN_VOCAB
    lora_and_optimizer = 2 * GIB
    return int(weight_bytes + act + logits + lora_and_optimizer)


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
) -> TrainSetup:
    """The fastest setup that fits. Explicit arguments (not "auto"/None) are kept as given.

    Preference order, fastest first: no checkpointing, plain checkpointing, Unsloth's offloaded
    checkpointing (Unsloth only); within each, the largest micro-batch (a power of two dividing the global
    batch) whose estimated peak fits in the free memory.
    """
    reasons: list[str] = []
    if attention == "auto":
        if device.kind == "cuda" and packing:
            attention = "sdpa-no-cudnn"
            reasons.append("packed batches: cuDNN SDPA costs 1-2 ms CPU per sequence per layer, use SDPA's flash kernel")
        else:
            attention = "sdpa"
    if device.kind != "cuda":
        ckpt = "off" if gradient_checkpointing == "auto" else gradient_checkpointing
        mbs = micro_batch_size or min(global_batch_examples, 2)
        reasons.append("no GPU: small micro-batch, no checkpointing (CPU runs are tests and demos)")
        return TrainSetup(mbs, max(1, global_batch_examples // mbs), ckpt, attention, 0, reasons)

    ckpt_options = [gradient_checkpointing] if gradient_checkpointing != "auto" else (
        ["off", "plain", "unsloth"] if backend == "unsloth" else ["off", "plain"])
    # Packed micro-batches are full rows of max_seq_length; padded ones are as long as their longest member.
    tokens_per_example = max_seq_length if packing else min(max_seq_length, max(1.0, mean_tokens_per_example) * 1.6)
    mbs_options = [micro_batch_size] if micro_batch_size else \
        [b for b in (64, 32, 16, 8, 4, 2, 1) if b <= global_batch_examples and global_batch_examples % b == 0] or [1]
    budget = device.free_bytes * _SAFETY
    for ckpt in ckpt_options:
        for mbs in mbs_options:
            if packing:
                # a packed row holds several examples: the micro-batch in examples needs fewer rows
                rows = max(1, round(mbs * mean_tokens_per_example / max_seq_length)) if mean_tokens_per_example else mbs
                tokens = rows * max_seq_length
            else:
                tokens = int(mbs * tokens_per_example)
            peak = estimate_peak_bytes(shape, tokens, ckpt, load_in_4bit=load_in_4bit, max_seq_length=max_seq_length)
            if peak <= budget:
                reasons.append(
                    f"{device.name}: {device.free_bytes / GIB:.0f} GiB free; checkpointing={ckpt}, micro-batch {mbs} "
                    f"(~{tokens} tokens) estimated {peak / GIB:.0f} GiB peak fits")
                return TrainSetup(mbs, max(1, global_batch_examples // mbs), ckpt, attention, peak, reasons)
    ckpt = "unsloth" if backend == "unsloth" and gradient_checkpointing == "auto" else ckpt_options[-1]
    reasons.append(f"{device.name}: nothing estimated to fit in {device.free_bytes / GIB:.0f} GiB free; "
                   f"falling back to micro-batch 1 with checkpointing={ckpt}")
    return TrainSetup(1, global_batch_examples, ckpt, attention,
                      estimate_peak_bytes(shape, max_seq_length, ckpt, load_in_4bit=load_in_4bit, max_seq_length=max_seq_length), reasons)
