"""Training backends behind one seam (`base.Backend`): Unsloth (GPU) and transformers+PEFT (GPU or CPU)."""

from __future__ import annotations

from t2s_fast.errors import T2SError


def resolve_backend_name(name: str) -> str:
    """auto = unsloth iff a CUDA GPU is there."""
    import torch

    if name == "auto":
        return "unsloth" if torch.cuda.is_available() else "hf"
    if name == "unsloth" and not torch.cuda.is_available():
        raise T2SError("--backend unsloth needs a CUDA GPU; none is visible here (use --backend hf on a CPU)")
    if name not in ("unsloth", "hf"):
        raise T2SError(f"--backend {name!r}: choose auto, unsloth or hf")
    return name


def get_backend(name: str):
    name = resolve_backend_name(name)
    if name == "unsloth":
        from t2s_fast.train.backends.unsloth import UnslothBackend

        return UnslothBackend()
    from t2s_fast.train.backends.hf import HFBackend

    return HFBackend()
