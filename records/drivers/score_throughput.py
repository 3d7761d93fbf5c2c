"""Scoring throughput: every Spider dev pair with a database, scored gold-vs-gold, with 1 and 2 workers.

Each prediction is the gold query plus a trailing space, so both queries of every pair really execute (the
scorer runs identical (db, SQL) jobs only once) and the gold cache is cleared before each run: the numbers are
a cold, two-queries-per-pair workload. Writes a JSON record with device, versions and the command line.

    python bench/score_throughput.py --spider-dir ../shared/data/spider1 --out bench/results/2026-11-24-cpu-score.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sqlite3
import sys
import time
from importlib.metadata import version
from pathlib import Path

from t2s_fast.jsonl import write_json
from t2s_fast.paths import SPIDER1_DIR
from t2s_fast.sql import scorer
from t2s_fast.sql.scorer import ScoreConfig, score_records, summarize


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spider-dir", type=Path, default=SPIDER1_DIR)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2, help="runs per worker count; the best is reported")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    dev = json.loads((args.spider_dir / "dev.json").read_text())
    records = [{"db_id": ex["db_id"], "gold": ex["query"], "pred": ex["query"] + " "} for ex in dev]
    db_root = scorer.resolve_db_root(args.spider_dir)
    with_db = [r for r in records if scorer.db_path_for(db_root, r["db_id"]).is_file()]

    runs = []
    for workers in args.workers:
        times = []
        for _ in range(args.repeats):
            scorer.clear_gold_cache()
            start = time.perf_counter()
            scored = score_records(with_db, ScoreConfig(spider_dir=args.spider_dir, workers=workers))
            times.append(time.perf_counter() - start)
        summary = summarize(scored)
        best = min(times)
        runs.append(
            {
                "workers": workers,
                "pairs": len(with_db),
                "queries_executed": 2 * len(with_db),
                "wall_s_runs": [round(t, 3) for t in times],
                "wall_s_best": round(best, 3),
                "pairs_per_s": round(len(with_db) / best, 1),
                "ex": summary["ex"],
                "errors": summary["errors"],
            }
        )
        print(f"workers={workers}: {len(with_db)} pairs in {best:.2f} s = {len(with_db) / best:.0f} pairs/s, EX "
              f"{summary['ex']:.3f}")

    result = {
        "benchmark": "score_throughput",
        "date": dt.date.today().isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": {
            "cpu_model": cpu_model(),
            "cpu_cores": os.cpu_count(),
            "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "platform": platform.platform(),
        },
        "versions": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "sqlglot": version("sqlglot"),
            "t2s_fast": version("t2s-fast"),
        },
        "workload": "Spider 1.0 dev, every pair whose database is present, gold vs gold (+ trailing space), cold gold "
                    "cache",
        "dev_pairs_total": len(records),
        "dev_pairs_without_database": len(records) - len(with_db),
        "runs": runs,
    }
    if args.out:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
