"""Typed config dataclasses and the files that fill them: one field helper, one reader, one type check.

Every command's settings are a dataclass whose fields carry their help text (and, where needed, how the flag is
spelled) in ``field.metadata``; `t2s_fast/cli_options.py` turns them into click options, and ``load_config``
reads the same fields from a JSON or YAML file (``--config FILE`` of every command, the sweep file). Nothing
here knows about click.

Field metadata read by the CLI and the loader:
- ``help``: the flag's help text (required in spirit: every field has one);
- ``choices``: the allowed values;
- ``flags``: the flag names when not ``--field-name`` (e.g. ``("--adapter",)``, ``("--force", "--overwrite")``);

A config file's key is always the flag's name, with '_' for '-' (``--spider-dir`` -> ``spider_dir``, ``--adapter``
-> ``adapter``); a field with no flag (``cli: "file"``, a positional argument) is keyed by its name. One rule for
every command's ``--config`` and for the settings nested in sweep and ablation files; an unknown key is refused
with the nearest known one.
- ``metavar``: the value's placeholder in --help;
- ``required``: must be given (on the command line or in the file); fields without a default are required too;
- ``sep``: a sequence field given as ONE flag value split on this separator (``--target-modules a,b``);
  other sequence fields are repeatable flags (``--db a --db b``);
- ``argument``: a positional argument instead of an option; ``unprocessed``: its words are passed on as they are;
- ``cli``: ``"file"`` = only in a config file (no flag), ``False`` = neither (set by the program).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

from t2s_fast.errors import T2SError

COMMENT_KEY = "_comment"  # free text a config file may carry; ignored


def setting(default: Any = dataclasses.MISSING, help: str = "", **meta) -> Any:  # noqa: A002 - the field's help text
    """A dataclass field with its help text (and other metadata, see above); list and dict defaults are copied."""
    metadata = {"help": help, **meta}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def is_required(f: dataclasses.Field) -> bool:
    no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    return bool(f.metadata.get("required")) or no_default


def field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def settable_fields(cls) -> list[dataclasses.Field]:
    """The fields a user sets (by flag or file): all but those marked ``cli=False``."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True) is not False]


def flag_names(f: dataclasses.Field) -> list[str]:
    """The field's flags: ``metadata["flags"]``, else ``--field-name``."""
    return list(f.metadata.get("flags") or ["--" + f.name.replace("_", "-")])


def file_keys(f: dataclasses.Field) -> list[str]:
    """The keys a config file gives this field by: its flags' names with '_' for '-' (a field with no flag: its
    name)."""
    if f.metadata.get("cli", True) is not True or f.metadata.get("argument"):
        return [f.name]
    return [flag[2:].replace("-", "_") for flag in flag_names(f)]


def keyed_fields(*classes) -> dict[str, dataclasses.Field]:
    """{file key: field} over the settable fields of ``classes``."""
    return {key: f for cls in classes for f in settable_fields(cls) for key in file_keys(f)}


def unknown_key(where: str, key: str, known: dict[str, dataclasses.Field]) -> T2SError:
    """The error for a key no field answers to, with the nearest known key (a field's own name, where it differs
    from its flag's, points to the flag's)."""
    by_name = {f.name: k for k, f in known.items()}
    close = [by_name[key]] if key in by_name else difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return T2SError(f"{where}: unknown key {key!r}{hint}; keys are the flags' names with '_' for '-': "
                    f"{', '.join(sorted(known))}")


def to_field_names(data: dict, *classes, where: str, keep: tuple[str, ...] = ()) -> dict:
    """``data`` (a file's settings, keyed by the flags' names) keyed by the classes' field names; ``keep``: keys
    of the file's own passed through as they are. Unknown keys are a T2SError naming ``where``."""
    known = keyed_fields(*classes)
    out = {}
    for key, value in data.items():
        if key in keep:
            out[key] = value
        elif key in known:
            out[known[key].name] = value
        else:
            raise unknown_key(where, key, known)
    return out


def field_hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def without_none(hint: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else Any), len(args) < len(typing.get_args(hint))
    return hint, False


def is_sequence(hint: Any) -> bool:
    base, _ = without_none(hint)
    return base in (list, tuple) or typing.get_origin(base) in (list, tuple)


def item_type(hint: Any) -> Any:
    """The element type of ``tuple[T, ...]`` / ``list[T]`` (Any when not said)."""
    args = [a for a in typing.get_args(without_none(hint)[0]) if a is not Ellipsis]
    return args[0] if args else Any


class _Mismatch(Exception):
    pass


_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path (string)"}


def _scalar(value: Any, hint: Any) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint in (int, float):
        ok = isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
        value = float(value) if ok and hint is float else value
    elif hint in (str, Path):
        ok = isinstance(value, str) or (hint is Path and isinstance(value, Path))
        value = Path(value) if ok and hint is Path else value
    else:
        return value
    if not ok:
        raise _Mismatch(_EXPECTED[hint])
    return value


def _from_text(text: str, kind: Any) -> Any:
    """One item of a separated flag value: an int or float item type parses it (a bad one is left to _scalar)."""
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            return text
    return text


def check_value(value: Any, hint: Any, sep: str | None = None) -> Any:
    """``value`` as ``hint`` wants it (ints accepted for floats, lists for tuples); _Mismatch otherwise."""
    base, optional = without_none(hint)
    if value is None:
        if optional or base is Any:
            return None
        raise _Mismatch(_EXPECTED.get(base, "a value") + ", not null")
    origin = typing.get_origin(base) or base
    if origin in (list, tuple):
        if sep and isinstance(value, str):  # a flag's "a,b": numbers as numbers when the items are numbers
            value = [_from_text(v.strip(), item_type(base)) for v in value.split(sep) if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise _Mismatch("a list")
        try:
            items = [_scalar(v, item_type(base)) for v in value]
        except _Mismatch as exc:
            raise _Mismatch(f"a list, each item {exc}") from None
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if isinstance(value, dict) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return value  # a list: the flag's NAME=VALUE form, parsed by the config itself
        raise _Mismatch("an object")
    return _scalar(value, base)


def read_config_file(path: str | Path) -> dict:
    """A JSON file, or YAML (.yaml/.yml, with PyYAML), holding one object; its ``_comment`` key dropped."""
    from t2s_fast.jsonl import read_json

    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise T2SError(f"--config {path}: YAML needs PyYAML (pip install pyyaml); or write the file as JSON") \
                from None
        if not path.is_file():
            raise T2SError(f"--config {path}: file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise T2SError(f"--config {path}{_yaml_error(exc)}") from None
    else:
        data = read_json(path)
    if not isinstance(data, dict):
        raise T2SError(f"--config {path}: expected an object of settings (key: value), got {type(data).__name__}")
    data.pop(COMMENT_KEY, None)
    return data


def _nested(value: Any, section: tuple, where: str) -> Any:
    """A section of another command's settings (a dict, or a list of dicts), keyed by field names."""
    cls, keep = section
    if isinstance(value, dict):
        return to_field_names(value, cls, where=where, keep=keep)
    if isinstance(value, list):
        return [_nested(v, section, f"{where}[{i}]") if isinstance(v, dict) else v for i, v in enumerate(value)]
    return value


def _yaml_error(exc) -> str:
    """PyYAML's several-line report as one line: ":LINE: malformed YAML (the problem at column C)"."""
    mark = getattr(exc, "problem_mark", None)
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    if mark is None:
        return f": malformed YAML ({problem})"
    return f":{mark.line + 1}: malformed YAML ({problem} at column {mark.column + 1})"


def load_config(path: str | Path, *classes) -> dict:
    """The settings of ``path`` for the fields of ``classes`` ({field name: value}): keys are the flags' names;
    unknown keys and values of the wrong type are a T2SError naming the file and the key. A class's
    ``FILE_SECTIONS`` ({field: (config class, own keys)}) names the fields that hold another command's settings
    (an ablation's eval settings): their keys are that command's flags' names, by the same rule."""
    return check_settings(read_config_file(path), f"--config {path}", *classes)


def check_settings(data: dict, where: str, *classes) -> dict:
    """``data`` (one object of a config file, or a section of one: `t2s-fast run`'s stages) checked against the
    fields of ``classes`` by the rules of ``load_config``; an error starts with ``where`` and names the key."""
    known = keyed_fields(*classes)
    out = {}
    for key, value in data.items():
        if key not in known:
            raise unknown_key(where, key, known)
        f = known[key]
        hint = next(field_hints(cls)[f.name] for cls in classes if f in dataclasses.fields(cls))
        try:
            out[f.name] = check_value(value, hint, f.metadata.get("sep"))
        except _Mismatch as exc:
            raise T2SError(f"{where}: key {key!r}: expected {exc}, got {value!r}") from None
        if f.metadata.get("choices") and out[f.name] not in f.metadata["choices"]:
            raise T2SError(f"{where}: key {key!r}: {value!r} is not one of {', '.join(f.metadata['choices'])}")
        sections = {name: s for cls in classes for name, s in getattr(cls, "FILE_SECTIONS", {}).items()}
        if f.name in sections:
            out[f.name] = _nested(out[f.name], sections[f.name], f"{where}: {key}")
    return out
