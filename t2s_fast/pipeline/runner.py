"""`run_pipeline(cfg)`: the stages in order under one dollar cap, resumable and unattended.

1. Every stage's config is built first (a bad section fails before anything runs), then the plan is printed.
2. For each stage that is on: a finished stage whose settings and inputs are unchanged is skipped; a changed one
   runs again, and so does every later stage (the log says which setting changed); a stage whose inputs an
   earlier stage did not produce is skipped; a stage whose projection does not fit what is left of the cap
   (less the projections of the evaluations, merge and report after it) is skipped, and the report says so;
   the rest run, a training stage with what is left as its own budget, resuming from its checkpoint.
3. Dollars are the heartbeat-metered wall time of every session at the GPU's price (state.py), so restarts add
   up; status.json and run.log say where the run is; the report is written at the end, and `on_finish` runs
   however the run ends (done, over_budget, failed, interrupted).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.pipeline import stages
from t2s_fast.pipeline.config import STAGES, TRAINING, RunConfig
from t2s_fast.pipeline.plan import Device, format_plan, make_plan, usd_per_s
from t2s_fast.pipeline.state import Meter, RunState, now

log = logging.getLogger(__name__)

LOG_FILE = "run.log"
EXIT_CODES = {"done": 0, "over_budget": 0, "failed": 1, "interrupted": 143}


def _log_to_file(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


def changes(rec: dict, want: dict, ins: dict) -> list[str]:
    """The settings and inputs that differ from what the stage last ran with (empty for a first run)."""
    if "settings" not in rec:
        return []
    was, was_in = rec.get("settings") or {}, rec.get("inputs") or {}
    was = {k: v for k, v in was.items() if k not in stages.NOT_COMPARED}  # kept by runs made before they were not
    out = [k for k in sorted(set(want) | set(was)) if want.get(k) != was.get(k)]
    out += [f"input {k}" for k in sorted(set(ins) | set(was_in)) if ins.get(k) != was_in.get(k)]
    return out


def set_aside(folder: Path) -> Path | None:
    """Move a stage's old folder out of the way (nothing is deleted): <folder>.replaced-N."""
    if not folder.exists():
        return None
    n = 1
    while folder.with_name(f"{folder.name}.replaced-{n}").exists():
        n += 1
    dest = folder.with_name(f"{folder.name}.replaced-{n}")
    folder.rename(dest)
    return dest


def _on_signal(signum, frame):
    raise stages.Interrupted(f"{signal.Signals(signum).name} received")


class Pipeline:
    def __init__(self, cfg: RunConfig, *, device: Device | None = None, isolate: bool | None = None, echo=None):
        from t2s_fast.sweep.isolate import resolve

        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.state = RunState(self.out)
        self.echo = echo or (lambda msg: print(msg, file=sys.stderr, flush=True))
        device = device or Device.detect()
        self.ctx = stages.Context(cfg, self.state, device, resolve("auto") if isolate is None else isolate)
        self.rate = usd_per_s(cfg)
        self.over_budget = False
        self.plan: dict = {}

    # ------------------------------------------------------------------ planning
    def check(self) -> None:
        """Build every stage's config that is on: a bad section or setting fails here, before anything runs."""
        for stage in STAGES:
            if self.cfg.stage_on(stage):
                stages.settings(self.ctx, stage)

    def make_plan(self) -> dict:
        projections = {s: stages.project(self.ctx, s) for s in STAGES if self.cfg.stage_on(s)}
        self.plan = make_plan(self.cfg, projections, self.ctx.device)
        return self.plan

    def reserve_after(self, stage: str) -> float:
        """The projected dollars of the evaluations, merge and report after `stage`: kept back from what a stage
        may spend, so a run that trains always has the money to be evaluated and reported."""
        later = [s for s in STAGES[STAGES.index(stage) + 1:] if s not in TRAINING and self.cfg.stage_on(s)]
        return round(sum(stages.project(self.ctx, s).usd or 0.0 for s in later), 6)  # re-planned: files exist now

    def spent(self) -> float:
        return self.state.spent_usd(self.rate)

    # ------------------------------------------------------------------ one stage
    def run_stage(self, stage: str, meter: Meter, invalidated: bool) -> bool:
        """Run (or skip) one stage; returns whether the stages after it must run again."""
        rec = self.state.record(stage)
        if not self.cfg.stage_on(stage):
            rec.update(status="off", reason="switched off in the run file")
            return invalidated
        why_not = stages.missing(self.ctx, stage)
        if why_not:
            rec.update(status="skipped", reason=why_not, skipped_for="input")
            self.echo(f"{stage}: skipped: {why_not}")
            return True
        want, ins = stages.settings(self.ctx, stage), stages.inputs(self.ctx, stage)
        changed = changes(rec, want, ins)
        if rec.get("status") == "done" and not changed and not invalidated:
            self.echo(f"{stage}: done in an earlier session (settings and inputs unchanged): not run again")
            return False
        rerun = bool(changed) or (invalidated and "settings" in rec)
        if rerun:
            why = (f"settings changed ({', '.join(changed)})" if changed else "an earlier stage ran again")
            self.echo(f"{stage}: {why} since it last ran: running it again, and every stage after it")
            if stage in TRAINING or stage == "merge":
                moved = set_aside(self.cfg.stage_dir(stage))
                if moved:
                    self.echo(f"{stage}: its earlier folder is kept as {moved}")
            rec.pop("result", None)
        projection, reserve = stages.project(self.ctx, stage), self.reserve_after(stage)
        left = round(self.cfg.max_cost_usd - self.spent() - reserve, 6)
        if projection.usd is not None and projection.usd > left:
            reason = (f"projected ${projection.usd:.4f} does not fit the ${max(left, 0):.4f} left of the "
                      f"${self.cfg.max_cost_usd:g} cap (spent ${self.spent():.4f}, ${reserve:.4f} kept for the "
                      "stages after it)")
            rec.update(status="skipped", reason=reason, skipped_for="budget", projected=projection.as_dict(),
                       settings=want, inputs=ins)
            self.over_budget = True
            self.echo(f"{stage}: skipped: {reason}")
            return True
        resumed = rec.get("status") in ("running", "interrupted") and not rerun
        rec.update(status="running", settings=want, inputs=ins, projected=projection.as_dict(), budget_usd=left,
                   started_at=rec.get("started_at") if resumed else now(), reason=None, skipped_for=None,
                   sessions=rec.get("sessions", 0) + 1, expected_answers=stages.expected_answers(self.ctx, stage),
                   **({} if resumed else {"run_cost_usd": None}))  # seconds add up over every attempt
        self.echo(f"{stage}: {'resuming' if resumed else 'running'} (projected ${projection.usd or 0:.4f}, "
                  f"${left:.4f} left of the cap)")
        meter.enter(stage)
        try:
            result = stages.run(self.ctx, stage, left, rerun=rerun)
        except stages.Interrupted:
            rec["status"] = "interrupted"
            self._adopt_training_cost(stage, rec)
            raise
        except BaseException as exc:
            rec.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            self._adopt_training_cost(stage, rec)
            raise
        finally:
            meter.enter(None)
        rec.update(status="done", result=result, finished_at=now())
        if stage in TRAINING:
            rec["run_cost_usd"] = result.get("cost_usd")
            if result.get("stop_reason") == "budget":
                self.over_budget = True
                rec["reason"] = "stopped by its budget (adapter saved)"
        self.state.save()
        self.echo(f"{stage}: done (${self.state.stage_usd(stage, self.rate):.4f}, {rec['seconds']:.0f} s)")
        return rerun or invalidated

    def _adopt_training_cost(self, stage: str, rec: dict) -> None:
        if stage in TRAINING:
            cost = stages.logged_cost(self.cfg.stage_dir(stage))
            rec["run_cost_usd"] = max(cost, rec.get("run_cost_usd") or 0.0) or None

    # ------------------------------------------------------------------ the run
    def run(self, *, on_finish: str | None = None, t0: float | None = None) -> dict:
        """Run or resume every stage; the session is paid from t0 (time.monotonic() when the command started)."""
        from t2s_fast.pipeline.status import write_status

        self.out.mkdir(parents=True, exist_ok=True)
        handler = _log_to_file(self.out)
        meter = Meter(self.state, on_beat=lambda: write_status(self), t0=t0)
        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        outcome, error = "failed", None
        try:
            self.state.data["plan"] = self.plan
            self.state.data.setdefault("first_plan", self.plan)
            self.state.data.update(outcome="running", error=None, config_source=self.cfg.source)
            meter.start()
            log.info("run: %s, cap $%g, %s", self.cfg.source, self.cfg.max_cost_usd, self.ctx.device.name)
            invalidated = False
            for stage in STAGES[:-1]:
                invalidated = self.run_stage(stage, meter, invalidated)
            outcome = "over_budget" if self.over_budget else "done"
        except stages.Interrupted as exc:
            outcome, error = "interrupted", str(exc)
            self.echo(f"interrupted ({exc}); run the same command again to continue")
        except T2SError as exc:
            error = str(exc)
            self.echo(f"failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - recorded; the report and on_finish still follow
            error = f"{type(exc).__name__}: {exc}"
            log.exception("run failed")
        finally:
            for sig, h in previous.items():
                signal.signal(sig, h)
            meter.stop()
            self.state.data.update(outcome=outcome, error=error, ended_at=now())
            self.state.save()
            self._final_report(outcome)
            write_status(self)
            self.state.save()
            logging.getLogger().removeHandler(handler)
            handler.close()
            if on_finish:
                run_on_finish(on_finish, outcome, self.out, self.echo)
        return {"outcome": outcome, "error": error, "spent_usd": self.spent(), "report": self.report_paths()}

    def report_paths(self) -> dict:
        from t2s_fast.pipeline.report import REPORT_NAMES

        return {k: str(self.out / v) for k, v in REPORT_NAMES.items()}

    def _final_report(self, outcome: str) -> None:
        """The report stage: written whenever the run ends other than by a signal (a failed or over-budget run
        reports what it did); metered like any stage."""
        from t2s_fast.pipeline.report import write_report

        rec = self.state.record("report")
        if not self.cfg.stage_on("report"):
            rec.update(status="off")
            return
        if outcome == "interrupted":
            return
        t0 = time.monotonic()
        rec.update(status="done", finished_at=now())  # as the report itself will say
        try:
            write_report(self)
        except Exception as exc:  # noqa: BLE001 - the run's outcome stands; the log says why the report failed
            rec.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            log.exception("report failed")
        rec["seconds"] = round(rec.get("seconds", 0.0) + time.monotonic() - t0, 3)
        self.state.data["sessions"][-1]["seconds"] += round(time.monotonic() - t0, 3)
        self.state.save()


def run_on_finish(command: str, outcome: str, out: Path, echo) -> int:
    """The user's command (poweroff, a notification), with T2S_RUN_OUTCOME and T2S_RUN_DIR set."""
    env = {**os.environ, "T2S_RUN_OUTCOME": outcome, "T2S_RUN_DIR": str(out)}
    echo(f"on-finish ({outcome}): {command}")
    try:
        rc = subprocess.run(command, shell=True, env=env, check=False).returncode
    except OSError as exc:
        echo(f"on-finish failed to start: {exc}")
        return 127
    if rc:
        echo(f"on-finish exited with code {rc}")
    return rc


def run_pipeline(cfg: RunConfig, *, on_finish: str | None = None, dry_run: bool = False, echo=None,
                 device: Device | None = None, isolate: bool | None = None, t0: float | None = None) -> dict:
    """Check the file, print the plan, and (unless dry_run) run or resume every stage; returns the outcome. The
    session's dollars count from t0 (time.monotonic() when the command started; default: now)."""
    t0 = time.monotonic() if t0 is None else t0
    cfg.validate()
    pipe = Pipeline(cfg, device=device, isolate=isolate, echo=echo)
    pipe.check()
    pipe.echo(format_plan(pipe.make_plan()))
    if dry_run:
        return {"outcome": "dry_run", "plan": pipe.plan}
    spent = pipe.spent()
    if spent:
        pipe.echo(f"resuming: ${spent:.4f} of the ${cfg.max_cost_usd:g} cap already spent")
    return pipe.run(on_finish=on_finish, t0=t0)
