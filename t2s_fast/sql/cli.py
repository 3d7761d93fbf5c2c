"""`t2s-fast score`: execution accuracy of a predictions JSONL (a thin layer over ``scorer.score_file``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from t2s_fast.sql.scorer import ScoreConfig, config_help, score_file

_HELP = config_help()


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


@click.command("score")
@click.option("--pred", "pred_path", required=True, type=click.Path(path_type=Path), help="JSONL with db_id, gold and pred per line.")
@click.option("--spider-dir", required=True, type=click.Path(path_type=Path), help=_HELP["db_root"])
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=None, help="Write the scored lines here (JSONL); a missing folder is created (and said so).")
@click.option("--workers", type=int, default=2, help=_HELP["workers"])
@click.option("--timeout", "timeout_s", type=float, default=30.0, help=_HELP["timeout_s"])
@click.option("--keep-distinct", is_flag=True, help=_HELP["keep_distinct"])
@click.option("--pred-dialect", default="sqlite", help=_HELP["pred_dialect"])
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def score_command(pred_path, spider_dir, out_path, workers, timeout_s, keep_distinct, pred_dialect, as_json):
    """Score predicted SQL by execution accuracy against the gold SQL."""
    cfg = ScoreConfig(
        db_root=spider_dir, workers=workers, timeout_s=timeout_s, keep_distinct=keep_distinct, pred_dialect=pred_dialect
    )
    if out_path and not out_path.parent.exists():
        out_path.parent.mkdir(parents=True)
        click.echo(f"created folder {out_path.parent} for --out", err=True)
    summary = score_file(pred_path, out_path, cfg, progress=not as_json)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        render_summary(summary)
        if out_path:
            click.echo(f"scored lines: {out_path}")
