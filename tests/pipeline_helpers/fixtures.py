"""Small real inputs for the `t2s-fast run` tests: a Spider 1.0 folder of three training databases (a few questions
each) and four dev questions, linked to the real SQLite files, and a run file for the tiny Qwen3."""

from __future__ import annotations

import json
import os
from pathlib import Path

TRAIN_DBS = ("department_management", "book_2", "musical")
DEV_DB = "concert_singer"


def write_mini_spider(spider1: Path, dest: Path, per_db: int = 3) -> Path:
    """train_spider.json with `per_db` questions on each of TRAIN_DBS, 4 dev questions, their tables.json
    entries, and database/ links to the real files."""
    train = json.loads((spider1 / "train_spider.json").read_text())
    dev = json.loads((spider1 / "dev.json").read_text())
    tables = json.loads((spider1 / "tables.json").read_text())
    dest.mkdir(parents=True)
    rows = [r for db in TRAIN_DBS for r in [r for r in train if r["db_id"] == db][:per_db]]
    (dest / "train_spider.json").write_text(json.dumps(rows))
    (dest / "train_others.json").write_text("[]")
    (dest / "dev.json").write_text(json.dumps([r for r in dev if r["db_id"] == DEV_DB][:4]))
    keep = set(TRAIN_DBS) | {DEV_DB}
    (dest / "tables.json").write_text(json.dumps([t for t in tables if t["db_id"] in keep]))
    (dest / "database").mkdir()
    for db in keep:
        os.symlink(spider1 / "database" / db, dest / "database" / db)
    return dest


TRAIN = {"max_steps": 2, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "auto_setup": False,
         "packing": False, "max_seq_length": 1024, "learning_rate": 1e-3, "warmup_ratio": 0.0, "save_steps": 1,
         "eval_steps": 1000, "save_total_limit": 0, "backend": "hf", "logging_steps": 1}
EVAL = {"backend": "hf", "max_new_tokens": 8, "batch_size": 8, "workers": 0, "repair": "none"}


def run_file(path: Path, *, spider: Path, model: Path, tokenizer: Path, out: Path, **over) -> Path:
    """A run file: every stage on the tiny model, a few steps, greedy eval of 4 dev questions."""
    cfg = {"out_dir": str(out), "max_cost_usd": 5.0, "model_name": str(model), "gpu_hourly_usd": 3.44,
           "prepare": {"spider_dir": str(spider), "tokenizer": str(tokenizer), "valid_fraction": 0.3,
                       "sample_values": 0, "max_seq_length": 1024},
           "stage1": dict(TRAIN),
           "stage2": {**TRAIN, "max_steps": 1, "learning_rate": 5e-4,
                      "train_file": str(out / "prepared" / "stage1_train.jsonl"),
                      "eval_file": str(out / "prepared" / "stage1_valid.jsonl")},
           "choose": {**EVAL, "sample_values": 0, "limit": 2},
           "eval": {**EVAL, "sample_values": 0}}
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path.write_text(json.dumps(cfg, indent=1))
    return path
