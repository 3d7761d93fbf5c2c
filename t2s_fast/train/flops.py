"""Model FLOPs per trained token and MFU.

The formula (stated in every result, so the MFU figure can be checked by hand):

* A dense matmul with a weight of P parameters costs 2P FLOPs per token forward. Full fine-tuning pays that
  three times (forward, gradient w.r.t. activations, gradient w.r.t. weights): the usual 6N.
* QLoRA freezes the base, so the weight-gradient matmuls of the base are never computed: forward 2N plus the
  activation-gradient backward 2N = **4N** per trained token, N = all matmul parameters including lm_head
  (8.19 B for Qwen3-8B; the embedding lookup is no matmul, but N counts it, as the recorded "4N" figures do).
  LoRA's own matmuls add 6 x (LoRA params) per token: 6 x 43.6 M for r=16, ~0.8 % of 4N, so left out.
* Attention's score and value matmuls are not in N: per token and layer, forward QK^T and AV cost
  2 x 2 x d_attn x c FLOPs where c is the number of keys the token attends to (causal: its position + 1,
  within its own example when packed); backward costs twice the forward. So **12 x L x d_attn x c_mean** per
  trained token, reported separately as "4N + attention" (c_mean from the data's real lengths).
* Recomputation from gradient checkpointing is *not* counted (that would be hardware FLOPs utilisation);
  MFU counts only the model's useful FLOPs, so checkpointing shows up as lower MFU, which is the point.

MFU = FLOPs per trained token x trained tokens/s / peak, with the peak measured on the same GPU in the same
run (peak.py: dense bf16 matmuls), not the datasheet.
"""

from __future__ import annotations

from collections.abc import Iterable

from t2s_fast.train.autotune import ModelShape

FORMULA_4N = ("4N per trained token (QLoRA: forward 2N + activation-gradient backward 2N; frozen base gets no weight "
              "gradients)")
FORMULA_ATTENTION = "12 x L x d_attn x c_mean per trained token (QK^T and AV, forward + 2x backward; c = attended keys)"


def shape_from_config(config) -> ModelShape:
    return ModelShape.from_config(config)


def matmul_flops_per_token(shape: ModelShape, *, full_finetune: bool = False) -> float:
    """4N for LoRA/QLoRA (6N for full fine-tuning)."""
    return (6 if full_finetune else 4) * shape.n_params


def mean_attended_context(lengths: Iterable[int]) -> float:
    """Mean number of keys a token attends to, causal, within its own example: sum n(n+1)/2 / sum n."""
    lengths = [int(n) for n in lengths if n > 0]
    total = sum(lengths)
    return sum(n * (n + 1) / 2 for n in lengths) / total if total else 0.0


def attention_flops_per_token(shape: ModelShape, mean_context: float) -> float:
    return 12.0 * shape.num_layers * shape.attention_width * mean_context


def flops_per_token(shape: ModelShape, lengths: Iterable[int] | None = None) -> dict:
    """Both counts, with their formulas, for a result JSON."""
    base = matmul_flops_per_token(shape)
    ctx = mean_attended_context(lengths or [])
    attn = attention_flops_per_token(shape, ctx)
    return {"n_params": shape.n_params, "flops_per_token_4n": base, "attention_flops_per_token": attn,
            "mean_attended_context": round(ctx, 1), "flops_per_token_4n_plus_attention": base + attn,
            "formula": FORMULA_4N, "attention_formula": FORMULA_ATTENTION}


def mfu(tokens_per_s: float, flops_per_token_: float, peak_flops_per_s: float) -> float | None:
    """Model FLOPs utilisation as a fraction (0..1); None when the peak is unknown."""
    if not peak_flops_per_s or tokens_per_s is None:
        return None
    return tokens_per_s * flops_per_token_ / peak_flops_per_s


def tokens_per_s_at_mfu(fraction: float, flops_per_token_: float, peak_flops_per_s: float) -> float:
    return fraction * peak_flops_per_s / flops_per_token_
