"""`t2s-fast merge`: fold a LoRA adapter into its base model and save a standalone model (bf16 by default).

The base is loaded unquantized in the requested dtype (merging into 4-bit weights would round the LoRA
update away), the adapter is loaded with the same fit checks as training (`t2s_fast.adapters`), then
`merge_and_unload()`. The result is written to a temporary folder beside `output_dir` and renamed into place,
so a crash never leaves a half-written model that looks complete.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from t2s_fast.dtypes import HELP as DTYPE_HELP
from t2s_fast.dtypes import normalize_dtype
from t2s_fast.errors import T2SError

log = logging.getLogger(__name__)



@dataclass
class MergeConfig:
    adapter_path: str = field(default="", metadata={"help": "LoRA adapter folder (a run's adapter/).",
                                                    "required": True})
    output_dir: str = field(default="", metadata={"help": "Where the merged model is written (must not exist).",
                                                  "required": True})
    base_model: str | None = field(default=None, metadata={
        "help": "Base model: hub id, folder, packaged alias (qwen2.5-coder-0.5b, ...), .gguf file, or config.json "
                "(random init); default: the adapter's base_model_name_or_path."})
    dtype: str = field(default="bfloat16", metadata={"help": f"Weights dtype of the merged model: {DTYPE_HELP}."})
    tokenizer: str | None = field(default=None,
                                  metadata={"help": "Tokenizer to save with it (default: the adapter's)."})


def _resolve_base(base_model: str | None, adapter_cfg: dict, output_dir: Path, tokenizer: str | None) -> str:
    from t2s_fast.models import (
        find_tokenizer_dir,
        is_config_file,
        materialize_random_init,
        random_init_folder,
        resolve_model,
    )

    base = base_model or adapter_cfg.get("base_model_name_or_path")
    if not base:
        raise T2SError("the adapter names no base model; pass --base-model")
    base = resolve_model(base).path  # a packaged alias or .gguf: its cached folder; others as given
    if is_config_file(base):
        folder = random_init_folder(base, output_dir.resolve().parent / ".t2s_model_cache", "bfloat16")
        log.warning("--base-model %s is a config file: merging into a RANDOM-INIT model at %s", base, folder)
        return str(materialize_random_init(base, folder, tokenizer=find_tokenizer_dir(base, tokenizer),
                                           dtype="bfloat16"))
    if (base.startswith((".", "/")) or Path(base).suffix == ".json") and not Path(base).exists():
        raise T2SError(f"base model {base} not found; pass --base-model")
    return base


def merge(base_model: str | None, adapter_path: str, output_dir: str, dtype: str = "bfloat16",
          tokenizer: str | None = None) -> Path:
    """Write base + adapter as one standalone model folder; returns it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from t2s_fast.adapters import load_adapter_checked, read_adapter_config

    dtype = normalize_dtype(dtype)
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise T2SError(f"{out} already exists and is not empty; choose another --output-dir or remove it")
    acfg = read_adapter_config(adapter_path)
    base = _resolve_base(base_model, acfg, out, tokenizer)
    log.info("merging %s into %s (%s)", adapter_path, base, dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise T2SError(f"cannot load base model {base} ({exc})") from None
    model = load_adapter_checked(model, adapter_path, is_trainable=False, base_name=base)
    merged = model.merge_and_unload()
    tok_src = tokenizer or (adapter_path if (Path(adapter_path) / "tokenizer_config.json").is_file() else base)
    tok = AutoTokenizer.from_pretrained(tok_src)

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    if out.exists():
        out.rmdir()  # empty (checked above)
    tmp.rename(out)
    return out
