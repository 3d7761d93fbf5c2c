"""Profile one optimizer step of a real `t2s-fast train` run and break its time into buckets.

`t2s-fast bench profile --label NAME [--warmup-steps 2] -- <t2s-fast train flags>` runs training in this
process with torch.profiler armed by a global optimizer-step hook (torch.optim's
register_optimizer_step_post_hook), so it needs nothing from the trainer: the profiled window is exactly one
optimizer step (all its micro-batches plus the optimizer), after --warmup-steps unprofiled steps.

Buckets of GPU kernel time: matmul, attention, quantization (bitsandbytes dequantize), elementwise (incl.
norms, activations, loss, optimizer, Triton-fused kernels), copies (memcpy, memset, fills, cat), other; plus
``idle_s`` = step wall time minus the union of kernel intervals: the GPU waiting for the host (Python,
kernel launches, per-call setup such as cuDNN attention's). The busiest host ops are listed to explain it.
Without a GPU, CPU op times are bucketed the same way (for tests; not a performance figure).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from t2s_fast.configs import setting
from t2s_fast.errors import T2SError

log = logging.getLogger(__name__)

BUCKETS = ("matmul", "attention", "quantization", "elementwise", "copies", "other")

_COPIES = ("memcpy", "memset", "fill", "copy", "catarraybatched", "aten::cat", "aten::zero", "aten::clone",
           "aten::contiguous", "aten::to", "aten::_to_copy")
_ATTENTION = ("flash", "fmha", "attention", "attn", "sdpa", "cudnn_mha", "mha", "softmax_rescale")
_MATMUL = ("gemm", "gemv", "cutlass", "cublas", "xmma", "nvjet", "wgmma", "matmul", "aten::mm", "aten::addmm",
           "aten::bmm", "aten::baddbmm", "aten::linear", "dot_kernel", "splitk")
_QUANT = ("dequant", "quantize", "kdequantize", "nf4", "4bit")
_ELEMENTWISE = ("elementwise", "vectorized", "unrolled", "reduce", "norm", "softmax", "triton", "silu", "swiglu",
                "gelu", "rope", "rotary", "cross_entropy", "entropy", "adam", "optimizer", "index", "gather",
                "scatter", "where", "aten::")


def classify_kernel(name: str) -> str:
    n = name.lower()
    if any(k in n for k in _COPIES):
        return "copies"
    if any(k in n for k in _QUANT):
        return "quantization"
    if any(k in n for k in _ATTENTION):
        return "attention"
    if any(k in n for k in _MATMUL):
        return "matmul"
    if any(k in n for k in _ELEMENTWISE) or n.startswith(("_", "void at::", "at::")):
        return "elementwise"
    return "other"


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping intervals."""
    total, end = 0.0, None
    start = None
    for s, e in sorted(intervals):
        if end is None or s > end:
            if end is not None:
                total += end - start
            start, end = s, e
        else:
            end = max(end, e)
    if end is not None:
        total += end - start
    return total


def is_annotation(name: str) -> bool:
    """Profiler ranges mirrored on the GPU timeline (``ProfilerStep#N``, ``record_function`` labels): they span
    the kernels inside them, so counting them as kernels double-counts the step and hides idle time."""
    return name.startswith("ProfilerStep") or name.startswith("## ")


def summarize_events(kernels: list[tuple[str, float, float]], step_time_s: float,
                     cpu_ops: list[tuple[str, float, int]] | None = None) -> dict:
    """kernels: (name, start_us, end_us); cpu_ops: (name, self_cpu_s, calls). Annotation ranges are dropped."""
    kernels = [k for k in kernels if not is_annotation(k[0])]
    buckets = dict.fromkeys(BUCKETS, 0.0)
    per_name: dict[str, list] = {}
    for name, s, e in kernels:
        d = (e - s) / 1e6
        buckets[classify_kernel(name)] += d
        agg = per_name.setdefault(name, [0.0, 0])
        agg[0] += d
        agg[1] += 1
    busy = union_length([(s, e) for _, s, e in kernels]) / 1e6
    idle = max(0.0, step_time_s - busy)
    top = sorted(per_name.items(), key=lambda kv: -kv[1][0])[:15]
    cpu_ops = cpu_ops or []
    return {
        "step_time_s": round(step_time_s, 4),
        "gpu_busy_s": round(busy, 4),
        "idle_s": round(idle, 4),
        "gpu_busy_pct": round(100 * busy / step_time_s, 1) if step_time_s else None,
        "buckets_s": {k: round(v, 4) for k, v in buckets.items()},
        "buckets_pct_of_step": {k: round(100 * v / step_time_s, 1) if step_time_s else None for k,
                                v in buckets.items()},
        "kernel_count": len(kernels),
        "top_kernels": [{"name": n[:160], "bucket": classify_kernel(n), "total_s": round(v[0], 4), "count": v[1]}
                        for n, v in top],
        "top_host_ops": [{"name": n, "self_cpu_s": round(t, 4), "calls": c}
                         for n, t, c in sorted(cpu_ops, key=lambda x: -x[1])[:15]],
        "attention_host_calls": sum(c for n, _, c in cpu_ops if classify_kernel(n) == "attention"),
    }


@dataclass
class _StepClock:
    marks: list = field(default_factory=list)


def profile_training(train_args: list[str], *, warmup_steps: int = 2, label: str = "") -> dict:
    """Run `t2s-fast train TRAIN_ARGS --max-steps warmup+2`, profiling optimizer step warmup+1."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, schedule

    from t2s_fast.cli import main as t2s_main

    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    clock = _StepClock()
    captured: dict = {}

    def on_trace_ready(p):
        events = p.events()
        if cuda:
            kernels = [(e.name, e.time_range.start, e.time_range.end) for e in events
                       if e.device_type == DeviceType.CUDA and e.time_range.end > e.time_range.start
                       and not getattr(e, "is_user_annotation", False)]
        else:  # bucket CPU ops by their self time (leaf-ish view)
            kernels, t = [], 0.0
            for e in events:
                if e.device_type == DeviceType.CPU and e.name.startswith("aten::") and e.self_cpu_time_total > 0:
                    kernels.append((e.name, t, t + e.self_cpu_time_total))
                    t += e.self_cpu_time_total
        cpu_ops = [(a.key, a.self_cpu_time_total / 1e6, a.count) for a in p.key_averages()
                   if a.self_cpu_time_total > 0]
        captured["kernels"], captured["cpu_ops"] = kernels, cpu_ops

    prof = profile(activities=activities, schedule=schedule(wait=max(0, warmup_steps - 1), warmup=1, active=1,
                                                            repeat=1),
                   on_trace_ready=on_trace_ready)

    def hook(optimizer, args, kwargs):
        # accelerate's AcceleratedOptimizer wraps the real one: count the inner step only
        inner = getattr(optimizer, "optimizer", None)
        if isinstance(inner, torch.optim.Optimizer):
            return
        if cuda:
            torch.cuda.synchronize()
        clock.marks.append(time.perf_counter())
        prof.step()

    from torch.optim.optimizer import register_optimizer_step_post_hook

    handle = register_optimizer_step_post_hook(hook)
    argv = ["train", *train_args]
    if "--max-steps" not in train_args:
        argv += ["--max-steps", str(warmup_steps + 2)]
    prof.start()
    try:
        t2s_main(argv)
    finally:
        handle.remove()
        prof.stop()
    if "kernels" not in captured or len(clock.marks) < warmup_steps + 1:
        raise RuntimeError(f"profiled no step: {len(clock.marks)} optimizer steps ran; need > {warmup_steps}")
    # marks[k] is the end of optimizer step k+1; the active window is step warmup+1
    step_time = clock.marks[warmup_steps] - clock.marks[warmup_steps - 1] if warmup_steps >= 1 else clock.marks[0]
    row = {"label": label, "train_args": train_args, "warmup_steps": warmup_steps, "profiled_step": warmup_steps + 1,
           "device": torch.cuda.get_device_name() if cuda else "cpu",
           **summarize_events(captured["kernels"], step_time, captured["cpu_ops"])}
    return row


@dataclass
class BenchProfileConfig:
    """The `t2s-fast bench profile` settings."""

    label: str = setting(help="Name of this setting (in the result file's name).")
    warmup_steps: int = setting(2, "Unprofiled optimizer steps first (at least 1).")
    out_dir: str = setting("runs/bench", "Where the result JSON goes.")
    train_args: tuple[str, ...] = setting((), "The `t2s-fast train` flags (after --).", argument=True,
                                          unprocessed=True)


def bench_profile(cfg: BenchProfileConfig) -> tuple[dict, str]:
    """Profile one optimizer step of `t2s-fast train cfg.train_args`; (the profile row, the result file)."""
    from t2s_fast.benchmarks import results

    if cfg.warmup_steps < 1:
        raise T2SError(f"--warmup-steps {cfg.warmup_steps}: must be at least 1")
    row = profile_training(list(cfg.train_args), warmup_steps=cfg.warmup_steps, label=cfg.label)
    result = results.make_result("profile", settings={"label": cfg.label, "warmup_steps": cfg.warmup_steps,
                                                       "train_args": list(cfg.train_args)}, rows=[row])
    return row, str(results.write_result(result, cfg.out_dir, cfg.label))
