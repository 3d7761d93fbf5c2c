"""The seam between the evaluation harness and a generation engine.

A request is one rendered prompt for one adapter ("__base__" = the base model without any adapter, PEFT's
own name for it). An engine answers a list of requests with one result each, in the same order.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Protocol

from t2s_fast.errors import T2SError

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in mixed-adapter batches (peft.tuners.lora.layer)
BACKENDS = ("auto", "vllm", "hf")


@dataclass(frozen=True)
class RepetitionGuard:
    """End a completion whose last tokens are one n-gram repeated ``min_count`` times in a row (any n from
    ``min_pattern`` to ``max_pattern``): a runaway loop that would otherwise run to the token limit.

    vLLM 0.26 does this check itself per step (`SamplingParams.repetition_detection`); the HF backend runs
    `tail_repeats` as a stopping criterion, so both engines stop at the same point. Gold SQL never repeats a
    2-64 token run four times back to back, so a guarded answer that would have been right stays the same.
    """

    min_pattern: int = 2
    max_pattern: int = 64
    min_count: int = 4


def tail_repeats(token_ids, guard: RepetitionGuard) -> bool:
    """Whether ``token_ids`` ends in one n-gram repeated ``guard.min_count`` times (vLLM's rule, same bounds)."""
    n = len(token_ids)
    for size in range(max(1, guard.min_pattern), guard.max_pattern + 1):
        if size * guard.min_count > n:
            return False
        tail = token_ids[n - size:]
        if all(token_ids[n - size * (k + 1):n - size * k] == tail for k in range(1, guard.min_count)):
            return True
    return False


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """The one stop rule of every engine: end of turn (<|im_end|> for Qwen), <|endoftext|>, the tokenizer's eos
    and the model's generation-config eos ids. A completion ends at the first of them (which it includes)."""
    ids = set()
    for tok in ("<|im_end|>", "<|endoftext|>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid is not None:
            ids.add(tid)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    gen_eos = getattr(generation_config, "eos_token_id", None)
    for tid in gen_eos if isinstance(gen_eos, list) else [gen_eos]:
        if isinstance(tid, int):
            ids.add(tid)
    return sorted(ids)


@dataclass(frozen=True)
class GenSettings:
    """How to decode. temperature 0 = greedy. ``seed`` makes sampled runs repeatable per request.
    ``repetition_guard`` (None = off) stops runaway loops early."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    repetition_guard: RepetitionGuard | None = RepetitionGuard()

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class GenRequest:
    key: str  # unique within one call, e.g. "adapter|question-id|sample"
    adapter: str  # an adapter name given to the engine, or BASE_ADAPTER
    prompt: str  # fully rendered prompt text (t2s_fast.prompt.render_prompt)
    seed: int = 0  # per-request sampling seed (ignored when greedy)


@dataclass
class GenResult:
    key: str
    adapter: str
    text: str  # the decoded completion, special tokens removed
    n_tokens: int  # generated tokens, including the end-of-turn token when one was produced
    finish: str = "stop"  # "stop" (end of turn), "length" (hit max_new_tokens) or "repetition" (guard stopped it)


class Generator(Protocol):
    name: str
    # How many requests the harness should hand over per call; None = everything at once (vLLM schedules
    # its own batches, and one call over all adapters is what makes LoRA hot-swapping pay off).
    batch_size: int | None

    def generate(self, requests: list[GenRequest], settings: GenSettings) -> list[GenResult]: ...

    def close(self) -> None: ...


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def select_backend(name: str = "auto") -> str:
    """'vllm' or 'hf'. auto = vLLM when it is importable and a CUDA GPU is present, else transformers+PEFT."""
    name = (name or "auto").lower()
    if name not in BACKENDS:
        raise T2SError(f"--backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        return "vllm" if vllm_available() and cuda_available() else "hf"
    if name == "vllm" and not vllm_available():
        raise T2SError("--backend vllm: the 'vllm' package is not installed here; use --backend hf (or auto)")
    return name


def order_for_backend(generator, requests: list[GenRequest], adapter_order: list[str]) -> list[GenRequest]:
    """The order a backend generates best in. Backends with ``prefers_adapter_grouping`` (HF/PEFT: one active
    adapter per batch beats PEFT's mixed-adapter path) get the requests adapter by adapter in
    ``adapter_order``, each group keeping its given order; others (vLLM, which swaps adapters per request)
    keep the order as given. Deterministic, so a resumed run forms the batches an uninterrupted one would."""
    if not getattr(generator, "prefers_adapter_grouping", False):
        return list(requests)
    rank = {name: i for i, name in enumerate(adapter_order)}
    return sorted(requests, key=lambda r: rank.get(r.adapter, len(rank)))
