"""Click commands for `t2s-fast train`, `infer` and `merge`: flags -> typed config -> one plain function.

Flags are generated from the config dataclasses' fields (name `foo_bar` -> `--foo-bar`, help from the field
metadata), so the flags, the defaults and run.json's `config` always agree.

Batch flags: --per-device-train-batch-size x --gradient-accumulation-steps (given or default, runbook: 2 x 16)
define the global batch in examples; the automatic setup then chooses how to split it on the GPU from its free
memory (with packing, the examples become about as many tokens' worth of packed rows). --no-auto-setup keeps
both flags exactly as given.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import typing

import click

from t2s_fast.errors import T2SError
from t2s_fast.infer import InferConfig
from t2s_fast.merge import MergeConfig
from t2s_fast.train.config import TrainConfig

REQUIRED = {TrainConfig: ("train_file", "output_dir"), InferConfig: ("model_path", "question"),
            MergeConfig: ("adapter_path", "output_dir")}


def _click_type(f: dataclasses.Field, hints: dict):
    choices = f.metadata.get("choices")
    if choices:
        return click.Choice(choices)
    t = hints[f.name]
    args = [a for a in typing.get_args(t) if a is not type(None)]
    base = args[0] if args and typing.get_origin(t) in (typing.Union, getattr(__import__("types"), "UnionType", None)) else t
    if base in (int, float, str):
        return base
    return str  # tuples: comma-separated


def options_from(cls):
    """Decorator adding one click option per dataclass field."""
    hints = typing.get_type_hints(cls)

    def deco(fn):
        for f in reversed(dataclasses.fields(cls)):
            flag = "--" + f.name.replace("_", "-")
            help_ = f.metadata.get("help", "")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            t = hints[f.name]
            is_bool = t is bool or (typing.get_args(t) and bool in typing.get_args(t))
            required = f.name in REQUIRED.get(cls, ())
            if is_bool:
                fn = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=default, help=help_,
                                  show_default=True)(fn)
            else:
                if isinstance(default, tuple):
                    default = ",".join(default)
                fn = click.option(flag, f.name, type=_click_type(f, hints), default=None if required else default,
                                  required=required, help=help_, show_default=not required)(fn)
        return fn

    return deco


def _setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def _build(cls, kwargs):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in kwargs.items() if k in names})


@click.command("train", context_settings={"show_default": True})
@options_from(TrainConfig)
def train_command(**kwargs):
    """QLoRA fine-tuning (Unsloth on a GPU, transformers+PEFT otherwise). Stage 2: --adapter-path.

    Packed batches and the automatic setup by default; --no-packing and --no-auto-setup opt out."""
    from t2s_fast.train.trainer import train

    _setup_logging()
    cfg = _build(TrainConfig, kwargs)
    info = train(cfg)
    from t2s_fast import distributed

    if distributed.is_main():
        click.echo(f"{info['stop_reason']}: step {info['global_step']}, {info['tokens_trained']:,} tokens, "
                   f"{info['trained_tokens_per_s'] or 0:,.0f} tok/s, ${info['cost_usd']:.4f}; "
                   f"adapter: {info['adapter_dir']}", err=True)
    if info["stop_reason"] == "interrupted":
        sys.exit(143)  # 128 + SIGTERM: a checkpoint and the adapter were saved; --resume continues


@click.command("infer", context_settings={"show_default": True})
@options_from(InferConfig)
def infer_command(**kwargs):
    """Answer one question against a schema; prints only the SQL."""
    from t2s_fast.infer import infer

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    click.echo(infer(_build(InferConfig, kwargs)))


@click.command("merge", context_settings={"show_default": True})
@options_from(MergeConfig)
def merge_command(**kwargs):
    """Fold a LoRA adapter into its base model and save a standalone model."""
    from t2s_fast.merge import merge

    _setup_logging()
    cfg = _build(MergeConfig, kwargs)
    out = merge(cfg.base_model, cfg.adapter_path, cfg.output_dir, cfg.dtype, tokenizer=cfg.tokenizer)
    click.echo(str(out))


__all__ = ["train_command", "infer_command", "merge_command", "T2SError"]
