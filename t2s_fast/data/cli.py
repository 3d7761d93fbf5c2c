"""`t2s-fast prepare`: flags -> PrepareConfig -> prepare()."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from t2s_fast.data.prepare import PrepareConfig


def _help(name: str) -> str:
    return next(f.metadata["help"] for f in dataclasses.fields(PrepareConfig) if f.name == name)


_D = PrepareConfig.__dataclass_fields__


@click.command("prepare")
@click.option("--spider-dir", type=click.Path(path_type=Path), required=True, help=_help("spider_dir"))
@click.option("--spider2-dir", type=click.Path(path_type=Path), default=None, help=_help("spider2_dir"))
@click.option("--out-dir", type=click.Path(path_type=Path), required=True, help=_help("out_dir"))
@click.option("--valid-fraction", type=float, default=_D["valid_fraction"].default, show_default=True, help=_help("valid_fraction"))
@click.option("--seed", type=int, default=_D["seed"].default, show_default=True, help=_help("seed"))
@click.option("--sample-values", type=int, default=_D["sample_values"].default, show_default=True, help=_help("sample_values"))
@click.option("--max-seq-length", type=int, default=_D["max_seq_length"].default, show_default=True, help=_help("max_seq_length"))
@click.option("--tokenizer", default=_D["tokenizer"].default, show_default=True, help=_help("tokenizer"))
@click.option("--stage2-replay-ratio", type=float, default=_D["stage2_replay_ratio"].default, show_default=True, help=_help("stage2_replay_ratio"))
@click.option("--question-values", type=int, default=_D["question_values"].default, show_default=True, help=_help("question_values"))
def prepare_command(**kwargs):
    """Spider 1.0/2.0 files on disk -> chat-format JSONL for stage 1 and 2, plus prepare_stats.json."""
    from rich.console import Console
    from rich.table import Table

    from t2s_fast.data.prepare import prepare

    console = Console(stderr=True)
    cfg = PrepareConfig(**kwargs)
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


@click.command("prepare-repair")
@click.option("--scored", type=click.Path(path_type=Path), required=True,
              help="scored.jsonl of an eval run on a TRAINING-split file (eval --suite jsonl --questions FILE).")
@click.option("--questions", type=click.Path(path_type=Path), required=True,
              help="The prepared file that run evaluated (e.g. stage1_train.jsonl); never Spider dev.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Repair examples to write (JSONL).")
@click.option("--adapter", default=None, help="Which evaluated model's failures (needed when the run has several).")
@click.option("--spider-dir", type=click.Path(path_type=Path), default=None,
              help="Spider 1.0 folder: questions on its dev.json databases are refused (default: ../shared's copy).")
def prepare_repair_command(scored, questions, out, adapter, spider_dir):
    """Training examples for `eval --repair error-feedback`, from a model's real failures on training data."""
    from t2s_fast import paths
    from t2s_fast.evaluate.repair_examples import build_repair_examples
    from t2s_fast.jsonl import write_jsonl

    examples, counts = build_repair_examples(scored, questions, adapter=adapter,
                                             spider_dir=spider_dir or paths.SPIDER1_DIR)
    write_jsonl(out, examples)
    click.echo(f"{len(examples)} repair examples from {counts['failing']} failing of {counts['predictions']} "
               f"predictions -> {out}")
