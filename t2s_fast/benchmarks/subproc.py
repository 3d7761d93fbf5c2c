"""Run one benchmark worker in a fresh process, log its output to a file, and tell an out-of-memory from
any other failure (each backend and each max-context probe gets a clean CUDA context and allocator)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

OOM_MARKERS = ("CUDA out of memory", "OutOfMemoryError", "torch.OutOfMemoryError", "CUBLAS_STATUS_ALLOC_FAILED",
               "cudaErrorMemoryAllocation", "out of memory")


@dataclass
class ChildResult:
    returncode: int
    wall_s: float
    log_path: Path
    oom: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def is_oom(text: str) -> bool:
    return any(m in text for m in OOM_MARKERS)


def t2s_command(*args: str) -> list[str]:
    """`t2s-fast ARGS` in the same interpreter (so a venv or PYTHONPATH carries over)."""
    return [sys.executable, "-m", "t2s_fast", *args]


def start_child(cmd: list[str], log_path: Path, env: dict | None = None) -> tuple[subprocess.Popen, float, object]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fh = log_path.open("w")
    fh.write("$ " + " ".join(cmd) + "\n")
    fh.flush()
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=full_env)
    return proc, time.time(), fh


def finish_child(proc: subprocess.Popen, t0: float, fh, log_path: Path, timeout_s: float | None = None) -> ChildResult:
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
        fh.write(f"\n[t2s bench] killed after {timeout_s:.0f} s\n")
    fh.close()
    text = log_path.read_text(errors="replace")
    return ChildResult(returncode=rc, wall_s=time.time() - t0, log_path=log_path, oom=rc != 0 and is_oom(text))


def run_child(cmd: list[str], log_path: Path, *, timeout_s: float | None = None,
              env: dict | None = None) -> ChildResult:
    proc, t0, fh = start_child(cmd, log_path, env)
    return finish_child(proc, t0, fh, log_path, timeout_s)
