"""Run one plain function (train, evaluate) in a fresh spawned process, for isolation on a GPU: every run
starts with all the GPU memory free, and a training run's patched libraries (Unsloth patches transformers
on import) never meet the next step's vLLM engine. SIGTERM sent to the sweep is passed on to the child, so
a training run still stops cleanly at a checkpoint."""

from __future__ import annotations

import os
import signal
import traceback

from t2s_fast.errors import T2SError


class Interrupted(Exception):
    """The child was stopped by a signal (the sweep was asked to stop)."""


def _child(conn, fn, arg) -> None:
    import logging
    import os
    import sys

    os.setpgrp()  # signals reach it only through the parent, once (a second SIGTERM aborts a training run)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        conn.send(("ok", fn(arg)))
    except T2SError as exc:
        conn.send(("t2s", str(exc)))
    except KeyboardInterrupt as exc:
        conn.send(("interrupted", f"{type(exc).__name__}: {exc}"))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def call(fn, arg, *, isolate: bool):
    """fn(arg), here or in a spawned process; a T2SError in the child is raised here as a T2SError."""
    if not isolate:
        return fn(arg)
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, arg))  # not a daemon: vLLM data parallel spawns its own
    proc.start()
    child.close()
    forward = lambda signum, frame: os.kill(proc.pid, signum)  # noqa: E731 - SIGTERM/SIGINT go to the run
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    name = getattr(fn, "__name__", str(fn))
    try:
        try:
            kind, payload = parent.recv()
        except EOFError:
            proc.join()
            if proc.exitcode is not None and proc.exitcode < 0:
                raise Interrupted(f"{name} stopped by signal {-proc.exitcode}") from None
            raise RuntimeError(f"{name} exited with code {proc.exitcode} before answering") from None
        proc.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if kind == "interrupted":
        raise Interrupted(f"{name}: {payload}")
    if kind == "t2s":
        raise T2SError(payload)
    if kind == "error":
        raise RuntimeError(f"{name} failed in its process: {payload}")
    return payload


def resolve(mode: str) -> bool:
    """auto -> a process per run when a CUDA GPU is present."""
    if mode == "auto":
        from t2s_fast.generate.base import cuda_available

        return cuda_available()
    return mode == "process"
