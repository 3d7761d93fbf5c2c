"""`t2s-fast sweep --config FILE`: the file -> SweepConfig -> sweep()."""

from __future__ import annotations

import logging
import sys

import click

from t2s_fast.cli_options import options_from
from t2s_fast.sweep.config import SweepConfig, SweepRun

CONFIG_HELP = ("Sweep file (JSON or YAML): shared train settings, variants or grid, max_cost_usd, heldout/eval/final "
               "settings. Example: configs/sweep/stage1-qwen2.5-coder-0.5b.json. Fields and their meaning: "
               "t2s_fast/sweep/config.py (SweepConfig); the flags above override the file's values.")


@click.command("sweep", context_settings={"show_default": True})
@options_from(SweepConfig, SweepRun, config_required=True, config_help=CONFIG_HELP)
def sweep_command(cfg: SweepConfig, run: SweepRun):
    """Train variants one after another under ONE dollar cap, evaluate every final adapter (and, with
    "checkpoints": true, every checkpoint: the sweep then keeps all of them) in one engine on a held-out set
    (never Spider dev), choose the best by execution accuracy (ties: cheaper; with --max-eval-loss only among
    the candidates whose eval loss is at most the cap), and report the chosen one on Spider dev (greedy, and
    maj@K when final.n_samples > 1).

    Re-running the same command resumes: finished variants are not retrained, a half-finished one continues
    from its last checkpoint, and the evaluations resume from their predictions; the choice is made again
    (a new --max-eval-loss chooses from the existing evaluations, without retraining).
    """
    from t2s_fast.sweep.config import expand_variants
    from t2s_fast.sweep.isolate import Interrupted

    cfg.source = str(click.get_current_context().params["config_file"])
    variants = expand_variants(cfg.validate())
    if run.dry_run:
        from t2s_fast.sweep.plan import check_plan

        check_plan(cfg, variants)
        for v in variants:
            click.echo(f"{v.name}: {v.overrides}")
        click.echo(f"{len(variants)} variant(s), cap ${cfg.max_cost_usd:g}, out_dir {cfg.out_dir}")
        return
    from t2s_fast.sweep.runner import report_only, sweep

    if run.report_only:
        summary = report_only(cfg)
        chosen = summary.get("chosen")
        click.echo(f"chosen: {chosen['name'] if chosen else 'none'} (held-out EX {_pct(chosen)}); report: "
                   f"{cfg.out_dir}/sweep.md, sweep.json, ex_vs_cost.png")
        _echo_paired(summary)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        summary = sweep(cfg)
    except Interrupted as exc:
        click.echo(f"interrupted ({exc}); run the same command again to continue", err=True)
        sys.exit(143)
    if summary.get("interrupted"):
        click.echo(f"interrupted; state in {summary['state']}; run the same command again to continue", err=True)
        sys.exit(143)
    chosen = summary.get("chosen")
    click.echo(f"chosen: {chosen['name'] if chosen else 'none'}; report: {cfg.out_dir}/sweep.md, sweep.json, "
               "ex_vs_cost.png")
    for label, f in (summary.get("final") or {}).items():
        ex = "n/a" if f["ex"] is None else f"{100 * f['ex']:.1f}%"
        click.echo(f"{f['suite']} {f.get('split') or ''} {label}: EX {ex} ({f['correct']}/{f['n']})")
    _echo_paired(summary)


def _echo_paired(summary: dict) -> None:
    """The chosen candidate against the baseline, question by question (held-out, then each final run)."""
    from t2s_fast.evaluate.paired import describe

    paired = summary.get("paired") or {}
    runs = [("held-out", paired["heldout"])] if paired.get("heldout") else []
    runs += [(f"final {label}", c) for label, c in (paired.get("final") or {}).items()]
    for where, c in runs:
        click.echo(f"paired ({where}): " + (c["error"] if "error" in c else describe(c)))


def _pct(chosen: dict | None) -> str:
    return "n/a" if not chosen or chosen.get("ex") is None else f"{100 * chosen['ex']:.1f}%"
