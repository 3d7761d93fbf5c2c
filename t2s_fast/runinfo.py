"""What a run.json records about the environment (package versions, git revision, device), and the one writer of
run.json."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

from t2s_fast.paths import REPO_ROOT

PACKAGES = ("t2s-fast", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "unsloth", "unsloth_zoo",
            "bitsandbytes", "vllm")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """{distribution: installed version, or None when it is not installed}."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_versions(path: str) -> None:
    """The versions a GPU report folder records (versions.json): python, PACKAGES, sqlglot and gguf. Written to a
    file, not stdout, because the imports around it may print banners."""
    import platform

    from t2s_fast.jsonl import write_json

    write_json(path, {"python": platform.python_version(), **package_versions(PACKAGES + ("sqlglot", "gguf"))})


def git_revision() -> dict:
    def run(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    rev = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": rev, "dirty": bool(status) if status is not None else None}


def device_info() -> dict:
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return {"kind": "cuda", "name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                "total_memory_gib": round(props.total_memory / 1024**3, 1), "cuda": torch.version.cuda,
                "driver_capability": f"{props.major}.{props.minor}"}
    import os

    return {"kind": "cpu", "name": "cpu", "count": 1, "cpu_count": os.cpu_count()}


def peak_gpu_memory() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"peak_gpu_memory_allocated_gib": None, "peak_gpu_memory_reserved_gib": None}
    return {"peak_gpu_memory_allocated_gib": round(torch.cuda.max_memory_allocated() / 1024**3, 2),
            "peak_gpu_memory_reserved_gib": round(torch.cuda.max_memory_reserved() / 1024**3, 2)}


if __name__ == "__main__":  # python -m t2s_fast.runinfo FILE (the bench/ drivers)
    import sys

    write_versions(sys.argv[1])


def write_run_json(out_dir: str | Path, info: dict) -> dict:
    """A run's record, run.json in ``out_dir``: ``info`` with the facts every run records (the command, when it
    finished, package versions, git revision), written atomically by the main process only (DDP: one record).
    Returns what was (or would be) written."""
    import sys
    from datetime import datetime, timezone

    from t2s_fast import distributed
    from t2s_fast.jsonl import write_json

    record = {"command": " ".join(sys.argv), **info,
              "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "versions": package_versions(), "git": git_revision()}
    if distributed.is_main():
        write_json(Path(out_dir) / "run.json", record)
    return record
