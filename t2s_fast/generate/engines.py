"""Which engine answers: the factory over the generation backends (vLLM, transformers+PEFT).

It lives apart from `base.py`, the seam both backends import, so no backend module imports back the module
that imports it.
"""

from __future__ import annotations

from t2s_fast.generate.base import Generator, select_backend


def make_generator(backend: str, *, base_model: str, adapters: dict[str, str], tokenizer_dir: str,
                   batch_size: int | None = None, **engine_kwargs) -> Generator:
    """Build the engine for ``backend`` ('auto', 'vllm' or 'hf') with every adapter loaded once."""
    backend = select_backend(backend)
    if backend == "vllm":
        from t2s_fast.generate.vllm import VLLMDataParallel, VLLMGenerator

        if engine_kwargs.get("data_parallel_size", 1) > 1:
            return VLLMDataParallel(base_model=base_model, adapters=adapters, tokenizer_dir=tokenizer_dir,
                                    **engine_kwargs)
        return VLLMGenerator(base_model=base_model, adapters=adapters, tokenizer_dir=tokenizer_dir, **engine_kwargs)
    from t2s_fast.generate.hf import HFGenerator

    hf_kwargs = {k: v for k, v in engine_kwargs.items() if k in ("device", "dtype", "seed")}
    return HFGenerator(base_model=base_model, adapters=adapters, tokenizer_dir=tokenizer_dir,
                       batch_size=batch_size, **hf_kwargs)
