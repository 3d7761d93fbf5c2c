"""transformers + PEFT: bitsandbytes 4-bit NF4 (double quant, bf16 compute) on a GPU, full fp32 on a CPU.

The CPU test path and the baseline `bench` compares Unsloth against; same data, same SFTTrainer.
Packed / padding-free batches are correct here with SDPA and eager attention: with no attention mask,
transformers' `create_causal_mask` derives a block-diagonal mask from the restarting `position_ids`
(transformers/masking_utils.py, `find_packed_sequence_indices`), so packed examples never see each other.
"""

from __future__ import annotations

import logging

from t2s_fast.models import ModelSource
from t2s_fast.train.backends.base import Backend, Loaded, apply_attention_policy, lora_config

log = logging.getLogger(__name__)


class HFBackend(Backend):
    name = "hf"

    def load(self, cfg, setup, source: ModelSource) -> Loaded:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from t2s_fast.adapters import load_adapter_checked

        notes = []
        tokenizer = AutoTokenizer.from_pretrained(source.tokenizer_path)
        attn = apply_attention_policy(setup.attention)
        kwargs = {"attn_implementation": attn}
        on_gpu = torch.cuda.is_available()
        if on_gpu:
            import os

            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
            kwargs["dtype"] = torch.bfloat16
            if cfg.load_in_4bit:
                from transformers import BitsAndBytesConfig

                kwargs["quantization_config"] = BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                    bnb_4bit_compute_dtype=torch.bfloat16)
                notes.append("bitsandbytes 4-bit NF4, double quant, bf16 compute")
            else:
                notes.append("bf16 base")
        else:
            kwargs["dtype"] = torch.float32
            notes.append("CPU: full-precision fp32 base (no 4-bit on a CPU)")
        model = AutoModelForCausalLM.from_pretrained(source.model_path, **kwargs)
        use_gc = setup.gradient_checkpointing != "off"
        if on_gpu and cfg.load_in_4bit:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=use_gc, gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.adapter_path:
            model = load_adapter_checked(model, cfg.adapter_path, is_trainable=True, base_name=source.model_path)
            notes.append(f"stage 2: continuing adapter {cfg.adapter_path}")
        else:
            from peft import get_peft_model

            model = get_peft_model(model, lora_config(cfg))
        return Loaded(model=model, tokenizer=tokenizer, notes=notes)

    def sft_overrides(self, cfg, setup) -> dict:
        import torch

        use_gc = setup.gradient_checkpointing != "off"  # "unsloth" offloading does not exist here: plain
        on_gpu = torch.cuda.is_available()
        return {
            "gradient_checkpointing": use_gc,
            "gradient_checkpointing_kwargs": {"use_reentrant": False} if use_gc else None,
            "bf16": on_gpu,
            "use_cpu": not on_gpu,
        }

    def default_tokens_per_s(self, device_kind: str) -> float:
        # H200 runbook settings measured ~2,000 trained tok/s for transformers+PEFT+bnb (see the notes).
        return 200.0 if device_kind == "cpu" else 1500.0
