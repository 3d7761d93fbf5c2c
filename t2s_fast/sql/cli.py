"""`t2s-fast score`: execution accuracy of a predictions JSONL (a thin layer over ``scorer.score_file``)."""

from __future__ import annotations

import json

import click

from t2s_fast.cli_options import options_from
from t2s_fast.sql.scorer import ScoreConfig, ScoreFileConfig, score_file


def render_summary(summary: dict) -> None:
    """EX overall and by hardness as a rich table."""
    from rich.console import Console
    from rich.table import Table

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    table = Table(title="Execution accuracy (EX)")
    table.add_column("hardness")
    table.add_column("n", justify="right")
    table.add_column("EX %", justify="right")
    for level, row in summary["by_hardness"].items():
        if row["n"]:
            table.add_row(level, str(row["n"]), pct(row["ex"]))
    table.add_row("all", str(summary["n"]), pct(summary["ex"]), style="bold")
    console = Console()
    console.print(table)
    if summary["errors"]:
        console.print("errors: " + ", ".join(f"{k} {v}" for k, v in summary["errors"].items()))
    if summary["excluded_no_database"]:
        console.print(f"[yellow]{summary['excluded_no_database']} line(s) left out of EX: their database is missing[/]")
    if summary.get("excluded_gold_error"):
        console.print(f"[yellow]{summary['excluded_gold_error']} line(s) left out of EX: their gold query failed "
                      "(see error in the scored lines)[/]")


@click.command("score", context_settings={"show_default": True})
@options_from(ScoreFileConfig, ScoreConfig)
def score_command(files: ScoreFileConfig, cfg: ScoreConfig):
    """Score predicted SQL by execution accuracy against the gold SQL."""
    out_path = files.out
    if out_path and not out_path.parent.exists():
        out_path.parent.mkdir(parents=True)
        click.echo(f"created folder {out_path.parent} for --out", err=True)
    summary = score_file(files.pred, out_path, cfg, progress=not files.json)
    if files.json:
        click.echo(json.dumps(summary))
    else:
        render_summary(summary)
        if out_path:
            click.echo(f"scored lines: {out_path}")
