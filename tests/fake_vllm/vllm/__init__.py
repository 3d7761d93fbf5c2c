"""Fake vLLM for CPU tests: records how it is driven, answers through a test-supplied RESPONDER."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vllm.sampling_params import RepetitionDetectionParams, SamplingParams  # noqa: F401 - vllm exports it here too

__version__ = "0.0.0-fake"

CALLS: dict = {"engines": [], "generate": [], "env": []}
ALLOWED_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm/config/lora.py


def _default_responder(prompt, lora_request):
    return "SELECT 1"


RESPONDER = _default_responder


def reset():
    global RESPONDER
    CALLS["engines"].clear()
    CALLS["generate"].clear()
    CALLS["env"].clear()
    RESPONDER = _default_responder


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list = field(default_factory=list)
    finish_reason: str | None = "stop"
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str
    outputs: list


class LLM:
    def __init__(self, model: str, *, enable_lora: bool = False, max_loras: int = 1, max_lora_rank: int = 16, **kwargs):
        from vllm._known_args import LLM_KWARGS

        unknown = sorted(set(kwargs) - LLM_KWARGS)
        if unknown:  # vLLM passes **kwargs to the EngineArgs dataclass, which refuses names it does not have
            raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument {unknown[0]!r}")
        if enable_lora and max_lora_rank not in ALLOWED_MAX_LORA_RANKS:
            raise ValueError(f"max_lora_rank ({max_lora_rank}) must be one of {ALLOWED_MAX_LORA_RANKS}")
        # vLLM's ModelConfig validates dtype: "auto" or a dtype name / torch.dtype; None is refused
        dtype = kwargs.get("dtype", "auto")
        if dtype is None or not isinstance(dtype, str) and type(dtype).__name__ != "dtype":
            raise ValueError(f"dtype {dtype!r} is not a valid vLLM dtype")
        self.kwargs = dict(model=model, enable_lora=enable_lora, max_loras=max_loras, max_lora_rank=max_lora_rank,
                           **kwargs)
        CALLS["engines"].append(self.kwargs)
        # what the engine's child process would inherit (vLLM reads VLLM_* settings from the environment)
        CALLS["env"].append({k: v for k, v in os.environ.items() if k.startswith("VLLM_")})

    def get_tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.kwargs.get("tokenizer") or self.kwargs["model"])

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None, **kwargs):
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        loras = lora_request if isinstance(lora_request, list) else [lora_request] * len(prompts)
        if len(loras) != len(prompts):
            raise ValueError("lora_request list must match prompts")
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        for lr in loras:
            if lr is not None and not self.kwargs["enable_lora"]:
                raise ValueError("LoRA is not enabled")
        CALLS["generate"].append({"prompts": prompts, "lora_request": loras, "sampling_params": params})
        outs = []
        for i, (p, lr, sp) in enumerate(zip(prompts, loras, params)):
            text = RESPONDER(p, lr)
            n = len(text.split()) + 1
            ids = list(range(min(n, sp.max_tokens or 10**9)))
            finish = "length" if n > len(ids) else "stop"
            stop_reason = None
            if sp.repetition_detection is not None and text.startswith("LOOP"):  # a runaway the guard catches
                finish, stop_reason = "stop", "repetition_detected"
            outs.append(RequestOutput(str(i), p, [CompletionOutput(0, text, ids, finish, stop_reason)]))
        return outs
