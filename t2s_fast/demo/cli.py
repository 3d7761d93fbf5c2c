"""`t2s-fast demo`: flags -> DemoConfig -> run_demo (flags from DemoConfig's fields, `t2s_fast.cli_options`)."""

from __future__ import annotations

import click

from t2s_fast.cli_options import options_from
from t2s_fast.demo.demo import DemoConfig


@click.command("demo", context_settings={"show_default": True})
@options_from(DemoConfig)
def demo_command(cfg: DemoConfig):
    """The whole pipeline on an embedded default, on a laptop CPU: build a small database and questions,
    score the untrained model, fine-tune a LoRA adapter, score it against the base, write the report."""
    import logging

    from rich.console import Console

    from t2s_fast.demo.demo import format_summary, run_demo

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = run_demo(cfg)
    console = Console()
    console.rule("[bold green]t2s-fast demo: done")
    console.print(format_summary(summary), highlight=False)
