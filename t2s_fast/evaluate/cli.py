"""`t2s-fast eval`, `report` and `prepare-repair`: flags -> EvalConfig / ReportConfig / RepairExamplesConfig ->
harness.evaluate / report.report_runs / repair_examples.write_repair_examples."""

from __future__ import annotations

import click

from t2s_fast.cli_options import options_from
from t2s_fast.evaluate.config import EvalConfig, ReportConfig
from t2s_fast.evaluate.repair_examples import RepairExamplesConfig


@click.command("eval", context_settings={"show_default": True})
@options_from(EvalConfig, config_help="JSON (or YAML) file of EvalConfig fields (see eval/configs/); flags given "
                                      "on the command line override it.")
def eval_command(cfg: EvalConfig):
    """Generate SQL for every (question, adapter) pair in one engine, score it by execution, write reports.

    Re-running the same command resumes from predictions.jsonl in --out-dir.
    """
    from t2s_fast.evaluate.harness import evaluate

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


@click.command("report", context_settings={"show_default": True})
@options_from(ReportConfig)
def report_command(cfg: ReportConfig):
    """Re-render eval runs' reports from report.json; with several runs, compare them side by side."""
    from t2s_fast.evaluate.report import report_runs

    written = report_runs(list(cfg.run_dirs), cfg.out)
    for p in written.values():
        click.echo(str(p))


@click.command("prepare-repair", context_settings={"show_default": True})
@options_from(RepairExamplesConfig)
def prepare_repair_command(cfg: RepairExamplesConfig):
    """Training examples for `eval --repair error-feedback`, from a model's real failures on training data."""
    from t2s_fast.evaluate.repair_examples import write_repair_examples

    examples, counts = write_repair_examples(cfg)
    click.echo(f"{len(examples)} repair examples from {counts['failing']} failing of {counts['predictions']} "
               f"predictions -> {cfg.out}")
