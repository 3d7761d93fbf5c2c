"""Run one plain function (train, evaluate) in a fresh spawned process, for isolation on a GPU: a run starts
with the GPU memory its earlier runs held given back, and a training run's patched libraries (Unsloth patches
transformers on import) never meet the next step's vLLM engine. Several runs can share the GPU at once
(`parallel`: sweep/parallel.py). SIGTERM sent to the sweep is passed on to the child, so a training run still
stops cleanly at a checkpoint. A child dies with its parent, however the parent dies (SIGKILL included): a run
started again never finds the old one's stage still running beside it.

`launch_ranks` starts one command as the N processes of a data-parallel run (what `torchrun --standalone` does),
each dying with the launcher too."""

from __future__ import annotations

import os
import signal
import traceback
from contextlib import contextmanager

from t2s_fast.errors import T2SError


class Interrupted(Exception):
    """The child was stopped by a signal (the sweep was asked to stop)."""


def die_with_parent(parent_pid: int) -> None:
    """This process gets SIGKILL when its parent dies (Linux: PR_SET_PDEATHSIG, kept across exec); where that is
    not to be had, nothing changes."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the line above ran
        os._exit(137)


def _child(conn, fn, arg, parent_pid: int) -> None:
    import logging
    import os
    import sys

    os.setpgrp()  # signals reach it only through the parent, once (a second SIGTERM aborts a training run)
    die_with_parent(parent_pid)
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


class Child:
    """fn(arg) running in a fresh spawned process; `conn` is readable once it answered (or died), `result()`
    then returns its value or raises as a direct call would. `env` is set in the child only (e.g. the GPU a
    parallel sweep run may see: CUDA_VISIBLE_DEVICES)."""

    def __init__(self, fn, arg, *, env: dict[str, str] | None = None):
        import multiprocessing as mp

        self.name = getattr(fn, "__name__", str(fn))
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child, args=(child, fn, arg, os.getpid()))  # not a daemon: vLLM data
        # parallel spawns its own processes
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})  # a spawned child copies the environment when it starts
        try:
            self.proc.start()
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        child.close()

    def signal(self, signum: int) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid, signum)

    def result(self):
        try:
            kind, payload = self.conn.recv()
        except EOFError:
            self.proc.join()
            if self.proc.exitcode is not None and self.proc.exitcode < 0:
                raise Interrupted(f"{self.name} stopped by signal {-self.proc.exitcode}") from None
            raise RuntimeError(f"{self.name} exited with code {self.proc.exitcode} before answering") from None
        self.proc.join()
        if kind == "interrupted":
            raise Interrupted(f"{self.name}: {payload}")
        if kind == "t2s":
            raise T2SError(payload)
        if kind == "error":
            raise RuntimeError(f"{self.name} failed in its process: {payload}")
        return payload


@contextmanager
def forwarding(on_signal):
    """SIGTERM and SIGINT call on_signal(signum) (e.g. pass them on to the children) while inside."""
    previous = {sig: signal.signal(sig, lambda signum, frame: on_signal(signum)) for sig in (signal.SIGTERM,
                                                                                             signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def call(fn, arg, *, isolate: bool):
    """fn(arg), here or in a spawned process; a T2SError in the child is raised here as a T2SError."""
    if not isolate:
        return fn(arg)
    child = Child(fn, arg)
    with forwarding(child.signal):  # SIGTERM/SIGINT go to the run
        return child.result()


def _exec_with_parent(parent_pid: int, argv: list[str]) -> None:
    """A rank's first step (`launch_ranks`): die with the launcher, then become ``python ARGV...``."""
    import sys

    die_with_parent(parent_pid)
    os.execv(sys.executable, [sys.executable, *argv])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_ranks(argv: list[str], processes: int, *, grace_s: float = 600.0) -> list[int]:
    """``python ARGV...`` as ranks 0..N-1 of one data-parallel run on this host (RANK, LOCAL_RANK, WORLD_SIZE,
    MASTER_ADDR/PORT set, as `torchrun --standalone` sets them); their exit codes. SIGTERM and SIGINT are passed
    on to every rank. A rank that fails leaves the others ``grace_s`` to end (a collective may hold them), then
    they get SIGTERM and, ``grace_s`` later, SIGKILL. Every rank dies with this process, however it dies."""
    import subprocess
    import sys
    import time

    port, procs = _free_port(), []
    shim = ("import sys; from t2s_fast.sweep.isolate import _exec_with_parent; "
            "_exec_with_parent(int(sys.argv[1]), sys.argv[2:])")
    for r in range(processes):
        env = {**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(processes),
               "LOCAL_WORLD_SIZE": str(processes), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, "-c", shim, str(os.getpid()), *argv], env=env,
                                      start_new_session=True))  # signals reach a rank through the launcher, once

    def send(signum: int) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    failed_at, stopped = None, 0
    with forwarding(send):
        while [p.poll() for p in procs].count(None):  # every rank polled: any() would stop at the first alive
            if failed_at is None and any(p.returncode not in (None, 0) for p in procs):
                failed_at = time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > grace_s * (stopped + 1) and stopped < 2:
                send(signal.SIGTERM if stopped == 0 else signal.SIGKILL)
                stopped += 1
            time.sleep(0.2)
    return [p.returncode for p in procs]


def resolve(mode: str) -> bool:
    """auto -> a process per run when a CUDA GPU is present."""
    if mode == "auto":
        from t2s_fast.generate.base import cuda_available

        return cuda_available()
    return mode == "process"
