"""`t2s-fast bench`: train, generate, score, max-context, profile. Flags come from the config dataclasses' fields
(`t2s_fast.cli_options`: `foo_bar` -> `--foo-bar`, help from the field metadata, `--config FILE` with the same
fields); each command calls one plain function."""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict

import click

from t2s_fast.benchmarks.generate_bench import BenchGenerateConfig
from t2s_fast.benchmarks.max_context import BenchMaxContextConfig
from t2s_fast.benchmarks.profile_step import BenchProfileConfig
from t2s_fast.benchmarks.score_bench import BenchScoreConfig
from t2s_fast.benchmarks.train_bench import BenchTrainConfig
from t2s_fast.cli_options import options_from


def _logging():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _fmt(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


@click.group("bench", context_settings={"show_default": True})
def bench_group():
    """Throughput, memory and cost benchmarks; results go to --out-dir (default runs/bench)."""


@bench_group.command("train", context_settings={"show_default": True})
@options_from(BenchTrainConfig)
def train_cmd(cfg: BenchTrainConfig):
    """Trained tokens/s, steps/s, MFU, peak memory and projected stage 1/2 cost, per backend, each in a
    fresh `t2s-fast train` process on identical batches."""
    from rich.console import Console
    from rich.table import Table

    from t2s_fast.benchmarks.train_bench import bench_train

    _logging()
    result = bench_train(cfg)
    peak = result.get("peak")
    t = Table(title=f"bench train ({result['device'].get('name')}, peak "
                    f"{peak['peak_tflops'] if peak else '-'} TFLOP/s bf16 measured)")
    for col in ("variant", "status", "tok/s", "steps/s", "MFU 4N", "MFU 4N+attn", "peak alloc GiB",
                "peak reserved GiB", "stage1 h / $", "stage2 h / $"):
        t.add_column(col)
    for r in result["rows"]:
        p = r.get("projected") or {}
        stage = lambda s: f"{p[s]['hours']:.2f} / {p[s]['usd']:.2f}" if p.get(s, {}).get("hours") is not None else "-"  # noqa: E731
        t.add_row(r["label"], r["status"], _fmt(r["trained_tokens_per_s"]), _fmt(r["optimizer_steps_per_s"], ".3f"),
                  _fmt(r["mfu_4n"] and 100 * r["mfu_4n"], ".1f") + "%",
                  _fmt(r["mfu_4n_plus_attention"] and 100 * r["mfu_4n_plus_attention"], ".1f") + "%",
                  _fmt(r["peak_memory_allocated_gib"], ".1f"), _fmt(r["peak_memory_reserved_gib"], ".1f"),
                  stage("stage1"), stage("stage2"))
    for q in result.get("ratios", []):
        t.add_row(f"{q['label']} / {q['vs']}", "ratio", _fmt(q["tokens_per_s_ratio"], ".2f") + "x", "", "", "",
                  _fmt(q["peak_allocated_ratio"], ".2f") + "x", _fmt(q["peak_reserved_ratio"], ".2f") + "x", "", "")
    console = Console(stderr=True, width=max(160, Console(stderr=True).width))
    console.print(t)
    console.print(f"FLOPs per trained token: 4N = {result['flops']['flops_per_token_4n']:.3e} "
                  f"({result['flops']['formula']}); attention adds {result['flops']['attention_flops_per_token']:.3e} "
                  f"({result['flops']['attention_formula']}, mean context {result['flops']['mean_attended_context']})")
    click.echo(result["path"])


@bench_group.command("generate", context_settings={"show_default": True})
@options_from(BenchGenerateConfig)
def generate_cmd(cfg: BenchGenerateConfig):
    """Generated tokens/s and wall time for N Spider dev prompts x K adapters, per available backend."""
    from t2s_fast.benchmarks.generate_bench import bench_generate

    _logging()
    result = bench_generate(cfg)
    for r in result["rows"]:
        click.echo(f"{r['backend']}: {r['status']} {_fmt(r['generated_tokens_per_s'])} generated tok/s, "
                   f"{_fmt(r['wall_s'], '.1f')} s", err=True)
    click.echo(result["path"])


@bench_group.command("score", context_settings={"show_default": True})
@options_from(BenchScoreConfig)
def score_cmd(cfg: BenchScoreConfig):
    """Scoring throughput (Spider dev pairs/s) with 1 and 2 workers."""
    from t2s_fast.benchmarks.score_bench import bench_score

    result = bench_score(cfg)
    for r in result["rows"]:
        click.echo(f"workers={r['workers']}: {r['pairs']} pairs in {r['wall_s_best']:.2f} s = "
                   f"{r['pairs_per_s']:.0f} pairs/s", err=True)
    click.echo(result["path"])


@bench_group.command("max-context", context_settings={"show_default": True})
@options_from(BenchMaxContextConfig)
def max_context_cmd(cfg: BenchMaxContextConfig):
    """Largest --max-seq-length each backend trains at batch size 1 (doubling, then bisecting; each probe a
    fresh `t2s-fast train` process; only out-of-memory counts as not fitting)."""
    from t2s_fast.benchmarks.max_context import run_max_context

    _logging()
    result = run_max_context(**asdict(cfg))
    for r in result["rows"]:
        click.echo(f"{r['backend']}: max --max-seq-length {'>= ' if r['at_limit'] else ''}{r['max_seq_length']} "
                   f"(first out of memory: {r['first_oom']}; {len(r['probes'])} probes)", err=True)
    click.echo(result["path"])


@bench_group.command("profile", context_settings={"show_default": True, "ignore_unknown_options": True})
@options_from(BenchProfileConfig)
def profile_cmd(cfg: BenchProfileConfig):
    """Profile one optimizer step of `t2s-fast train TRAIN_ARGS` (give them after --) and bucket its time:
    matmul, attention, quantization, elementwise, copies, other, and GPU idle (host overhead)."""
    from t2s_fast.benchmarks.profile_step import bench_profile

    _logging()
    row, path = bench_profile(cfg)
    b = row["buckets_s"]
    click.echo(f"{cfg.label}: step {row['step_time_s']:.3f} s, GPU busy {row['gpu_busy_pct']}%: "
               + ", ".join(f"{k} {v:.3f}s" for k, v in b.items()) + f", idle {row['idle_s']:.3f}s", err=True)
    click.echo(path)
