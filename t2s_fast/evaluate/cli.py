"""`t2s-fast eval` and `t2s-fast report`: flags -> EvalConfig -> harness.evaluate / report.report_runs."""

from __future__ import annotations

from dataclasses import fields

import click

from t2s_fast.evaluate.config import SUITES, EvalConfig

_HELP = {f.name: f.metadata.get("help", "") for f in fields(EvalConfig)}


@click.command("eval")
@click.option("--base-model", default=None, help=_HELP["base_model"])
@click.option("--adapter", "adapters", multiple=True, metavar="NAME=PATH", help=_HELP["adapters"] + " Repeatable.")
@click.option("--include-base", is_flag=True, help=_HELP["include_base"])
@click.option("--tokenizer", default=None, help=_HELP["tokenizer"])
@click.option("--suite", type=click.Choice(SUITES), default="spider1", help=_HELP["suite"])
@click.option("--spider-dir", default=None, help=_HELP["spider_dir"])
@click.option("--split", default="dev", help=_HELP["split"])
@click.option("--questions", default=None, help=_HELP["questions"])
@click.option("--db-root", default=None, help=_HELP["db_root"])
@click.option("--limit", type=int, default=None, help=_HELP["limit"])
@click.option("--db", "dbs", multiple=True, metavar="DB_ID", help=_HELP["dbs"])
@click.option("--out-dir", default=None, help=_HELP["out_dir"])
@click.option("--backend", type=click.Choice(["auto", "vllm", "hf"]), default="auto", help=_HELP["backend"])
@click.option("--max-new-tokens", type=int, default=256, help=_HELP["max_new_tokens"])
@click.option("--batch-size", type=int, default=None, help=_HELP["batch_size"])
@click.option("--workers", type=int, default=2, help=_HELP["workers"])
@click.option("--timeout", type=float, default=30.0, help=_HELP["timeout"])
@click.option("--n-samples", type=int, default=1, help=_HELP["n_samples"])
@click.option("--temperature", type=float, default=0.0, help=_HELP["temperature"])
@click.option("--seed", type=int, default=0, help=_HELP["seed"])
@click.option("--repetition-guard/--no-repetition-guard", default=True, help=_HELP["repetition_guard"])
@click.option("--sample-values", type=int, default=3, help=_HELP["sample_values"])
@click.option("--keep-distinct", is_flag=True, help=_HELP["keep_distinct"])
@click.option("--force", "--overwrite", "force", is_flag=True, help=_HELP["force"])
@click.option("--max-model-len", type=int, default=8192, help=_HELP["max_model_len"])
@click.option("--gpu-memory-utilization", type=float, default=0.90, help=_HELP["gpu_memory_utilization"])
@click.option("--tensor-parallel-size", type=int, default=1, help=_HELP["tensor_parallel_size"])
@click.option("--data-parallel-size", type=int, default=1, help=_HELP["data_parallel_size"])
@click.option("--dtype", default=None, help=_HELP["dtype"])
@click.option("--question-values", type=int, default=0, help=_HELP["question_values"])
@click.option("--repair", type=click.Choice(["none", "resample", "error-feedback"]), default="none",
              help=_HELP["repair"])
@click.option("--repair-k", type=int, default=4, help=_HELP["repair_k"])
@click.option("--repair-temperature", type=float, default=0.8, help=_HELP["repair_temperature"])
@click.option("--checkpoints", default=None, metavar="RUN_DIR", help=_HELP["checkpoints"])
@click.option("--enforce-eager", is_flag=True, help=_HELP["enforce_eager"])
@click.option("--vllm-cache-dir", default=None, help=_HELP["vllm_cache_dir"])
@click.option("--config", "config_file", default=None, help="JSON file of EvalConfig fields (see eval/configs/); "
              "flags given on the command line override it.")
@click.pass_context
def eval_command(ctx, adapters, dbs, config_file, **kwargs):
    """Generate SQL for every (question, adapter) pair in one engine, score it by execution, write reports.

    Re-running the same command resumes from predictions.jsonl in --out-dir.
    """
    from t2s_fast.evaluate.harness import evaluate

    kwargs.update(adapters=list(adapters), dbs=list(dbs))
    if config_file:
        kwargs = merge_config_file(ctx, config_file, kwargs)
    cfg = EvalConfig(**kwargs)
    report = evaluate(cfg)
    if report is None:  # a rank > 0 of `accelerate launch`/torchrun: rank 0 scores and reports
        return
    for name, a in report["adapters"].items():
        ex = "n/a" if a["ex"] is None else f"{100 * a['ex']:.1f}%"
        click.echo(f"{a['display_name']}: EX {ex} ({a['correct']}/{a['n']})")
    for name, r in (report.get("repair") or {}).get("adapters", {}).items():
        click.echo(f"{r['display_name']}: before repair EX {100 * (r['ex_before'] or 0):.1f}%; "
                   f"{r['failing']} failing, {r['repaired']} now execute, {r['fixed']} now correct")
    if report.get("checkpoints"):
        section = report["checkpoints"]
        click.echo(f"best checkpoint by EX on {section['chosen_on']['source']}: {section['best']}")
    click.echo(f"reports: {cfg.out_dir}/report.json, report.md, report.html")


def merge_config_file(ctx, config_file: str, kwargs: dict) -> dict:
    """Values from the JSON file, except where the flag was given on the command line."""
    from click.core import ParameterSource

    from t2s_fast.errors import T2SError
    from t2s_fast.jsonl import read_json

    data = read_json(config_file)
    if not isinstance(data, dict):
        raise T2SError(f"{config_file}: expected a JSON object of eval settings")
    known = set(_HELP)
    unknown = sorted(set(data) - known - {"_comment"})
    if unknown:
        raise T2SError(f"{config_file}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    merged = dict(kwargs)
    flag_of = {"adapters": "adapters", "dbs": "dbs"}
    for key, value in data.items():
        if key == "_comment":
            continue
        param = flag_of.get(key, key)
        if ctx.get_parameter_source(param) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            continue
        merged[key] = value
    return merged


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True)
@click.option("--out", default=None, help="Folder for comparison.md/html (default: the first run folder).")
def report_command(run_dirs, out):
    """Re-render eval runs' reports from report.json; with several runs, compare them side by side."""
    from t2s_fast.evaluate.report import report_runs

    written = report_runs(list(run_dirs), out)
    for p in written.values():
        click.echo(str(p))
