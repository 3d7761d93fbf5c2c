"""The seam between the training loop and the model stacks.

A backend loads the base model and tokenizer with LoRA applied (a new adapter for stage 1, the stage-1
adapter continued for stage 2) and says which SFTConfig settings it needs. Everything else (data, the TRL
SFTTrainer, callbacks, budget, logs) is shared, so both backends train on exactly the same batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from t2s_fast.models import ModelSource


@dataclass
class Loaded:
    model: object
    tokenizer: object
    notes: list[str] = field(default_factory=list)


class Backend(ABC):
    name: str = ""

    def setup_process(self) -> None:
        """Imports/patches that must happen before trl, transformers and peft are imported (Unsloth)."""

    @abstractmethod
    def load(self, cfg, setup, source: ModelSource) -> Loaded:
        """Base model + tokenizer with LoRA: new (cfg.lora_*) or cfg.adapter_path continued (trainable)."""

    def sft_overrides(self, cfg, setup) -> dict:
        """Backend-specific SFTConfig keyword arguments."""
        return {}

    def trainer_class(self):
        from trl import SFTTrainer

        return SFTTrainer

    def default_tokens_per_s(self, device_kind: str) -> float:
        """Conservative throughput for the cost projection before anything is measured."""
        return 200.0 if device_kind == "cpu" else 2000.0


def gc_flag(setup) -> bool | str:
    """TrainSetup.gradient_checkpointing -> the value Unsloth/transformers understand."""
    return {"off": False, "plain": True, "unsloth": "unsloth"}[setup.gradient_checkpointing]


def apply_attention_policy(attention: str) -> str:
    """Process-wide SDPA switches; returns the attn_implementation name for transformers."""
    import torch

    if attention in ("sdpa-no-cudnn", "varlen") and torch.cuda.is_available():
        # cuDNN's SDPA pays 1-2 ms of CPU per call, one call per packed sequence per layer
        # (../shared/notes/h200-qlora-first-measurements.md); the flash kernel does not.
        torch.backends.cuda.enable_cudnn_sdp(False)
    return "eager" if attention == "eager" else "sdpa"


def lora_config(cfg):
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
