"""`t2s-fast prepare`: flags -> PrepareConfig -> one plain function."""

from __future__ import annotations

import click

from t2s_fast.cli_options import options_from
from t2s_fast.data.prepare import PrepareConfig


@click.command("prepare", context_settings={"show_default": True})
@options_from(PrepareConfig)
def prepare_command(cfg: PrepareConfig):
    """Spider 1.0/2.0 files on disk -> chat-format JSONL for stage 1 and 2, plus prepare_stats.json."""
    from rich.console import Console
    from rich.table import Table

    from t2s_fast.data.prepare import prepare

    console = Console(stderr=True)
    stats = prepare(cfg, log=lambda msg: console.print(f"[dim]prepare[/dim] {msg}"))
    table = Table(title=f"t2s-fast prepare -> {cfg.out_dir}")
    for col in ("file", "examples", "databases", "sources", "tokens p50/p95/max"):
        table.add_column(col)
    for name, fs in stats["files"].items():
        tok = fs["tokens"]
        table.add_row(
            name,
            str(fs["examples"]),
            str(fs["databases"]),
            ", ".join(f"{k} {v}" for k, v in fs["by_source"].items()),
            f"{tok.get('p50', '-')}/{tok.get('p95', '-')}/{tok.get('max', '-')}",
        )
    console.print(table)
    console.print(
        f"dropped {len(stats['dropped'])}, shortened {len(stats['shortened'])} "
        f"(reasons in {cfg.out_dir / 'prepare_stats.json'}); {stats['wall_seconds']:.1f}s"
    )
