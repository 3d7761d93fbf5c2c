"""Run one untrusted SQL query on a SQLite database, safely and with limits; and a crash-proof worker pool.

Every predicted query is untrusted model output, so the executor stacks independent defences:

* the file is opened read-only (``file:...?mode=ro`` URI) and ``PRAGMA query_only=ON`` is set;
* an authorizer allows only reading (SELECT, READ, FUNCTION, RECURSIVE and a few read-only PRAGMAs): it
  denies ATTACH/DETACH, every write, CREATE/DROP/ALTER, writing PRAGMAs, and ``VACUUM INTO`` (which, on a
  read-only connection, would still create the target file before failing);
* ``SQLITE_LIMIT_ATTACHED`` is set to 0, so ATTACH cannot even create a file;
* one statement only (``sqlite3`` refuses a second one);
* a wall-clock timeout enforced inside SQLite by a progress handler (default 30 s);
* caps on rows fetched and on the (estimated) bytes of the result, so a query returning millions of rows
  stops early instead of exhausting memory;
* in a pool, each query runs in a worker process with a hard wall-clock kill on top, so a crash (segfault,
  out-of-memory kill) or a hang in one query never stalls the run or loses finished results.

This module imports only the standard library so that worker processes start fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import select
import sqlite3
import struct
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_ROWS = 200_000
DEFAULT_MAX_RESULT_BYTES = 256 * 1024 * 1024
# How many SQLite VM instructions run between two checks of the clock (a few microseconds of Python each).
_PROGRESS_EVERY_N_OPS = 20_000
_FETCH_CHUNK = 2_000

# Error kinds shared by the executor, the scorer and the reports.
ERROR_KINDS = ("parse", "runtime", "timeout", "no_database")

# PRAGMAs that only read (with or without an argument); every other PRAGMA is denied.
_READ_ONLY_PRAGMAS = frozenset(
    {
        "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
        "foreign_key_list", "database_list", "collation_list", "function_list", "pragma_list",
    }
)
_ALLOWED_ACTIONS = frozenset(
    code
    for code in (
        getattr(sqlite3, "SQLITE_SELECT", None),
        getattr(sqlite3, "SQLITE_READ", None),
        getattr(sqlite3, "SQLITE_FUNCTION", None),
        getattr(sqlite3, "SQLITE_RECURSIVE", None),
    )
    if code is not None
)
# SQLite's messages for text it cannot parse: reported as error kind 'parse', everything else is 'runtime'.
_SYNTAX_ERROR = re.compile(r"syntax error|incomplete input|unrecognized token|near \"", re.IGNORECASE)


@dataclass
class ExecResult:
    ok: bool
    rows: list[tuple] | None = None
    columns: list[str] | None = None
    error_kind: str | None = None  # 'parse' | 'runtime' | 'timeout' | 'no_database'
    error: str | None = None
    truncated: bool = False  # the row or byte cap was hit: rows holds only the first part of the result
    elapsed_s: float = 0.0

    @classmethod
    def failure(cls, kind: str, message: str, elapsed_s: float = 0.0) -> "ExecResult":
        return cls(ok=False, error_kind=kind, error=message, elapsed_s=elapsed_s)

    def error_text(self) -> str | None:
        """'<kind>: message', the form written into scored records."""
        return None if self.ok else f"{self.error_kind}: {self.error}"


def _authorizer(action, arg1, arg2, db_name, trigger):
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg1 and arg1.lower() in _READ_ONLY_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _decode_text(raw: bytes) -> str:
    # As the test-suite evaluator does (exec_eval.get_cursor_from_path): some Spider databases hold text
    # that is not valid UTF-8; drop the bad bytes instead of failing the query.
    return raw.decode(errors="ignore")


def _value_bytes(value) -> int:
    if isinstance(value, (str, bytes)):
        return 49 + len(value)
    return 24


def open_readonly(db_path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection with every write path closed (see the module docstring)."""
    uri = Path(db_path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    conn.text_factory = _decode_text
    conn.execute("PRAGMA query_only=ON")
    if hasattr(conn, "setlimit"):  # Python >= 3.11
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.set_authorizer(_authorizer)
    return conn


def execute_query(
    db_path: str | os.PathLike,
    sql: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> ExecResult:
    """Run one query in this process. Never raises for a bad query: the failure is in the result."""
    start = time.monotonic()
    db_path = Path(db_path)
    if not db_path.is_file():
        return ExecResult.failure("no_database", f"database file not found: {db_path}")
    if not isinstance(sql, str) or not sql.strip():
        return ExecResult.failure("parse", "empty query")
    try:
        conn = open_readonly(db_path)
    except sqlite3.Error as exc:
        return ExecResult.failure("no_database", f"cannot open {db_path}: {exc}", time.monotonic() - start)

    deadline = start + timeout_s
    timed_out = False

    def _progress() -> int:
        nonlocal timed_out
        if time.monotonic() > deadline:
            timed_out = True
            return 1  # non-zero interrupts the running statement
        return 0

    conn.set_progress_handler(_progress, _PROGRESS_EVERY_N_OPS)
    try:
        cursor = conn.execute(sql)
        columns = [d[0] for d in cursor.description] if cursor.description else []
        rows: list[tuple] = []
        n_bytes = 0
        truncated = False
        while True:
            chunk = cursor.fetchmany(_FETCH_CHUNK)
            if not chunk:
                break
            for row in chunk:
                n_bytes += 56 + sum(_value_bytes(v) for v in row)
            rows.extend(chunk)
            if len(rows) > max_rows or n_bytes > max_result_bytes:
                del rows[max_rows:]
                truncated = True
                break
        elapsed = time.monotonic() - start
        result = ExecResult(ok=True, rows=rows, columns=columns, truncated=truncated, elapsed_s=elapsed)
        if truncated:
            result.error = f"result exceeds the cap of {max_rows} rows or {max_result_bytes} bytes"
        return result
    except (sqlite3.Error, ValueError, OverflowError, MemoryError) as exc:
        elapsed = time.monotonic() - start
        message = str(exc) or type(exc).__name__
        if timed_out:
            return ExecResult.failure("timeout", f"query ran longer than {timeout_s:g} s", elapsed)
        if isinstance(exc, sqlite3.DatabaseError) and "not authorized" in message:
            message = f"{message} (the database is read-only: only SELECT queries may run)"
        kind = "parse" if _SYNTAX_ERROR.search(message) else "runtime"
        return ExecResult.failure(kind, message, elapsed)
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------------------
# Worker pool
#
# Workers are plain `python -m t2s_fast.sql.worker` subprocesses speaking length-prefixed pickle
# frames over stdin/stdout. Unlike multiprocessing's fork (unsafe in a parent holding threads or CUDA) or
# spawn/forkserver (which re-import the caller's __main__, impossible from a REPL, `python -` or a notebook),
# this works the same from every caller and starts in about 0.1 s.

_FRAME = struct.Struct("<Q")


def _write_frame(fh, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(_FRAME.pack(len(data)) + data)
    fh.flush()


def _read_exact(fh, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = fh.read(left)
        if not chunk:
            raise EOFError("worker pipe closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(fh):
    (size,) = _FRAME.unpack(_read_exact(fh, _FRAME.size))
    return pickle.loads(_read_exact(fh, size))


def _worker_loop(limits: dict) -> None:
    """The worker process: read (index, db, sql) jobs from stdin, write (index, ExecResult) to stdout."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the result stream
    if limits.get("sqlite_heap_bytes"):
        # Process-wide cap on SQLite's own memory (sorts, hash tables of a runaway join): such a query fails
        # with "out of memory" instead of growing the worker without bound.
        mem = sqlite3.connect(":memory:")
        mem.execute(f"PRAGMA hard_heap_limit={int(limits['sqlite_heap_bytes'])}")
        mem.close()
    while True:
        try:
            job = _read_frame(stdin)
        except EOFError:
            return
        if job is None:
            return
        index, db_path, sql = job
        result = execute_query(
            db_path, sql, timeout_s=limits["timeout_s"], max_rows=limits["max_rows"],
            max_result_bytes=limits["max_result_bytes"]
        )
        try:
            _write_frame(stdout, (index, result))
        except (pickle.PicklingError, TypeError, ValueError) as exc:
            _write_frame(stdout, (index, ExecResult.failure("runtime", f"cannot return the result: {exc}",
                                                            result.elapsed_s)))


@dataclass
class _Worker:
    process: subprocess.Popen
    job: tuple | None = None
    started: float = 0.0

    def fileno(self) -> int:  # lets select() wait on the result pipe
        return self.process.stdout.fileno()


@dataclass
class ExecutorPool:
    """Run many (db_path, sql) jobs over ``workers`` processes; results come back in input order.

    A worker that crashes costs only its current job (reported as a runtime error) and is replaced; one that
    does not answer within ``timeout_s + kill_grace_s`` (a hang the in-SQLite timeout cannot reach) is killed
    and its job reported as a timeout. ``workers=0`` runs the jobs in this process (fastest, not crash-proof).
    """

    workers: int = 2
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_rows: int = DEFAULT_MAX_ROWS
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    sqlite_heap_bytes: int | None = 2 * 1024**3
    kill_grace_s: float = 5.0
    max_consecutive_crashes: int = 20
    _pool: list[_Worker] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        if self.workers < 0:
            raise ValueError("workers must be >= 0")

    def __enter__(self) -> "ExecutorPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _limits(self) -> dict:
        return {
            "timeout_s": self.timeout_s,
            "max_rows": self.max_rows,
            "max_result_bytes": self.max_result_bytes,
            "sqlite_heap_bytes": self.sqlite_heap_bytes,
        }

    def _worker_command(self) -> list[str]:
        return [sys.executable, "-m", "t2s_fast.sql.worker", json.dumps(self._limits())]

    def _spawn(self) -> _Worker:
        cmd = self._worker_command()
        env = dict(os.environ)
        # The worker must import this package even when the caller put it on sys.path by hand.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        return _Worker(process=process)

    @staticmethod
    def _kill(worker: _Worker) -> None:
        with contextlib.suppress(OSError):
            worker.process.kill()
        with contextlib.suppress(Exception):
            worker.process.wait(timeout=5)
        for pipe in (worker.process.stdin, worker.process.stdout):
            with contextlib.suppress(OSError):
                pipe.close()

    def close(self) -> None:
        for worker in self._pool:
            with contextlib.suppress(OSError, ValueError):
                _write_frame(worker.process.stdin, None)
                worker.process.stdin.close()
        for worker in self._pool:
            try:
                worker.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            self._kill(worker)
        self._pool = []

    def run(self, jobs: list[tuple[str | os.PathLike, str]], progress=None) -> list[ExecResult]:
        """Execute every job; ``progress(n_done)`` is called as results arrive (for a progress bar)."""
        jobs = [(str(db), sql) for db, sql in jobs]
        results: list[ExecResult | None] = [None] * len(jobs)
        if self.workers == 0:
            for i, (db, sql) in enumerate(jobs):
                results[i] = execute_query(
                    db, sql, timeout_s=self.timeout_s, max_rows=self.max_rows, max_result_bytes=self.max_result_bytes
                )
                if progress:
                    progress(i + 1)
            return results  # type: ignore[return-value]

        while len(self._pool) < min(self.workers, max(1, len(jobs))):
            self._pool.append(self._spawn())
        pending = deque((i, db, sql) for i, (db, sql) in enumerate(jobs))
        done = 0
        crashes_in_a_row = 0
        hard_limit = self.timeout_s + self.kill_grace_s

        def finish(index: int, result: ExecResult) -> None:
            nonlocal done
            results[index] = result
            done += 1
            if progress:
                progress(done)

        def replace(slot: int) -> None:
            nonlocal crashes_in_a_row
            self._kill(self._pool[slot])
            crashes_in_a_row += 1
            if crashes_in_a_row > self.max_consecutive_crashes:
                raise RuntimeError(
                    f"SQL worker processes died {crashes_in_a_row} times in a row; "
                    f"check that `{sys.executable} -m t2s_fast.sql.worker '{{}}'` starts"
                )
            self._pool[slot] = self._spawn()

        while done < len(jobs):
            for slot, worker in enumerate(self._pool):
                if worker.job is None and pending:
                    job = pending.popleft()
                    try:
                        _write_frame(worker.process.stdin, job)
                    except (OSError, ValueError):  # died while idle: replace it and retry the job
                        replace(slot)
                        pending.appendleft(job)
                        continue
                    worker.job, worker.started = job, time.monotonic()
            busy = [w for w in self._pool if w.job is not None]
            if not busy:
                continue
            wait_s = max(0.0, min(w.started + hard_limit - time.monotonic() for w in busy))
            ready, _, _ = select.select(busy, [], [], wait_s + 0.05)
            for slot, worker in enumerate(self._pool):
                if worker.job is None:
                    continue
                index = worker.job[0]
                if worker in ready:
                    try:
                        got_index, result = _read_frame(worker.process.stdout)
                    except (EOFError, OSError, pickle.UnpicklingError):
                        code = worker.process.poll()
                        replace(slot)
                        finish(index, ExecResult.failure("runtime",
                                                         f"the query crashed its worker process (exit code {code})"))
                        continue
                    crashes_in_a_row = 0
                    worker.job = None
                    finish(got_index, result)
                elif time.monotonic() - worker.started > hard_limit:
                    elapsed = time.monotonic() - worker.started
                    self._kill(worker)
                    self._pool[slot] = self._spawn()
                    finish(index, ExecResult.failure("timeout",
                                                     f"query ran longer than {self.timeout_s:g} s (worker killed)",
                                                     elapsed))
        return results  # type: ignore[return-value]


def run_jobs(jobs: list[tuple[str | os.PathLike, str]], *, workers: int = 2, timeout_s: float = DEFAULT_TIMEOUT_S,
             **kwargs) -> list[ExecResult]:
    """One-shot helper: ``ExecutorPool(workers, timeout_s, **kwargs).run(jobs)``."""
    with ExecutorPool(workers=workers, timeout_s=timeout_s, **kwargs) as pool:
        return pool.run(jobs)


if __name__ == "__main__":
    if len(sys.argv) == 3:  # manual check: python -m t2s_fast.sql.executor DB "SQL"
        res = execute_query(sys.argv[1], sys.argv[2])
        print(res.error_text() or f"{len(res.rows or [])} rows, columns {res.columns}")
    else:
        sys.exit("usage: python -m t2s_fast.sql.executor DB SQL")
