"""Loading a LoRA adapter onto a base model, refusing clearly when the two do not fit.

Used by stage 2 of training (continue the same adapter), `infer` and `merge`. PEFT's own failures are
scattered: a shape mismatch is a RuntimeError from `load_state_dict`, target modules missing from the base
a ValueError, and adapter weights that land nowhere only a `warnings.warn("Found missing adapter keys ...")`
(peft/peft_model.py, `PeftModel.from_pretrained`). All three become one T2SError here.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

from t2s_fast.errors import T2SError

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def read_adapter_config(adapter_path: str | Path) -> dict:
    p = Path(adapter_path)
    if not p.exists():
        raise T2SError(f"{p}: adapter folder not found")
    cfg_file = p / ADAPTER_CONFIG
    if not cfg_file.is_file():
        raise T2SError(f"{p}: not a LoRA adapter folder (no {ADAPTER_CONFIG}); pass the run's adapter/ folder")
    try:
        cfg = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise T2SError(f"{cfg_file}:{exc.lineno}: malformed adapter config ({exc.msg})") from None
    if not any((p / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        raise T2SError(f"{p}: adapter weights missing (no adapter_model.safetensors)")
    return cfg


def load_adapter_checked(model, adapter_path: str | Path, *, is_trainable: bool, base_name: str | None = None):
    """`PeftModel.from_pretrained(model, adapter_path, is_trainable=...)`, or a T2SError that says why the
    adapter does not fit this base model."""
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
            peft_model = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=is_trainable)
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
