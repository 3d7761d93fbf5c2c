"""`python tests/pipeline_helpers/kill_at.py STAGE ARGS...`: `t2s-fast ARGS...`, killed by SIGKILL (nothing can
catch it) at the boundary before STAGE: the stages before it finished and were recorded, STAGE has not started
any work. STAGE "report": after merge, before the report is written."""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    stage, args = sys.argv[1], sys.argv[2:]
    from t2s_fast.pipeline import report, stages

    def kill(*a, **kw):
        os.kill(os.getpid(), signal.SIGKILL)

    if stage == "report":
        report.write_report = kill
    else:
        real_run = stages.run

        def run(ctx, name, budget, *, rerun):
            if name == stage:
                kill()
            return real_run(ctx, name, budget, rerun=rerun)

        stages.run = run
    from t2s_fast.cli import main as cli_main

    cli_main(args)


if __name__ == "__main__":
    main()
