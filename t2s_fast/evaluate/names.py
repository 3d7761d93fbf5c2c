"""How adapters are named in an evaluation: `--adapter NAME=PATH` specs, and the names reports show."""

from __future__ import annotations

from t2s_fast.errors import T2SError
from t2s_fast.generate.base import BASE_ADAPTER


def parse_adapter_specs(specs: list[str] | tuple[str, ...] | dict[str, str]) -> dict[str, str]:
    """["NAME=PATH", ...] -> {NAME: PATH}, in the order given; names must be unique."""
    if isinstance(specs, dict):
        return dict(specs)
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise T2SError(f"--adapter {spec!r}: expected NAME=PATH (e.g. --adapter stage1=runs/stage1/adapter)")
        if name == "__base__" or "|" in name:
            raise T2SError(f"--adapter {spec!r}: the name {name!r} is reserved or contains '|'; pick another")
        if name in out:
            raise T2SError(f"--adapter {spec!r}: the name {name!r} is given twice")
        out[name] = path
    return out


def display_name(adapter: str) -> str:
    return "base model" if adapter == BASE_ADAPTER else adapter
