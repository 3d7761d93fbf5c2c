"""run_state.json: what every stage ran with and what it cost, written atomically, so a run stopped any way (SIGTERM,
SIGKILL, a reboot) continues where it stopped and never forgets a dollar.

- Each stage's record holds its status, its settings and the fingerprints of its inputs (data files, adapters,
  the Spider folders): a finished stage whose settings and inputs are unchanged is not run again; one whose
  settings or inputs changed runs again, and so does every stage after it.
- Time is metered by a heartbeat: every few seconds the running session's and the running stage's wall time are
  written, so a SIGKILL loses at most one beat. Dollars are that wall time at the GPU's price (a training stage's
  own run.json counts the same clock, from its own start).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from t2s_fast.jsonl import atomic_open, read_json

STATE_FILE = "run_state.json"
HEARTBEAT_S = 5.0
FINISHED = ("done", "skipped")  # not run again while settings and inputs are unchanged


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def jsonable(obj):
    """Settings as JSON keeps them (Paths as strings, tuples as lists), so a reloaded record compares equal."""
    return json.loads(json.dumps(obj, default=str))


# ---------------------------------------------------------------------------------------------- fingerprints
def file_fingerprint(path: str | Path | None) -> str | None:
    """sha256 (16 hex) of a file's content; None when there is no such file."""
    if not path or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def folder_fingerprint(path: str | Path | None) -> str | None:
    """A data folder's top-level files (name, size, mtime) and how many entries each subfolder holds: cheap on
    Spider's thousand databases, and it changes when a file is replaced or a database added."""
    if not path or not Path(path).is_dir():
        return None
    items = []
    for p in sorted(Path(path).iterdir()):
        if p.is_file():
            st = p.stat()
            items.append((p.name, st.st_size, st.st_mtime_ns))
        elif p.is_dir():
            items.append((p.name + "/", sum(1 for _ in p.iterdir())))
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


def adapter_fingerprint(path: str | Path | None) -> dict | None:
    from t2s_fast.adapters import adapter_fingerprint as fp
    from t2s_fast.adapters import is_adapter_dir

    return fp(path)["files"] if path and is_adapter_dir(path) else None


# ---------------------------------------------------------------------------------------------- the state
class RunState:
    """{"version", "sessions": [{"started_at", "seconds", "pid"}], "stages": {name: record}, "outcome"}."""

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / STATE_FILE
        self.data = read_json(self.path) if self.path.is_file() else {"version": 1, "sessions": [], "stages": {}}
        self._lock = threading.RLock()

    @property
    def stages(self) -> dict:
        return self.data["stages"]

    def record(self, stage: str) -> dict:
        return self.stages.setdefault(stage, {"status": "pending", "seconds": 0.0})

    def save(self) -> None:
        with self._lock:
            for attempt in range(3):  # the main thread may be changing a record while the heartbeat saves
                try:
                    text = json.dumps(self.data, indent=2, default=str)
                    break
                except RuntimeError:
                    if attempt == 2:
                        raise
            with atomic_open(self.path) as fh:
                fh.write(text + "\n")

    def seconds(self) -> float:
        return total_seconds(self.data)

    def spent_usd(self, usd_per_s: float) -> float:
        return spent_usd(self.data, usd_per_s)

    def stage_usd(self, stage: str, usd_per_s: float) -> float:
        return stage_usd(self.data, stage, usd_per_s)


def total_seconds(data: dict) -> float:
    """Wall time of every session so far (each counted until its last heartbeat)."""
    return sum(s.get("seconds", 0.0) for s in data["sessions"])


def stage_usd(data: dict, stage: str, usd_per_s: float) -> float:
    """A stage's dollars: its metered wall time at the GPU's price, or its training run's own count if more."""
    rec = data["stages"].get(stage, {})
    return round(max(rec.get("seconds", 0.0) * usd_per_s, rec.get("run_cost_usd") or 0.0), 6)


def spent_usd(data: dict, usd_per_s: float) -> float:
    """Every session's wall time at the GPU's price, or the stages' own dollars when those are more (a training
    run's run.json, written after the state's last beat)."""
    stages = sum(stage_usd(data, name, usd_per_s) for name in data["stages"])
    return round(max(total_seconds(data) * usd_per_s, stages), 6)


class Meter:
    """The running session's clock: starts a session record, and a daemon thread beats every HEARTBEAT_S,
    adding the wall time since the last beat to the session and to the running stage, then saving the state
    (and calling on_beat, e.g. to write status.json)."""

    def __init__(self, state: RunState, on_beat=None, interval: float = HEARTBEAT_S, t0: float | None = None):
        self.state, self.on_beat, self.interval = state, on_beat, interval
        self.session = {"started_at": now(), "seconds": 0.0, "pid": os.getpid()}
        state.data["sessions"].append(self.session)
        self.stage: str | None = None
        self._last = time.monotonic() if t0 is None else t0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="run-meter")

    def start(self) -> "Meter":
        self.beat()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        with self.state._lock:
            t = time.monotonic()
            dt, self._last = t - self._last, t
            self.session["seconds"] = round(self.session["seconds"] + dt, 3)
            if self.stage is not None:
                rec = self.state.record(self.stage)
                rec["seconds"] = round(rec.get("seconds", 0.0) + dt, 3)
            self.state.save()
        if self.on_beat is not None:
            try:
                self.on_beat()
            except Exception:  # noqa: BLE001 - a status file that cannot be written must not stop the run
                pass

    def enter(self, stage: str | None) -> None:
        """The stage now running (None between stages): the time so far goes to the one before."""
        self.beat()
        self.stage = stage

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 1)
        self.enter(None)
