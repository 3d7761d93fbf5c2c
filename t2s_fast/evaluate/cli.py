"""`t2s-fast eval`, `report`, `prepare-repair` and `ablate`: flags -> EvalConfig / ReportConfig /
RepairExamplesConfig / AblationConfig -> harness.evaluate / report.report_runs /
repair_examples.write_repair_examples / ablation.ablate."""

from __future__ import annotations

import click

from t2s_fast.cli_options import options_from
from t2s_fast.evaluate.ablation_config import AblationConfig, AblationRun
from t2s_fast.evaluate.config import EvalConfig, ReportConfig
from t2s_fast.evaluate.repair_examples import RepairExamplesConfig


@click.command("eval", context_settings={"show_default": True})
@options_from(EvalConfig, config_help="JSON (or YAML) file of EvalConfig fields (see configs/eval/); flags given "
                                      "on the command line override it.")
def eval_command(cfg: EvalConfig):
    """Generate SQL for every (question, adapter) pair in one engine, score it by execution, write reports.

    By default (--repair auto) a prediction that fails to execute gets a resample repair pass on the SQLite
    suites (spider1, heldout, jsonl): --repair-k 8 samples at --repair-temperature 0.8, the majority result among
    those that execute. --repair none gives plain greedy (or --n-samples vote) decoding.

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
    """Re-render eval runs' reports from report.json; with several runs, compare them side by side.

    With several runs, each adapter present in the first run and in another is also compared question by question
    (from the runs' per-question files, scored.jsonl.gz): the EX difference with its 95% paired bootstrap
    interval and the discordant counts, printed and written to paired.md/json ("noise" when the interval holds 0).
    """
    from t2s_fast.evaluate.report import report_runs

    written = report_runs(list(cfg.run_dirs), cfg.out)
    for p in written.values():
        click.echo(str(p))
    if len(cfg.run_dirs) > 1:
        from pathlib import Path

        from t2s_fast.evaluate.paired import write_run_comparisons

        lines, path = write_run_comparisons(list(cfg.run_dirs), Path(cfg.out or cfg.run_dirs[0]))
        for line in lines:
            click.echo(line)
        if path is not None:
            click.echo(str(path))


@click.command("prepare-repair", context_settings={"show_default": True})
@options_from(RepairExamplesConfig)
def prepare_repair_command(cfg: RepairExamplesConfig):
    """Training examples for `eval --repair error-feedback`, from a model's real failures on training data."""
    from t2s_fast.evaluate.repair_examples import write_repair_examples

    examples, counts = write_repair_examples(cfg)
    click.echo(f"{len(examples)} repair examples from {counts['failing']} failing of {counts['predictions']} "
               f"predictions -> {cfg.out}")


ABLATE_CONFIG_HELP = ("Ablation file (JSON or YAML): out_dir, eval (shared EvalConfig fields), arms (name, group, "
                      "overrides), choose_adapter, gpu_hourly_usd, final. Example: "
                      "configs/ablate/levers-qwen2.5-coder-0.5b.json; fields: t2s_fast/evaluate/ablation_config.py "
                      "(AblationConfig); the flags above override the file's values.")


@click.command("ablate", context_settings={"show_default": True})
@options_from(AblationConfig, AblationRun, config_required=True, config_help=ABLATE_CONFIG_HELP)
def ablate_command(cfg: AblationConfig, run: AblationRun):
    """Evaluate many arms (eval settings: repair, votes, temperature, question values, ...) through ONE engine on a
    held-out set (never Spider dev), choose each group's best arm by EX (ties: fewer generated tokens), and
    report each listed group's baseline and winner on the final set (Spider dev) in the same engine.

    Re-running the same command resumes: finished arms keep their reports, others resume from their predictions.
    """
    import logging
    import sys

    from t2s_fast.evaluate.ablation_config import check_ablation

    cfg.source = str(click.get_current_context().params["config_file"])
    if run.dry_run:
        arms, _ = check_ablation(cfg, check_files=False)
        for a in arms:
            click.echo(f"{a.name} [{a.group}]: {a.overrides or '(shared settings)'}")
        click.echo(f"{len(arms)} arm(s) in {len(dict.fromkeys(a.group for a in arms))} group(s), "
                   f"out_dir {cfg.out_dir}; final groups: {(cfg.final or {}).get('groups', [])}")
        return
    from t2s_fast.evaluate.ablation import ablate

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    summary = ablate(cfg)
    for group, c in summary["choices"].items():
        ex = "n/a" if c["ex"] is None else f"{100 * c['ex']:.1f}%"
        click.echo(f"group {group}: chosen {c['arm']} (held-out EX {ex}, {c['correct']}/{c['n']})")
    for f in summary["final"].values():
        ex = "n/a" if f["ex"] is None else f"{100 * f['ex']:.1f}%"
        click.echo(f"final {f['suite']} {f['split']} {f['arm']}: EX {ex} ({f['correct']}/{f['n']})")
    from t2s_fast.evaluate.paired import describe

    for group, pair in summary.get("paired", {}).items():
        for where, c in pair.items():
            click.echo(f"paired, group {group} ({where}): " + (c["error"] if "error" in c else describe(c)))
    click.echo(f"report: {cfg.out_dir}/ablation.md, ablation.json, ablation.png")
