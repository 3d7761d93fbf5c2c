"""The one mechanism that gives every `t2s-fast` command its flags: config dataclasses -> click options.

``@options_from(SomeConfig, ...)`` (in the spirit of TRL's HfArgumentParser and litgpt's CLI) adds one option per
settable field of each dataclass, spelled and explained by the field's metadata (help, choices, flag names,
repeatable or comma-separated values, ``--x/--no-x`` for booleans, positional arguments; see
`t2s_fast/configs.py`), and ``--config FILE``: a JSON or YAML file whose keys are the flags' names. The command
function receives one instance per dataclass, built from the dataclass defaults, overridden by the file,
overridden by the flags given on the command line. A missing required setting, an unknown key or a value of the
wrong type in the file exits with code 2 and names it.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from t2s_fast.configs import (
    _Mismatch,
    check_value,
    field_default,
    field_hints,
    flag_names,
    is_required,
    is_sequence,
    item_type,
    load_config,
    settable_fields,
    without_none,
)
from t2s_fast.errors import T2SError

GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)
CONFIG_HELP = ("JSON (or YAML) file of these settings: keys are the flags' names with '_' for '-' (--spider-dir: "
               "spider_dir); flags given on the command line override it.")


def _on_command_line(f: dataclasses.Field) -> bool:
    return f.metadata.get("cli", True) is True


def _flags(f: dataclasses.Field) -> list[str]:
    return flag_names(f)


def _click_type(f: dataclasses.Field, hint: Any):
    if f.metadata.get("choices"):
        return click.Choice(list(f.metadata["choices"]))
    base = item_type(hint) if is_sequence(hint) and not f.metadata.get("sep") else without_none(hint)[0]
    if base is Path:
        return click.Path(path_type=Path)
    return base if base in (int, float, str) else str


def _repeatable(f: dataclasses.Field, hint: Any) -> bool:
    base, _ = without_none(hint)
    return (typing.get_origin(base) or base) in (list, tuple, dict) and not f.metadata.get("sep")


def _param(f: dataclasses.Field, hint: Any):
    """The click option (or argument) of one field."""
    meta = f.metadata
    if meta.get("argument"):
        return click.argument(f.name, nargs=-1 if is_sequence(hint) else 1, required=False,
                              type=click.UNPROCESSED if meta.get("unprocessed") else _click_type(f, hint))
    decls, help_, default = _flags(f), meta.get("help", ""), field_default(f)
    if without_none(hint)[0] is bool:
        decls[0] = f"{decls[0]}/--no-{decls[0][2:]}"
        return click.option(*decls, f.name, default=default, help=help_, show_default=default is not None)
    if _repeatable(f, hint):
        default = (tuple(default) or None) if default is not None else None
        help_ = help_ if "repeatable" in help_.lower() else f"{help_} Repeatable."
    elif meta.get("sep") and default is not None:
        default = meta["sep"].join(default)
    required = is_required(f)  # checked once the --config file is read: not click's required
    return click.option(*decls, f.name, type=_click_type(f, hint), default=None if required else default,
                        multiple=_repeatable(f, hint), metavar=meta.get("metavar"),
                        help=f"{help_} [required]" if required else help_, show_default=not required)


def _from_flag(f: dataclasses.Field, hint: Any, value: Any) -> Any:
    if isinstance(value, tuple) or f.metadata.get("sep"):  # repeated flag, or one comma-separated value
        try:
            return check_value(list(value) if isinstance(value, tuple) else value, hint, f.metadata.get("sep"))
        except _Mismatch as exc:
            raise T2SError(f"{_flags(f)[0]}: expected {exc}, got {value!r}") from None
    return value


def _missing(f: dataclasses.Field) -> str:
    what = f"argument '{f.name.upper()}'" if f.metadata.get("argument") else f"option '{_flags(f)[0]}'"
    return f"Missing {what} (give it on the command line or in --config)."


def build_configs(ctx: click.Context, classes, values: dict, config_file: str | None) -> list:
    """One instance per class: its defaults, then the --config file's values, then the flags given."""
    from_file = load_config(config_file, *classes) if config_file else {}
    configs = []
    for cls in classes:
        hints, kwargs = field_hints(cls), {}
        for f in settable_fields(cls):
            if _on_command_line(f) and ctx.get_parameter_source(f.name) in GIVEN:
                kwargs[f.name] = _from_flag(f, hints[f.name], values[f.name])
            elif f.name in from_file:
                kwargs[f.name] = from_file[f.name]
            elif is_required(f):
                raise click.UsageError(_missing(f), ctx)
        configs.append(cls(**kwargs))
    return configs


def options_from(*classes, config_required: bool = False, config_help: str = CONFIG_HELP):
    """Decorator: the flags of ``classes``' fields and ``--config FILE``; the command gets one config per class."""
    names = [f.name for cls in classes for f in settable_fields(cls)]
    assert len(names) == len(set(names)), f"two config classes share a field name: {names}"

    def deco(fn):
        @functools.wraps(fn)
        def command(config_file=None, **values):
            return fn(*build_configs(click.get_current_context(), classes, values, config_file))

        command = click.option("--config", "config_file", default=None, required=config_required, metavar="FILE",
                               help=config_help)(command)
        for cls in reversed(classes):
            hints = field_hints(cls)
            for f in reversed([f for f in settable_fields(cls) if _on_command_line(f)]):
                command = _param(f, hints[f.name])(command)
        return command

    return deco
