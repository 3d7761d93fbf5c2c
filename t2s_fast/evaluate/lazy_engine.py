"""A generation engine shared by several evaluations and opened only when one of them has something to generate.

`ablate` runs all its arms through one; the sweep runs its held-out evaluation and the chosen adapter's final
report through one. An engine start is most of a small evaluation (vLLM: torch.compile and CUDA graphs, 86 s cold
for the 0.5B on an H200), so each engine not opened is time saved.
"""

from __future__ import annotations

import logging
import time

from t2s_fast.evaluate.config import EvalConfig

log = logging.getLogger(__name__)

# What an engine is, so the same for every evaluation that shares it: set where the engine is configured.
ENGINE_FIELDS = ("base_model", "adapters", "include_base", "backend", "tokenizer", "dtype", "max_model_len",
                 "gpu_memory_utilization", "tensor_parallel_size", "data_parallel_size", "enforce_eager",
                 "vllm_cache_dir", "batch_size")


class LazyEngine:
    """One engine for several evaluations (`harness.evaluate(cfg, generator=engine)`), opened once, on the first
    generate call or engine attribute asked for: a run with nothing left to generate opens none."""

    def __init__(self, cfg: EvalConfig):
        from t2s_fast.generate.base import select_backend

        self.cfg, self.name = cfg, select_backend(cfg.backend)
        self.engine, self.open_seconds = None, 0.0

    def _open(self):
        if self.engine is None:
            from t2s_fast.evaluate.generation import open_generator
            from t2s_fast.evaluate.harness import load_tokenizer, resolve_base_model

            t0 = time.perf_counter()
            model_path = resolve_base_model(self.cfg)
            tokenizer_dir, _ = load_tokenizer(self.cfg, model_path)
            log.info("opening the %s engine (once, for every evaluation that shares it)", self.name)
            self.engine = open_generator(self.cfg, self.name, tokenizer_dir, model_path)
            self.open_seconds = time.perf_counter() - t0
        return self.engine

    def generate(self, requests, settings):
        return self._open().generate(requests, settings)

    def __getattr__(self, attr):  # batch_size, prefers_adapter_grouping, ...: the real engine's
        if attr.startswith("__") or attr in ("cfg", "name", "engine", "open_seconds"):
            raise AttributeError(attr)
        return getattr(self._open(), attr)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
