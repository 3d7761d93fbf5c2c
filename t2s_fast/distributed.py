"""The few facts and collectives a multi-process run (`accelerate launch` / `torchrun`) needs.

The launchers set WORLD_SIZE / RANK / LOCAL_RANK; accelerate's `PartialState` joins the process group
(NCCL on GPUs, gloo on CPUs) exactly as HF Trainer does, so training and evaluation share one group.
Every helper is a no-op in a plain one-process run, where no process group exists.
"""

from __future__ import annotations

import contextlib
import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def is_distributed() -> bool:
    return world_size() > 1


def state():
    """accelerate's PartialState (joins the process group once; TrainingArguments reuses the same group)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if is_distributed():
        if not _initialized():
            state()
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def main_process_first():
    """Rank 0 runs the block first (e.g. writes a shared file), then the others (who then read it)."""
    if not is_distributed():
        yield
        return
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def _reduce(values: list[float], op: str) -> list[float]:
    if not is_distributed():
        return list(values)
    import torch
    import torch.distributed as dist

    if not _initialized():
        state()
    device = f"cuda:{local_rank()}" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
    return t.cpu().tolist()


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over all processes (the values themselves in a one-process run)."""
    return _reduce(values, "sum")


def any_true(*flags: bool) -> list[bool]:
    """Element-wise OR over all processes: every rank gets the same answer (a decision that differs between
    ranks, e.g. to stop or to save, would leave the others waiting in the next collective forever)."""
    return [v > 0 for v in _reduce([1.0 if f else 0.0 for f in flags], "max")]
