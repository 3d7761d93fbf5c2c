"""Fake vLLM for CPU tests: records how it is driven, answers through a test-supplied RESPONDER."""

from __future__ import annotations

from dataclasses import dataclass, field

__version__ = "0.0.0-fake"

CALLS: dict = {"engines": [], "generate": []}
ALLOWED_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm/config/lora.py


def _default_responder(prompt, lora_request):
    return "SELECT 1"


RESPONDER = _default_responder


def reset():
    global RESPONDER
    CALLS["engines"].clear()
    CALLS["generate"].clear()
    RESPONDER = _default_responder


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = 16
    seed: int | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list = field(default_factory=list)
    finish_reason: str | None = "stop"


@dataclass
class RequestOutput:
    request_id: str
    prompt: str
    outputs: list


class LLM:
    def __init__(self, model: str, *, enable_lora: bool = False, max_loras: int = 1, max_lora_rank: int = 16, **kwargs):
        if enable_lora and max_lora_rank not in ALLOWED_MAX_LORA_RANKS:
            raise ValueError(f"max_lora_rank ({max_lora_rank}) must be one of {ALLOWED_MAX_LORA_RANKS}")
        # vLLM's ModelConfig validates dtype: "auto" or a dtype name / torch.dtype; None is refused
        dtype = kwargs.get("dtype", "auto")
        if dtype is None or not isinstance(dtype, str) and type(dtype).__name__ != "dtype":
            raise ValueError(f"dtype {dtype!r} is not a valid vLLM dtype")
        self.kwargs = dict(model=model, enable_lora=enable_lora, max_loras=max_loras, max_lora_rank=max_lora_rank, **kwargs)
        CALLS["engines"].append(self.kwargs)

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
            ids = list(range(min(len(text.split()) + 1, sp.max_tokens or 10**9)))
            outs.append(RequestOutput(str(i), p, [CompletionOutput(0, text, ids)]))
        return outs
