"""Resumable predictions: `predictions.jsonl` grows one finished batch at a time.

A record is keyed by (adapter, question id, sample index). Re-running the same command reads what is there
and generates only what is missing. `run_settings.json` holds what the predictions depend on (model,
adapter weights, decoding, prompt options, backend); each record also holds the hash of its exact prompt.
Anything different refuses to mix into old predictions unless the user asks to start over (--force).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.jsonl import append_jsonl, iter_jsonl, read_json, write_json, write_jsonl

PREDICTIONS_FILE = "predictions.jsonl"
TIMINGS_FILE = "timings.jsonl"
SETTINGS_FILE = "run_settings.json"
SETTINGS_VERSION = 1


def prediction_key(adapter: str, qid: str, sample: int) -> str:
    return f"{adapter}|{qid}|{sample}"


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _comparable(settings: dict) -> dict:
    """Settings minus the adapter set (adding an adapter to a run is fine) and minus adapter paths."""
    return {k: v for k, v in settings.items() if k != "adapters"}


class PredictionStore:
    """The run folder's predictions, settings and timings."""

    def __init__(self, out_dir: str | os.PathLike, settings: dict, *, force: bool = False, shard: int | None = None):
        """``shard`` = this process's rank in a multi-process evaluation: it appends to
        ``predictions.rank<shard>.jsonl`` (no two processes append to one file) and rank 0 later folds every
        shard into predictions.jsonl with `merge_shards`. Reading always takes the main file and all shards,
        so a run cut off mid-way resumes whatever the number of processes."""
        self.out_dir = Path(out_dir)
        self.settings = {"version": SETTINGS_VERSION, **settings}
        self.main_path = self.out_dir / PREDICTIONS_FILE
        self.main_timings_path = self.out_dir / TIMINGS_FILE
        self.path = self.main_path if shard is None else self.out_dir / f"predictions.rank{shard}.jsonl"
        self.timings_path = self.main_timings_path if shard is None else self.out_dir / f"timings.rank{shard}.jsonl"
        self.settings_path = self.out_dir / SETTINGS_FILE
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if force:
            for p in (self.main_path, self.main_timings_path, self.settings_path, *self._shard_files()):
                p.unlink(missing_ok=True)
        self._check_settings()
        self.records: dict[str, dict] = {}
        self._load()

    def _shard_files(self, kind: str = "*") -> list[Path]:
        return sorted(p for pattern in ((f"{kind}.rank*.jsonl",) if kind != "*" else
                                        ("predictions.rank*.jsonl", "timings.rank*.jsonl"))
                      for p in self.out_dir.glob(pattern))

    def _load(self) -> None:
        self.records = {}
        for path in [self.main_timings_path, *self._shard_files("timings")]:
            _drop_torn_tail(path)  # else the next append would glue a record onto the torn line
        for path in [self.main_path, *self._shard_files("predictions")]:
            _drop_torn_tail(path)
            if path.is_file():
                for rec in iter_jsonl(path, required=("key",), tolerate_torn_tail=True):
                    self.records[rec["key"]] = rec  # a duplicate (should not happen) keeps the last one

    def merge_shards(self) -> int:
        """Rank 0, after every rank finished: fold the shard files into predictions.jsonl / timings.jsonl (one
        record per key) and delete them. Atomic: a crash leaves either the shards or the merged file. Returns
        the number of records."""
        self._load()
        shards = self._shard_files("predictions")
        timing_shards = self._shard_files("timings")
        if shards:
            write_jsonl(self.main_path, list(self.records.values()))
        if timing_shards:
            rows = [] if not self.main_timings_path.is_file() else list(
                iter_jsonl(self.main_timings_path, tolerate_torn_tail=True))
            for path in timing_shards:
                rank = path.name.split(".rank")[1].split(".")[0]
                rows += [dict(r, rank=int(rank)) for r in iter_jsonl(path, tolerate_torn_tail=True)]
            write_jsonl(self.main_timings_path, rows)
        for path in shards + timing_shards:
            path.unlink()
        self.path, self.timings_path = self.main_path, self.main_timings_path
        return len(self.records)

    def _check_settings(self) -> None:
        if not self.settings_path.is_file():
            if self.main_path.is_file() and self.main_path.stat().st_size > 0:
                raise T2SError(f"{self.path}: predictions without {SETTINGS_FILE}; cannot tell how they were made. "
                               "Use another --out-dir, or --force to start over")
            write_json(self.settings_path, self.settings)
            return
        old = read_json(self.settings_path)
        diffs = [k for k in sorted(set(_comparable(old)) | set(_comparable(self.settings)))
                 if old.get(k) != self.settings.get(k)]
        old_adapters, new_adapters = old.get("adapters", {}), self.settings.get("adapters", {})
        diffs += [f"adapters.{n}" for n in sorted(set(old_adapters) & set(new_adapters))
                  if old_adapters[n].get("files") != new_adapters[n].get("files")]
        if diffs:
            detail = "; ".join(f"{d}: was {json.dumps(_lookup(old, d))}, now {json.dumps(_lookup(self.settings, d))}"
                               for d in diffs)
            raise T2SError(f"{self.settings_path}: this run folder holds predictions made with other settings "
                           f"({detail}). Use another --out-dir, or --force to discard them and start over")
        merged = dict(self.settings)
        merged["adapters"] = {**old_adapters, **new_adapters}
        self.settings = merged
        write_json(self.settings_path, merged)

    def check_prompt(self, key: str, prompt_sha: str) -> None:
        rec = self.records.get(key)
        if rec is not None and rec.get("prompt_sha") != prompt_sha:
            raise T2SError(f"{self.path}: the prediction {key!r} was made from a different prompt (the question, "
                           "schema or prompt builder changed). Use another --out-dir, or --force to start over")

    def has(self, key: str) -> bool:
        return key in self.records

    def append(self, records: list[dict], timing: dict | None = None) -> None:
        append_jsonl(self.path, records)
        for rec in records:
            self.records[rec["key"]] = rec
        if timing is not None:
            append_jsonl(self.timings_path, [timing])

    def timings(self) -> list[dict]:
        return [row for path in [self.main_timings_path, *self._shard_files("timings")] if path.is_file()
                for row in iter_jsonl(path, tolerate_torn_tail=True)]


def _lookup(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line left half-written by a crash, so the next append starts on a fresh line."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    with path.open("r+b") as fh:
        fh.truncate(data.rfind(b"\n") + 1)
