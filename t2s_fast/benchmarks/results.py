"""Benchmark result files: <out-dir>/<date>-<device>-<what>[-<tag>].json.

Every file records the command line, the date, the device, the package versions and the git revision, so
each figure in bench/README.md can be traced to the command that produced it and re-run.
"""

from __future__ import annotations

import datetime as _dt
import re
import shlex
import subprocess
import sys
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.jsonl import read_json, write_json
from t2s_fast.paths import REPO_ROOT

SCHEMA_VERSION = 1
DEFAULT_RESULTS_DIR = REPO_ROOT / "bench" / "results"
WHATS = ("train", "generate", "score", "max-context", "peak", "profile", "projection")
REQUIRED_KEYS = ("schema_version", "what", "date", "device", "command", "versions", "git", "settings", "rows")
REQUIRED_ROW_KEYS = {
    "train": ("label", "backend", "status", "trained_tokens_per_s", "optimizer_steps_per_s", "mfu_4n",
              "peak_memory_allocated_gib", "peak_memory_reserved_gib"),
    "generate": ("backend", "status", "generated_tokens_per_s", "wall_s"),
    "score": ("workers", "pairs_per_s"),
    "max-context": ("backend", "max_seq_length"),
    "profile": ("label", "step_time_s", "buckets_s"),
    "projection": ("kind", "label", "source", "measured_tokens_per_s", "projected_tokens_per_s"),
}


def describe_device() -> dict:
    """The GPU without creating a CUDA context in this process (nvidia-smi), else the CPU.

    The benchmark parent stays off the GPU so the benchmarked child processes have it to themselves.
    """
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        out = []
    if out:
        name, mem, driver = (x.strip() for x in out[0].split(","))
        return {"kind": "cuda", "name": name, "count": len(out), "memory": mem, "driver": driver}
    import os
    import platform

    return {"kind": "cpu", "name": platform.processor() or "cpu", "count": 1, "cpu_count": os.cpu_count()}


def device_slug(device: dict) -> str:
    """A short file-name-safe device name: h200, h100, a100, l4, ... or cpu."""
    if device.get("kind") != "cuda":
        return "cpu"
    name = device.get("name", "gpu").lower()
    m = re.search(r"\b([ahlbt]\d{2,3}[a-z]?|rtx ?\d{4}|gb\d{3})\b", name)
    slug = m.group(1) if m else name
    slug = re.sub(r"[^a-z0-9]+", "-", slug).strip("-") or "gpu"
    return slug + (f"x{device['count']}" if device.get("count", 1) > 1 else "")


def environment() -> dict:
    from t2s_fast.runinfo import git_revision, package_versions

    return {"versions": package_versions(), "git": git_revision(), "python": sys.version.split()[0]}


def command_line(argv: list[str] | None = None) -> str:
    argv = sys.argv if argv is None else argv
    prog = Path(argv[0]).name if argv else "t2s-fast"
    if prog in ("__main__.py", "cli.py"):
        prog = "t2s-fast"
    return shlex.join([prog, *argv[1:]])


def make_result(what: str, *, settings: dict, rows: list[dict], command: str | None = None,
                device: dict | None = None, notes: list[str] | None = None, **extra) -> dict:
    if what not in WHATS:
        raise ValueError(f"unknown result kind {what!r}")
    result = {"schema_version": SCHEMA_VERSION, "what": what,
              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "device": device or describe_device(), "command": command or command_line(), **environment(),
              "settings": settings, "rows": rows, "notes": notes or []}
    result.update(extra)
    return result


def validate_result(result: dict, where: str = "result") -> dict:
    """Raise T2SError naming what is missing; return the result."""
    missing = [k for k in REQUIRED_KEYS if k not in result]
    if missing:
        raise T2SError(f"{where}: missing key(s) {', '.join(missing)}")
    if result["what"] not in WHATS:
        raise T2SError(f"{where}: 'what' is {result['what']!r}, not one of {', '.join(WHATS)}")
    if not isinstance(result["rows"], list):
        raise T2SError(f"{where}: 'rows' must be a list")
    for i, row in enumerate(result["rows"]):
        need = REQUIRED_ROW_KEYS.get(result["what"], ())
        row_missing = [k for k in need if k not in row]
        if row_missing:
            raise T2SError(f"{where}: rows[{i}] missing key(s) {', '.join(row_missing)}")
    return result


def result_path(result: dict, out_dir: str | Path | None = None, tag: str | None = None) -> Path:
    out_dir = Path(out_dir or DEFAULT_RESULTS_DIR)
    day = result["date"][:10]
    stem = f"{day}-{device_slug(result['device'])}-{result['what']}"
    if tag:
        stem += "-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", tag).strip("-")
    path = out_dir / f"{stem}.json"
    n = 2
    while path.exists():  # never overwrite an earlier run
        path = out_dir / f"{stem}-{n}.json"
        n += 1
    return path


def write_result(result: dict, out_dir: str | Path | None = None, tag: str | None = None) -> Path:
    validate_result(result)
    path = result_path(result, out_dir, tag)
    write_json(path, result)
    return path


def measured_alone(record: dict) -> bool:
    """False for a result or run.json recorded on a GPU shared with other jobs (``"shared_gpu": true``): its
    losses and accuracy count, but its speed, memory and dollars measure nothing and are never claimed."""
    return not record.get("shared_gpu")


def load_results(results_dir: str | Path | None = None, what: str | None = None) -> list[tuple[Path, dict]]:
    """All `t2s-fast bench` result files (oldest first by date, then name). Records other scripts write there
    (no "schema_version", e.g. an older scoring-throughput script's) are skipped; an invalid bench file raises
    T2SError."""
    results_dir = Path(results_dir or DEFAULT_RESULTS_DIR)
    out = []
    for path in sorted(results_dir.glob("*.json")):
        data = read_json(path)
        if not isinstance(data, dict) or "schema_version" not in data:
            continue
        result = validate_result(data, str(path))
        if what is None or result["what"] == what:
            out.append((path, result))
    out.sort(key=lambda pr: (pr[1]["date"], pr[0].name))
    return out
