"""Click commands for `t2s-fast train`, `infer` and `merge`: flags -> typed config -> one plain function.

Flags come from the config dataclasses' fields (`t2s_fast.cli_options`: name `foo_bar` -> `--foo-bar`, help from
the field metadata), so the flags, the defaults and run.json's `config` always agree; `--config FILE` takes the
same fields from a JSON or YAML file.

Batch flags: --per-device-train-batch-size x --gradient-accumulation-steps (given or default, runbook: 2 x 16)
define the global batch in examples; the automatic setup then chooses how to split it on the GPU from its free
memory (with packing, the examples become about as many tokens' worth of packed rows). --no-auto-setup keeps
both flags exactly as given.
"""

from __future__ import annotations

import logging
import sys

import click

from t2s_fast.cli_options import options_from
from t2s_fast.infer import InferConfig
from t2s_fast.merge import MergeConfig
from t2s_fast.train.config import TrainConfig


def _setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


@click.command("train", context_settings={"show_default": True})
@options_from(TrainConfig)
def train_command(cfg: TrainConfig):
    """QLoRA fine-tuning (Unsloth on a GPU, transformers+PEFT otherwise). Stage 2: --adapter-path.

    Packed batches and the automatic setup by default; --no-packing and --no-auto-setup opt out."""
    from t2s_fast import distributed
    from t2s_fast.train.trainer import train

    _setup_logging()
    info = train(cfg)
    if distributed.is_main():
        click.echo(f"{info['stop_reason']}: step {info['global_step']}, {info['tokens_trained']:,} tokens, "
                   f"{info['trained_tokens_per_s'] or 0:,.0f} tok/s, ${info['cost_usd']:.4f}; "
                   f"adapter: {info['adapter_dir']}", err=True)
    if info["stop_reason"] == "interrupted":
        # a checkpoint and the adapter were saved; --resume continues. 128 + the signal: 130 for Ctrl-C (SIGINT),
        # 143 for SIGTERM, as a shell reports a process the signal ended
        sys.exit(interrupted_exit_code(info.get("stop_signal")))


def interrupted_exit_code(signal_name: str | None) -> int:
    """128 + the signal's number (SIGINT 130, SIGTERM 143); SIGTERM's when the record names none."""
    import signal

    try:
        return 128 + signal.Signals[signal_name].value
    except KeyError:
        return 128 + signal.SIGTERM.value


@click.command("infer", context_settings={"show_default": True})
@options_from(InferConfig)
def infer_command(cfg: InferConfig):
    """Answer one question against a schema; prints only the SQL.

    Greedy decoding; with --db on SQLite a greedy SQL that fails to execute is repaired by default (--repair auto:
    8 samples at 0.8, the majority result among those that execute). --repair none prints the greedy SQL alone.
    """
    from t2s_fast.infer import answer

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sql, repair_note = answer(cfg)
    if repair_note:
        click.echo(repair_note, err=True)
    click.echo(sql)


@click.command("merge", context_settings={"show_default": True})
@options_from(MergeConfig)
def merge_command(cfg: MergeConfig):
    """Fold a LoRA adapter into its base model and save a standalone model."""
    from t2s_fast.merge import merge

    _setup_logging()
    out = merge(cfg.base_model, cfg.adapter_path, cfg.output_dir, cfg.dtype, tokenizer=cfg.tokenizer)
    click.echo(str(out))
