"""`t2s-fast bench`: train, generate, score, max-context, profile. Flags come from the config dataclasses'
fields (`foo_bar` -> `--foo-bar`, help from the field metadata); each command calls one plain function."""

from __future__ import annotations

import dataclasses
import logging
import sys
import typing

import click

from t2s_fast.benchmarks.generate_bench import BenchGenerateConfig
from t2s_fast.benchmarks.score_bench import BenchScoreConfig
from t2s_fast.benchmarks.train_bench import BenchTrainConfig


def _options(cls, rename: dict[str, str] | None = None, required: tuple[str, ...] = ()):
    """One click option per dataclass field; tuples become repeatable options."""
    hints = typing.get_type_hints(cls)
    rename = rename or {}

    def deco(fn):
        for f in reversed(dataclasses.fields(cls)):
            flag = "--" + rename.get(f.name, f.name).replace("_", "-")
            help_ = f.metadata.get("help", "")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            t = hints[f.name]
            args = [a for a in typing.get_args(t) if a is not type(None)]
            base = args[0] if args and typing.get_origin(t) is not tuple else t
            if base is bool:
                fn = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=default, help=help_)(fn)
            elif typing.get_origin(t) is tuple:
                item = typing.get_args(t)[0]
                fn = click.option(flag, f.name, multiple=True, type=item, default=default or None, help=help_)(fn)
            else:
                fn = click.option(flag, f.name, type=base if base in (int, float, str) else str,
                                  default=None if f.name in required else default, required=f.name in required,
                                  help=help_)(fn)
        return fn

    return deco


def _build(cls, kwargs):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in kwargs.items() if k in names})


def _logging():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _fmt(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


@click.group("bench", context_settings={"show_default": True})
def bench_group():
    """Throughput, memory and cost benchmarks; results go to bench/results/<date>-<device>-<what>.json."""


@bench_group.command("train", context_settings={"show_default": True})
@_options(BenchTrainConfig, rename={"variants": "variant"}, required=("model_name", "data"))
def train_cmd(**kwargs):
    """Trained tokens/s, steps/s, MFU, peak memory and projected stage 1/2 cost, per backend, each in a
    fresh `t2s-fast train` process on identical batches."""
    from rich.console import Console
    from rich.table import Table

    from t2s_fast.benchmarks.train_bench import bench_train

    _logging()
    result = bench_train(_build(BenchTrainConfig, kwargs))
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
                  _fmt(r["mfu_4n"] and 100 * r["mfu_4n"], ".1f") + "%", _fmt(r["mfu_4n_plus_attention"] and 100 * r["mfu_4n_plus_attention"], ".1f") + "%",
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
@_options(BenchGenerateConfig, rename={"adapters": "adapter"}, required=("model_name",))
def generate_cmd(**kwargs):
    """Generated tokens/s and wall time for N Spider dev prompts x K adapters, per available backend."""
    from t2s_fast.benchmarks.generate_bench import bench_generate

    _logging()
    result = bench_generate(_build(BenchGenerateConfig, kwargs))
    for r in result["rows"]:
        click.echo(f"{r['backend']}: {r['status']} {_fmt(r['generated_tokens_per_s'])} generated tok/s, "
                   f"{_fmt(r['wall_s'], '.1f')} s", err=True)
    click.echo(result["path"])


@bench_group.command("score", context_settings={"show_default": True})
@_options(BenchScoreConfig)
def score_cmd(**kwargs):
    """Scoring throughput (Spider dev pairs/s) with 1 and 2 workers."""
    from t2s_fast.benchmarks.score_bench import bench_score

    result = bench_score(_build(BenchScoreConfig, kwargs))
    for r in result["rows"]:
        click.echo(f"workers={r['workers']}: {r['pairs']} pairs in {r['wall_s_best']:.2f} s = "
                   f"{r['pairs_per_s']:.0f} pairs/s", err=True)
    click.echo(result["path"])


@bench_group.command("max-context", context_settings={"show_default": True})
@click.option("--model-name", required=True, help="Model folder or config.json (random-init of that shape).")
@click.option("--tokenizer", default=None, help="Tokenizer folder (default: the model's).")
@click.option("--backend", "backends", default="unsloth,hf", help="Comma list of backends to search.")
@click.option("--start", default=16384, help="First length tried; doubled until out of memory.")
@click.option("--limit", default=0, help="Largest length tried (0 = the model's max_position_embeddings).")
@click.option("--resolution", default=4096, help="Bisection stops when the bracket is this narrow.")
@click.option("--probe-steps", default=2, help="Optimizer steps per probe.")
@click.option("--gradient-checkpointing", default="frugal",
              help="frugal = each backend's least-memory setting (unsloth: offloaded, hf: plain), or off|plain|unsloth|auto.")
@click.option("--out-dir", default="bench/results", help="Where the result JSON goes.")
@click.option("--work-dir", default=None, help="Probe folders and logs (default: a temp folder).")
@click.option("--model-cache", default=None, help="T2S_MODEL_CACHE for a config.json model.")
@click.option("--timeout-s", default=900.0, help="Kill a probe after this many seconds (counted as a failure).")
@click.option("--tag", default=None, help="Suffix of the result file name.")
def max_context_cmd(model_name, tokenizer, backends, start, limit, resolution, probe_steps, gradient_checkpointing,
                    out_dir, work_dir, model_cache, timeout_s, tag):
    """Largest --max-seq-length each backend trains at batch size 1 (doubling, then bisecting; each probe a
    fresh `t2s-fast train` process; only out-of-memory counts as not fitting)."""
    from t2s_fast.benchmarks.max_context import run_max_context

    _logging()
    result = run_max_context(model_name=model_name, tokenizer=tokenizer, backends=backends, start=start, limit=limit,
                             resolution=resolution, probe_steps=probe_steps,
                             gradient_checkpointing=gradient_checkpointing, out_dir=out_dir, work_dir=work_dir,
                             model_cache=model_cache, timeout_s=timeout_s, tag=tag)
    for r in result["rows"]:
        click.echo(f"{r['backend']}: max --max-seq-length {'>= ' if r['at_limit'] else ''}{r['max_seq_length']} "
                   f"(first out of memory: {r['first_oom']}; {len(r['probes'])} probes)", err=True)
    click.echo(result["path"])


@bench_group.command("profile", context_settings={"show_default": True, "ignore_unknown_options": True})
@click.option("--label", required=True, help="Name of this setting in bench/NOTES.md.")
@click.option("--warmup-steps", default=2, help="Unprofiled optimizer steps first (at least 1).")
@click.option("--out-dir", default="bench/results", help="Where the result JSON goes.")
@click.argument("train_args", nargs=-1, type=click.UNPROCESSED)
def profile_cmd(label, warmup_steps, out_dir, train_args):
    """Profile one optimizer step of `t2s-fast train TRAIN_ARGS` (give them after --) and bucket its time:
    matmul, attention, quantization, elementwise, copies, other, and GPU idle (host overhead)."""
    from t2s_fast.benchmarks import results
    from t2s_fast.benchmarks.profile_step import profile_training

    _logging()
    if warmup_steps < 1:
        raise click.BadParameter("must be at least 1", param_hint="--warmup-steps")
    row = profile_training(list(train_args), warmup_steps=warmup_steps, label=label)
    result = results.make_result("profile", settings={"label": label, "warmup_steps": warmup_steps,
                                                       "train_args": list(train_args)}, rows=[row])
    path = results.write_result(result, out_dir, f"{label}")
    b = row["buckets_s"]
    click.echo(f"{label}: step {row['step_time_s']:.3f} s, GPU busy {row['gpu_busy_pct']}%: "
               + ", ".join(f"{k} {v:.3f}s" for k, v in b.items()) + f", idle {row['idle_s']:.3f}s", err=True)
    click.echo(str(path))
