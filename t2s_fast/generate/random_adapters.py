"""Random LoRA adapters for a model shape, without building the model's weights.

Benchmarks and tests need adapters that differ from the base model (PEFT's default init makes B = 0, i.e. a
no-op) for models that are themselves random-init, e.g. the Qwen3-8B shape on a GPU machine. The model is
built on the meta device (no memory), PEFT tells us the adapter's tensor names and shapes, and we save
random tensors under those names: a normal PEFT adapter folder that PEFT and vLLM load.
"""

from __future__ import annotations

import json
from pathlib import Path

from t2s_fast.errors import T2SError

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _config_for(base_model: str | Path):
    from transformers import AutoConfig

    p = Path(base_model)
    if p.is_file() and p.suffix == ".json":
        from t2s_fast.models import load_config_dict

        return AutoConfig.for_model(**load_config_dict(p))
    if p.is_dir():
        return AutoConfig.from_pretrained(str(p))
    raise T2SError(f"{base_model}: expected a model folder or a config.json")


def make_random_lora_adapter(base_model: str | Path, out_dir: str | Path, *, r: int = 16, alpha: int = 32,
                             target_modules: tuple[str, ...] = ALL_PROJECTIONS, seed: int = 0,
                             b_std: float = 0.05) -> Path:
    """Write a PEFT LoRA adapter with random A and B (so it changes the model's output) to ``out_dir``."""
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    config = _config_for(base_model)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    lora_cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(target_modules), lora_dropout=0.0,
                          bias="none", task_type="CAUSAL_LM", init_lora_weights=False)
    peft_model = get_peft_model(model, lora_cfg)
    shapes = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(peft_model).items()}
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, shape in sorted(shapes.items()):
        if "lora_A" in key:  # (r, in): kaiming-like scale keeps x @ A of order |x|
            tensors[key] = torch.randn(shape, generator=gen) / shape[1] ** 0.5
        else:  # lora_B (out, r)
            tensors[key] = torch.randn(shape, generator=gen) * b_std
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch.bfloat16 if getattr(config, "dtype", None) in (torch.bfloat16,
                                                                            "bfloat16") else torch.float32).contiguous()
               for k, v in tensors.items()}, str(out / "adapter_model.safetensors"))
    lora_cfg.base_model_name_or_path = str(base_model)
    lora_cfg.save_pretrained(str(out))
    (out / "t2s_random_adapter.json").write_text(json.dumps({"seed": seed, "r": r, "alpha": alpha, "b_std": b_std}))
    return out
