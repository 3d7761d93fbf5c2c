"""A LoRA adapter folder, the one place that checks, reads, fingerprints and loads it.

A folder from `t2s-fast train` (``adapter/`` or a ``checkpoints/checkpoint-N/``) holds the PEFT adapter:
``adapter_config.json`` + ``adapter_model.safetensors`` (or ``.bin``). Training stage 2, `infer`, `merge`,
`eval` (both generation engines) and `eval --checkpoints` all come here; a bad folder is a T2SError (exit 2)
that names the folder, and with ``--adapter NAME=PATH`` the flag too.

Loading onto a base model refuses clearly when the two do not fit. PEFT's own failures are scattered: a shape
mismatch is a RuntimeError from `load_state_dict`, target modules missing from the base a ValueError, and
adapter weights that land nowhere only a `warnings.warn("Found missing adapter keys ...")`
(peft/peft_model.py, `PeftModel.from_pretrained`). All three become one T2SError here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path

from t2s_fast.errors import T2SError

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


# ---------------------------------------------------------------------------------------------- checking
def is_adapter_dir(path: str | Path) -> bool:
    """Whether ``path`` is an adapter folder (has an adapter_config.json), not a model."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def has_adapter_weights(path: str | Path) -> bool:
    return any((Path(path) / f).is_file() for f in ADAPTER_WEIGHTS)


def _parse_config(cfg_file: Path) -> dict:
    try:
        return json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise T2SError(f"{cfg_file}:{exc.lineno}: malformed adapter config ({exc.msg})") from None


def read_adapter_config(adapter_path: str | Path) -> dict:
    """The adapter's config, after checking the folder holds a config and weights (--adapter-path of training,
    --model-path of infer, merge's adapter)."""
    p = Path(adapter_path)
    if not p.exists():
        raise T2SError(f"{p}: adapter folder not found")
    if not is_adapter_dir(p):
        raise T2SError(f"{p}: not a LoRA adapter folder (no {ADAPTER_CONFIG}); pass the run's adapter/ folder")
    cfg = _parse_config(p / ADAPTER_CONFIG)
    if not has_adapter_weights(p):
        raise T2SError(f"{p}: adapter weights missing (no adapter_model.safetensors)")
    return cfg


def check_adapter_flag(name: str, path: str | Path) -> dict:
    """The config of ``--adapter NAME=PATH`` (eval and its engines), or the error that names the flag."""
    cfg_file = Path(path) / ADAPTER_CONFIG
    if not cfg_file.is_file():
        raise T2SError(f"--adapter {name}={path}: no {ADAPTER_CONFIG} there (expected a PEFT adapter folder)")
    return _parse_config(cfg_file)


def adapter_rank(name: str, path: str | Path) -> int:
    """The largest rank an adapter uses (its `r`, or a larger one from `rank_pattern`)."""
    cfg = check_adapter_flag(name, path)
    if "r" not in cfg:
        raise T2SError(f"{Path(path) / ADAPTER_CONFIG}: no 'r' (rank) field; is this a LoRA adapter?")
    return max([int(cfg["r"]), *(int(v) for v in (cfg.get("rank_pattern") or {}).values())])


# ---------------------------------------------------------------------------------------------- fingerprints
def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def weights_sha(path: str | Path) -> str:
    """The hash of the adapter's safetensors weights (two folders with the same one hold the same adapter)."""
    return file_sha(Path(path) / ADAPTER_WEIGHTS[0])


def adapter_fingerprint(path: str | Path) -> dict:
    """What identifies an adapter's behaviour: its config and its weights (not where it lives)."""
    folder = Path(path)
    files = sorted(p for p in folder.iterdir() if p.is_file() and (p.name == ADAPTER_CONFIG
                                                                   or p.name.startswith("adapter_model")))
    return {"path": str(folder), "files": {p.name: file_sha(p) for p in files}}


# ---------------------------------------------------------------------------------------------- loading
def load_adapter_checked(model, adapter_path: str | Path, *, is_trainable: bool, base_name: str | None = None,
                         adapter_name: str = "default"):
    """`PeftModel.from_pretrained(model, adapter_path, adapter_name=..., is_trainable=...)`, or a T2SError that
    says why the adapter does not fit this base model."""
    from peft import PeftModel

    cfg = read_adapter_config(adapter_path)
    recorded = cfg.get("base_model_name_or_path")
    if base_name and recorded and str(recorded) != str(base_name):
        # Not an error: a random-init base or a moved folder has another name. Shapes are checked below.
        log.warning("adapter %s was trained on %r; loading it onto %r", adapter_path, recorded, base_name)
    hint = (f"the adapter at {adapter_path} does not fit this base model"
            f"{f' ({base_name})' if base_name else ''}; it was trained on {recorded!r}. "
            "Pass the same --model-name / --base-model that stage 1 used")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            peft_model = PeftModel.from_pretrained(model, str(adapter_path), adapter_name=adapter_name,
                                                   is_trainable=is_trainable)
        except RuntimeError as exc:
            if "size mismatch" in str(exc) or "shape" in str(exc).lower():
                first = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc)[:300])
                raise T2SError(f"{hint} (weight shapes differ: {first})") from None
            raise
        except ValueError as exc:
            if "not found in the base model" in str(exc) or "Target modules" in str(exc):
                raise T2SError(f"{hint} ({exc})") from None
            raise
    for w in caught:
        if "missing adapter keys" in str(w.message):
            raise T2SError(f"{hint} (adapter weights match no layer of the base: {str(w.message)[:300]})")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return peft_model
