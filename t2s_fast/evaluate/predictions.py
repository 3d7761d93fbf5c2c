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
from t2s_fast.jsonl import append_jsonl, iter_jsonl, read_json, write_json

PREDICTIONS_FILE = "predictions.jsonl"
TIMINGS_FILE = "timings.jsonl"
SETTINGS_FILE = "run_settings.json"
SETTINGS_VERSION = 1


def prediction_key(adapter: str, qid: str, sample: int) -> str:
    return f"{adapter}|{qid}|{sample}"


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def adapter_fingerprint(path: str) -> dict:
    """What identifies an adapter's behaviour: its config and its weights (not where it lives)."""
    folder = Path(path)
    files = sorted(p for p in folder.iterdir() if p.is_file() and (p.name == "adapter_config.json"
                                                                   or p.name.startswith("adapter_model")))
    return {"path": str(folder), "files": {p.name: file_sha(p) for p in files}}


def _comparable(settings: dict) -> dict:
    """Settings minus the adapter set (adding an adapter to a run is fine) and minus adapter paths."""
    return {k: v for k, v in settings.items() if k != "adapters"}


class PredictionStore:
    """The run folder's predictions, settings and timings."""

    def __init__(self, out_dir: str | os.PathLike, settings: dict, *, force: bool = False):
        self.out_dir = Path(out_dir)
        self.settings = {"version": SETTINGS_VERSION, **settings}
        self.path = self.out_dir / PREDICTIONS_FILE
        self.timings_path = self.out_dir / TIMINGS_FILE
        self.settings_path = self.out_dir / SETTINGS_FILE
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if force:
            for p in (self.path, self.timings_path, self.settings_path):
                p.unlink(missing_ok=True)
        self._check_settings()
        self.records: dict[str, dict] = {}
        _drop_torn_tail(self.path)
        if self.path.is_file():
            for rec in iter_jsonl(self.path, required=("key",), tolerate_torn_tail=True):
                self.records[rec["key"]] = rec  # a duplicate (should not happen) keeps the last one

    def _check_settings(self) -> None:
        if not self.settings_path.is_file():
            if self.path.is_file() and self.path.stat().st_size > 0:
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
        if not self.timings_path.is_file():
            return []
        return list(iter_jsonl(self.timings_path, tolerate_torn_tail=True))


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
