"""Click command for `t2s-fast rl`: flags -> RLConfig -> `train_rl`."""

from __future__ import annotations

import logging
import sys

import click

from t2s_fast.cli_options import options_from
from t2s_fast.rl.config import RLConfig


@click.command("rl", context_settings={"show_default": True})
@options_from(RLConfig)
def rl_command(cfg: RLConfig):
    """Stage 3: GRPO on an execution reward, continuing an SFT adapter.

    A filter pass keeps the training prompts the starting adapter answers right sometimes; GRPO then trains the
    adapter on them, rewarded by executing each completion (1 match, 0.1 executes, 0 otherwise). Checkpoints are
    evaluated with `t2s-fast eval --checkpoints OUTPUT_DIR` on held-out data."""
    from t2s_fast.rl.trainer import train_rl

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    info = train_rl(cfg)
    click.echo(f"{info['stop_reason']}: step {info['global_step']}, reward {info['first_reward']} -> "
               f"{info['final_reward']}, ${info['cost_usd']:.4f}; adapter: {info['adapter_dir']}", err=True)
    if info["stop_reason"] == "interrupted":
        sys.exit(143)  # a checkpoint and the adapter were saved; --resume continues
