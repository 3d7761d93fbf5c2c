"""Packed attention in one kernel call per layer: torch's varlen flash attention inside Unsloth.

Padding-free batches put several examples in one row. Unsloth 2026.10.7 (unsloth/utils/attention_dispatch.py)
runs such a row through PyTorch's ``torch.nn.attention.varlen.varlen_attn`` (one flash call per layer over
``cu_seqlens``) when the installed torch's ``varlen_attn`` takes both ``window_size`` and ``enable_gqa``
(torch 2.12+); otherwise it falls back to one SDPA call per packed example per layer.

torch 2.11 (the GPU image) has ``varlen_attn`` with ``window_size`` but without ``enable_gqa``: its flash
kernel takes grouped K/V heads natively (FlashAttention-2 reads ``num_heads_k`` from K), only the keyword is
missing. ``install_varlen_for_unsloth`` fills that gap with a wrapper that accepts the keyword and, should a
torch build refuse grouped heads, repeats K/V to the query's head count. Unsloth's own guards
(``_torch_varlen_takes``: bf16/fp16, CUDA, head_dim <= 256, no dropout, not deterministic) still decide per
call; the wrapper only makes the kernel reachable.

``tests/test_packing.py`` checks the wrapper's outputs and gradients against per-example SDPA on a GPU,
and also that packed examples cannot see each other through it.
"""

from __future__ import annotations

import inspect
import logging

log = logging.getLogger(__name__)


def torch_varlen_attn():
    """torch's ``varlen_attn`` if this build has the causal-window form Unsloth calls, else None."""
    try:
        import torch
        from torch.nn.attention.varlen import varlen_attn
    except Exception:  # older torch
        return None
    if "window_size" not in inspect.signature(varlen_attn).parameters:
        return None
    if not torch.cuda.is_available() or not getattr(torch.backends.cuda, "is_flash_attention_available",
                                                    lambda: True)():
        return None
    return varlen_attn


def varlen_available() -> bool:
    return torch_varlen_attn() is not None


def gqa_varlen(varlen_attn):
    """``varlen_attn`` that also takes ``enable_gqa`` (the torch 2.12 signature Unsloth calls with)."""
    takes_gqa = "enable_gqa" in inspect.signature(varlen_attn).parameters
    state = {"native_gqa": True}

    def call(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, enable_gqa: bool = False, **kwargs):
        call.calls += 1
        if call.calls == 1:
            log.info("torch varlen attention in use: %d packed examples in a row of %d tokens, %d query / %d K/V heads",
                     cu_seq_q.numel() - 1, query.shape[0], query.shape[1], key.shape[1])
        if takes_gqa:
            return varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, enable_gqa=enable_gqa, **kwargs)
        grouped = enable_gqa and query.shape[1] != key.shape[1]
        if grouped and state["native_gqa"]:
            try:
                return varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, **kwargs)
            except (RuntimeError, ValueError) as e:  # a build whose kernel wants equal head counts
                log.warning("varlen_attn refused grouped K/V heads (%s); repeating K/V instead", e)
                state["native_gqa"] = False
        if grouped:
            rep = query.shape[1] // key.shape[1]
            key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
        return varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, **kwargs)

    call.__wrapped__ = varlen_attn
    call.calls = 0  # how many attention calls went through it (tests check the packed path really used it)
    return call


def install_varlen_for_unsloth() -> str:
    """Make Unsloth's packed attention use torch's varlen kernel. Returns what was done, for the run's notes.
    Call after ``import unsloth``."""
    from unsloth.utils import attention_dispatch as dispatch

    if getattr(dispatch, "_TORCH_VARLEN_ATTN", None) is not None:
        return "torch varlen attention: already used by Unsloth (this torch has the full signature)"
    if not hasattr(dispatch, "_TORCH_VARLEN_ATTN"):
        raise RuntimeError("this Unsloth version has no torch-varlen hook (unsloth/utils/attention_dispatch.py)")
    varlen_attn = torch_varlen_attn()
    if varlen_attn is None:
        raise RuntimeError("this torch has no usable torch.nn.attention.varlen.varlen_attn (needs torch >= 2.11 "
                           "with CUDA flash attention)")
    dispatch._TORCH_VARLEN_ATTN = gqa_varlen(varlen_attn)
    return "torch varlen attention: one flash call per layer for each packed row (enable_gqa shim for torch 2.11)"


def installed_shim():
    """The wrapper Unsloth currently calls, if ``install_varlen_for_unsloth`` put it there (else None)."""
    import sys

    dispatch = sys.modules.get("unsloth.utils.attention_dispatch")
    fn = getattr(dispatch, "_TORCH_VARLEN_ATTN", None)
    return fn if hasattr(fn, "calls") else None
