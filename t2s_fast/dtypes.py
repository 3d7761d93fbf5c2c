"""One dtype vocabulary for every command: bfloat16, float16, float32 (canonical, torch's names), with
bf16, fp16 and fp32 accepted as aliases. `--dtype` values go through normalize_dtype, once."""

from __future__ import annotations

from t2s_fast.errors import T2SError

CANONICAL = ("bfloat16", "float16", "float32")
ALIASES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
HELP = "bfloat16, float16 or float32 (bf16, fp16, fp32 accepted)"


def normalize_dtype(value: str | None, flag: str = "--dtype") -> str | None:
    """The canonical name of a dtype given either way; None stays None (the command's default)."""
    if value is None:
        return None
    name = str(value).strip().lower()
    name = ALIASES.get(name, name)
    if name not in CANONICAL:
        raise T2SError(f"{flag} {value!r}: choose {HELP}")
    return name
