"""`t2s-fast run --config FILE` and `t2s-fast status RUN_DIR`: the run file -> RunConfig -> run_pipeline()."""

from __future__ import annotations

import logging
import sys

import click

from t2s_fast.cli_options import options_from
from t2s_fast.pipeline.config import RunConfig, RunOptions
from t2s_fast.pipeline.status import StatusConfig

CONFIG_HELP = ("Run file (YAML or JSON): model_name, max_cost_usd, stages, and one section per stage with that "
               "command's own keys (prepare, stage1, stage2, stage3, choose, eval, merge). Examples: configs/run/. "
               "Fields: t2s_fast/pipeline/config.py (RunConfig); the flags above override the file's values.")


@click.command("run", context_settings={"show_default": True})
@options_from(RunConfig, RunOptions, config_required=True, config_help=CONFIG_HELP)
def run_command(cfg: RunConfig, opts: RunOptions):
    """The whole runbook as one command under ONE dollar cap: prepare, stage 1, stage 2, RL (stage3, off by
    default), the choice among every checkpoint on held-out data, Spider dev evaluation of the base, each stage
    and the choice, merge, and one report (report.html/md/json in OUT_DIR).

    The plan (projected dollars and minutes per stage, total, reserve) is printed before anything starts. Run
    the same command again after a SIGTERM, a SIGKILL or a reboot: finished stages are skipped, the running one
    resumes from its checkpoint, the dollars already spent still count; a changed stage setting runs that stage
    and every later one again. Start it detached (setsid/nohup) and come back with `t2s-fast status OUT_DIR`.
    Exit code: 0 done (or over budget: the report says what was skipped), 1 failed, 143 interrupted, 2 bad
    run file (nothing started).
    """
    import time

    t0 = time.monotonic()  # the GPU is paid from here: the session's clock starts before torch is imported
    from t2s_fast.pipeline.runner import EXIT_CODES, run_pipeline

    cfg.source = str(click.get_current_context().params["config_file"])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    result = run_pipeline(cfg, on_finish=opts.on_finish, dry_run=opts.dry_run, t0=t0)
    if opts.dry_run:
        click.echo("dry run: nothing started")
        return
    click.echo(f"{result['outcome']}: ${result['spent_usd']:.4f} of the ${cfg.max_cost_usd:g} cap spent; report: "
               f"{result['report']['html']}" + (f" ({result['error']})" if result.get("error") else ""))
    code = EXIT_CODES[result["outcome"]]
    if code:
        sys.exit(code)


@click.command("status", context_settings={"show_default": True})
@options_from(StatusConfig)
def status_command(cfg: StatusConfig):
    """Where a `t2s-fast run` stands: its stage, progress, ETA, dollars spent and projected, the latest figure,
    and every stage's status (read from RUN_DIR's files: works from another shell, or after the run ended)."""
    from t2s_fast.pipeline.status import status_text

    click.echo(status_text(cfg.run_dir))
