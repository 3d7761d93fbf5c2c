"""Unsloth: `FastLanguageModel` in 4-bit, LoRA with Unsloth's kernels and gradient checkpointing, and
Unsloth's patched TRL SFTTrainer.

Written against unsloth 2026.10.7 (unsloth/models/loader.py, llama.py): `import unsloth` must run before
trl/transformers/peft are imported in the process (it patches them), so `setup_process` does it first and
nothing here imports unsloth at module level (CPU machines never have it).

Stage 2: Unsloth's own adapter loading (`from_pretrained(adapter_dir)`) reloads the base named inside
adapter_config.json; we want the base the user named, so we mirror what its loader does for an adapter
folder: load the base, `PeftModel.from_pretrained(..., is_trainable=True)`, then
`FastLanguageModel.patch_peft_model(model, use_gradient_checkpointing)`, which installs Unsloth's fast LoRA
kernels and checkpointing on the loaded adapter, as `get_peft_model` does for a new one.
"""

from __future__ import annotations

import logging
import os

from t2s_fast.errors import T2SError
from t2s_fast.models import ModelSource
from t2s_fast.train.backends.base import Backend, Loaded, apply_attention_policy, gc_flag

log = logging.getLogger(__name__)


class UnslothBackend(Backend):
    name = "unsloth"

    def setup_process(self) -> None:
        os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")  # no network on the training machines
        import sys

        late = [m for m in ("trl", "peft") if m in sys.modules]
        if late and "unsloth" not in sys.modules:
            log.warning("%s imported before unsloth; Unsloth's patches may be incomplete", ", ".join(late))
        import unsloth  # noqa: F401  (patches transformers/trl/peft: must be first)

    def load(self, cfg, setup, source: ModelSource) -> Loaded:
        from unsloth import FastLanguageModel

        from t2s_fast.adapters import load_adapter_checked

        notes = []
        apply_attention_policy(setup.attention)
        if setup.attention == "eager":
            notes.append("attention=eager is not an Unsloth option; Unsloth uses its SDPA path")
        if setup.attention == "varlen":
            from t2s_fast.train.backends.torch_varlen import install_varlen_for_unsloth

            try:
                notes.append(install_varlen_for_unsloth())
            except RuntimeError as exc:
                raise T2SError(f"--attention varlen: {exc}; use --attention sdpa-no-cudnn") from None
        gc = gc_flag(setup)
        kwargs = dict(model_name=source.model_path, max_seq_length=cfg.max_seq_length, dtype=None,
                      load_in_4bit=cfg.load_in_4bit, use_gradient_checkpointing=gc, random_state=cfg.seed)
        if source.tokenizer_path != source.model_path:
            kwargs["tokenizer_name"] = source.tokenizer_path
        if os.environ.get("HF_HUB_OFFLINE") == "1" or os.path.isdir(source.model_path):
            kwargs["local_files_only"] = True
        if "LOCAL_RANK" in os.environ:  # data parallel (torchrun): each rank's whole model on its own GPU
            kwargs["device_map"] = {"": int(os.environ["LOCAL_RANK"])}
        model, tokenizer = FastLanguageModel.from_pretrained(**kwargs)
        notes.append(f"Unsloth FastLanguageModel, load_in_4bit={cfg.load_in_4bit}, use_gradient_checkpointing={gc!r}")
        if cfg.adapter_path:
            model = load_adapter_checked(model, cfg.adapter_path, is_trainable=True, base_name=source.model_path)
            model = FastLanguageModel.patch_peft_model(model, use_gradient_checkpointing=gc)
            notes.append(f"stage 2: continuing adapter {cfg.adapter_path}")
        else:
            model = FastLanguageModel.get_peft_model(
                model, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                target_modules=list(cfg.target_modules), bias="none", use_gradient_checkpointing=gc,
                random_state=cfg.seed, max_seq_length=cfg.max_seq_length)
        return Loaded(model=model, tokenizer=tokenizer, notes=notes)

    def sft_overrides(self, cfg, setup) -> dict:
        import torch

        return {
            # Unsloth owns checkpointing (model._unsloth_gradient_checkpointing, read by its patched trainer);
            # TrainingArguments' own would re-wrap the layers with HF's slower checkpointing.
            "gradient_checkpointing": False,
            "bf16": torch.cuda.is_bf16_supported(),
            "fp16": not torch.cuda.is_bf16_supported(),
        }

    def default_tokens_per_s(self, device_kind: str) -> float:
        # Runbook settings (padded, batch 2 x 16, offloaded checkpointing) measured 2,898-4,027 tok/s on H200.
        return 2500.0
