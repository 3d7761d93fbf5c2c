"""A stand-in for `train` in the parallel sweep tests, run in the sweep's spawned processes: it writes what
a real run writes for the sweep (run.json with stop_reason and cost_usd) after sleeping as long as the run's
learning_rate says (seconds), and notes when it ran, on which GPU and with what budget (fake.json). A run
whose seed is SIGNAL_SEED sends SIGTERM to the sweep (its parent) once another run has started too, then sleeps."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

COST = 1.0
SIGNAL_SEED = 666


def fake_train(tc) -> dict:
    out = Path(tc.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    (out / "started").write_text(str(started))  # a resumed run finds its folder not empty
    (out / "pid").write_text(str(os.getpid()))
    if tc.seed == SIGNAL_SEED:
        for _ in range(200):  # until the run beside it started (on a busy machine its process starts later)
            if len(list(out.parent.glob("*/started"))) > 1:
                break
            time.sleep(0.1)
        os.kill(os.getppid(), signal.SIGTERM)
        time.sleep(30)  # the sweep passes the signal on: the default SIGTERM handler ends this process first
    time.sleep(tc.learning_rate)
    info = {"stop_reason": "completed", "cost_usd": COST, "global_step": 1, "finished_at": time.time(),
            "adapter_dir": str(out / "adapter"), "config": tc.to_dict()}
    (out / "fake.json").write_text(json.dumps({"started": started, "ended": time.time(), "resumed": tc.resume,
                                               "device": os.environ.get("CUDA_VISIBLE_DEVICES"),
                                               "budget": tc.max_cost_usd}))
    (out / "run.json").write_text(json.dumps(info))
    return info
