"""`t2s-fast ARGS...` with an interruption placed where a test needs it, so that no test depends on how fast the
steps run:

    python tests/pipeline_helpers/interrupt.py kill-before STAGE ARGS...
        SIGKILL (nothing can catch it) at the boundary before STAGE: the stages before it finished and were
        recorded, STAGE has not started any work. STAGE "report": after merge, before the report is written.
    python tests/pipeline_helpers/interrupt.py hold-after-step FOLDER N ARGS...
        the training run whose output folder is named FOLDER (a stage's: stage1) pauses once its step N is in
        train_log.jsonl, until a signal arrives (at most 120 s): a SIGTERM sent after that line appears lands
        mid-run, however fast the steps are.
    python tests/pipeline_helpers/interrupt.py hold-after-checkpoint FOLDER N ARGS...
        the same, once checkpoint N is complete (its marker written): a SIGKILL sent then finds checkpoint N the
        newest, and a SIGTERM stops the run after the next step.
"""

from __future__ import annotations

import os
import signal
import sys
import time


def kill_before(stage: str) -> None:
    from t2s_fast.pipeline import report, stages

    def kill(*a, **kw):
        os.kill(os.getpid(), signal.SIGKILL)

    if stage == "report":
        report.write_report = kill
        return
    real_run = stages.run

    def run(ctx, name, budget, *, rerun):
        if name == stage:
            kill()
        return real_run(ctx, name, budget, rerun=rerun)

    stages.run = run


def hold(folder: str, step: int, after: str) -> None:
    """Pause once, in StepLogCallback.`after` (on_log: the step's line is written; on_save: its checkpoint is
    complete), at the first step >= `step` of the run writing to .../FOLDER/train_log.jsonl."""
    from t2s_fast.train.callbacks import StepLogCallback

    real, held = getattr(StepLogCallback, after), []

    def wait_for_a_signal(self, args, state, control, **kw):
        result = real(self, args, state, control, **kw)
        ready = "loss" in (kw.get("logs") or {}) if after == "on_log" else True
        if not held and ready and state.global_step >= step and f"/{folder}/" in str(self.log_path):
            held.append(state.global_step)
            t0 = time.time()
            while not self.meter.signal_name and time.time() - t0 < 120:  # the trainer's guard records the signal
                time.sleep(0.05)
        return result

    setattr(StepLogCallback, after, wait_for_a_signal)


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "kill-before":
        kill_before(args.pop(0))
    elif mode in ("hold-after-step", "hold-after-checkpoint"):
        folder, step = args.pop(0), int(args.pop(0))
        hold(folder, step, "on_log" if mode == "hold-after-step" else "on_save")
    else:
        raise SystemExit(f"unknown mode {mode!r}: kill-before, hold-after-step or hold-after-checkpoint")
    from t2s_fast.cli import main as cli_main

    cli_main(args)


if __name__ == "__main__":
    main()
