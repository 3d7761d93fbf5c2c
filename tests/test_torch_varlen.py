"""The torch-varlen shim that lets Unsloth run packed rows through one flash call per layer
(t2s_fast/train/backends/torch_varlen.py).

CPU: the wrapper's argument handling, against a reference "kernel" that computes per-segment causal
attention with SDPA. GPU: the real torch kernel, outputs and gradients, against per-example SDPA."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from t2s_fast.train.backends.torch_varlen import gqa_varlen

LENGTHS = [5, 17, 1, 9]


def per_segment_reference(q, k, v, cu, *, gqa: bool):
    """(T, H, D) packed tensors -> (T, H, D): each segment attends causally to itself only."""
    outs = []
    bounds = cu.tolist()
    for s, e in zip(bounds, bounds[1:]):
        qs, ks, vs = (x[s:e].transpose(0, 1).unsqueeze(0) for x in (q, k, v))
        outs.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, enable_gqa=gqa)[0].transpose(0, 1))
    return torch.cat(outs)


def _inputs(heads=8, kv_heads=2, dim=16, device="cpu", dtype=torch.float32, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    total = sum(LENGTHS)
    mk = lambda h: torch.randn(total, h, dim, generator=g).to(device=device, dtype=dtype).requires_grad_(True)  # noqa: E731
    cu = torch.tensor([0, *torch.tensor(LENGTHS).cumsum(0).tolist()], dtype=torch.int32, device=device)
    return mk(heads), mk(kv_heads), mk(kv_heads), cu


def fake_varlen_without_gqa(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale=None,
                            window_size=(-1, -1), return_aux=None):
    """torch 2.11's signature (no enable_gqa); refuses grouped heads, like a kernel that wants them equal."""
    if query.shape[1] != key.shape[1]:
        raise RuntimeError("Number of heads in key/value must divide number of heads in query")
    assert window_size == (-1, 0)
    return per_segment_reference(query, key, value, cu_seq_q, gqa=False)


def fake_varlen_native_gqa(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale=None,
                           window_size=(-1, -1), return_aux=None):
    """torch 2.11's signature, with a kernel that reads the K/V head count itself (FlashAttention-2)."""
    return per_segment_reference(query, key, value, cu_seq_q, gqa=query.shape[1] != key.shape[1])


@pytest.mark.parametrize("kernel", [fake_varlen_without_gqa, fake_varlen_native_gqa])
def test_shim_takes_enable_gqa_and_matches_per_segment_attention(kernel):
    call = gqa_varlen(kernel)
    assert "enable_gqa" not in inspect.signature(kernel).parameters
    q, k, v, cu = _inputs()
    out = call(q, k, v, cu, cu, max(LENGTHS), max(LENGTHS), scale=None, window_size=(-1, 0), enable_gqa=True)
    ref = per_segment_reference(q, k, v, cu, gqa=True)
    torch.testing.assert_close(out, ref)
    out.square().sum().backward()
    assert k.grad is not None and k.grad.shape == k.shape  # gradients reach the grouped K/V


def test_shim_passes_enable_gqa_through_when_torch_takes_it():
    seen = {}

    def kernel(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, window_size=(-1, -1), enable_gqa=False):
        seen["enable_gqa"] = enable_gqa
        return query

    q, k, v, cu = _inputs()
    gqa_varlen(kernel)(q, k, v, cu, cu, 17, 17, window_size=(-1, 0), enable_gqa=True)
    assert seen == {"enable_gqa": True}


def test_packed_segments_do_not_see_each_other_in_the_reference():
    """The reference itself is sharp: changing one segment's keys changes only that segment's output."""
    q, k, v, cu = _inputs(heads=4, kv_heads=4)
    base = per_segment_reference(q, k, v, cu, gqa=False).detach()
    k2 = k.detach().clone()
    k2[: LENGTHS[0]] += 3.0
    moved = per_segment_reference(q, k2, v, cu, gqa=False).detach()
    assert not torch.allclose(moved[: LENGTHS[0]], base[: LENGTHS[0]])
    torch.testing.assert_close(moved[LENGTHS[0]:], base[LENGTHS[0]:])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch's varlen kernel needs a CUDA GPU")
def test_real_varlen_kernel_matches_per_example_sdpa_forward_and_backward():
    """FlashAttention's own test criterion: against an fp32 reference, the varlen kernel's bf16 error (outputs
    and the gradients of Q, K, V) is at most a small multiple of the error of bf16 per-example SDPA, the path
    Unsloth took before. A wrong mask or a wrong grouped-K/V gradient is off by O(1), far outside this."""
    from t2s_fast.train.backends.torch_varlen import torch_varlen_attn

    kernel = torch_varlen_attn()
    if kernel is None:
        pytest.skip("this torch has no varlen_attn with window_size")
    # Qwen3-8B's grouping: 32 query heads on 8 K/V heads, head_dim 128, bf16
    q, k, v, cu = _inputs(heads=32, kv_heads=8, dim=128, device="cuda", dtype=torch.bfloat16)
    dout = torch.randn(q.shape, generator=torch.Generator().manual_seed(1)).to("cuda", torch.bfloat16)

    def run(fn, *xs):
        out = fn(*xs)
        return (out, *torch.autograd.grad(out, xs, dout.to(out.dtype)))

    max_len = max(LENGTHS)
    varlen = run(lambda a, b, c: gqa_varlen(kernel)(a, b, c, cu, cu, max_len, max_len, window_size=(-1, 0),
                                                    enable_gqa=True), q, k, v)
    sdpa_bf16 = run(lambda a, b, c: per_segment_reference(a, b, c, cu, gqa=True), q, k, v)
    leaves32 = [x.detach().float().requires_grad_(True) for x in (q, k, v)]
    ref32 = run(lambda a, b, c: per_segment_reference(a, b, c, cu, gqa=True), *leaves32)
    for name, got, base, ref in zip(("out", "dq", "dk", "dv"), varlen, sdpa_bf16, ref32):
        err = (got.float() - ref).abs().max().item()
        base_err = (base.float() - ref).abs().max().item()
        assert err <= 3 * base_err + 1e-3, f"{name}: varlen error {err:.4g} vs per-example SDPA error {base_err:.4g}"
