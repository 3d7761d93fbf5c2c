"""`t2s-fast demo`: flags -> DemoConfig -> run_demo. One flag per DemoConfig field, help from its metadata."""

from __future__ import annotations

import dataclasses

import click

from t2s_fast.demo.demo import DemoConfig


def _options(func):
    # Reversed so the flags are listed in field order.
    for f in reversed(dataclasses.fields(DemoConfig)):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        kind = {int: int, float: float}.get(type(default), str)
        func = click.option(flag, f.name, type=kind, default=default, show_default=default is not None,
                            help=f.metadata.get("help", ""))(func)
    return func


@click.command("demo")
@_options
def demo_command(**kwargs):
    """The whole pipeline on an embedded default, on a laptop CPU: build a small database and questions,
    score the untrained model, fine-tune a LoRA adapter, score it against the base, write the report."""
    import logging

    from rich.console import Console

    from t2s_fast.demo.demo import format_summary, run_demo

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = run_demo(DemoConfig(**kwargs))
    console = Console()
    console.rule("[bold green]t2s-fast demo: done")
    console.print(format_summary(summary), highlight=False)
