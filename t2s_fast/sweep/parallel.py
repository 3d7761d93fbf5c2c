"""Several runs at once, each fn(arg) in its own spawned process (isolate.Child): a small model leaves most of
an H200 idle, so a sweep of small runs finishes sooner with two or three training side by side. Knows nothing
of sweeps: `start` says what to run for an item (or None when it needs no run), `finish` records each outcome.

With `devices`, each run sees one GPU (CUDA_VISIBLE_DEVICES), the one running the fewest runs. SIGTERM and
SIGINT are passed on to every running child (a training run then stops cleanly at a checkpoint) and nothing
new starts; the pool then waits for the children to answer."""

from __future__ import annotations

import signal
from multiprocessing.connection import wait

from t2s_fast.errors import T2SError
from t2s_fast.sweep.isolate import Child, Interrupted, forwarding


def least_busy(devices: list[str] | None, busy: list[str | None]) -> str | None:
    """The device with the fewest runs on it (the first such in the list); None without devices."""
    if not devices:
        return None
    return min(devices, key=lambda d: (busy.count(d), devices.index(d)))


def run_pool(items: list, *, slots: int, start, finish, devices: list[str] | None = None) -> bool:
    """Run the items, up to `slots` at a time, in order.

    start(item, running_items, waiting) -> (fn, arg) to run, or None (settled without a run);
    finish(item, outcome) gets fn's return value or the T2SError it raised, and returns False to start no more.
    Returns False when stopped early: by a signal, a child stopped by one (Interrupted), or a finish. A child
    that crashed otherwise stops new starts; once the running ones answered, its error is raised (never
    leaving a run training behind a sweep that is started again)."""
    todo, running, go, crash = list(items), {}, True, None

    def stop(signum: int) -> None:
        nonlocal go
        go = False
        for child, _, _ in running.values():
            child.signal(signum)

    try:
        with forwarding(stop):
            while running or (todo and go):
                while todo and go and len(running) < slots:
                    item = todo.pop(0)
                    job = start(item, [it for _, it, _ in running.values()], len(todo))
                    if job is None:
                        continue
                    device = least_busy(devices, [d for _, _, d in running.values()])
                    child = Child(*job, env=None if device is None else {"CUDA_VISIBLE_DEVICES": device})
                    running[child.conn] = (child, item, device)
                for conn in wait(list(running)) if running else []:
                    child, item, _ = running.pop(conn)
                    try:
                        outcome = child.result()
                    except Interrupted:
                        go = False
                        continue
                    except T2SError as exc:
                        outcome = exc
                    except Exception as exc:  # noqa: BLE001 - a crash: no new start; raised once all answered
                        go, crash = False, crash or exc
                        continue
                    if not finish(item, outcome):
                        go = False
    except BaseException:  # start() or a spawn failed: no run may go on training behind the sweep
        for child, _, _ in running.values():
            child.signal(signal.SIGTERM)  # a training run saves a checkpoint and stops
        for child, _, _ in running.values():
            child.proc.join()
        raise
    if crash is not None:
        raise crash
    return go
