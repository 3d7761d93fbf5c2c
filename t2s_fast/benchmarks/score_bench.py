"""`t2s-fast bench score`: scoring throughput of the executor (t2s_fast.sql), one workload:
every Spider dev pair whose database exists, gold vs gold-plus-a-space (so both
queries of every pair really execute), gold cache cleared before each run, best of --repeats."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from t2s_fast.errors import T2SError


@dataclass
class BenchScoreConfig:
    spider_dir: str = field(default="",
                            metadata={"help": "Spider 1.0 folder (dev.json + databases); default "
                                              "../shared/data/spider1."})
    workers: tuple[int, ...] = field(default=(1, 2), metadata={"help": "Worker counts to measure (repeatable)."})
    repeats: int = field(default=2, metadata={"help": "Runs per worker count; the best is reported."})
    limit: int | None = field(default=None, metadata={"help": "Only the first N pairs (default: all)."})
    out_dir: str = field(default="runs/bench", metadata={"help": "Where the result JSON goes."})
    tag: str | None = field(default=None, metadata={"help": "Suffix of the result file name."})


def bench_score(cfg: BenchScoreConfig) -> dict:
    from t2s_fast import paths
    from t2s_fast.benchmarks import results
    from t2s_fast.sql import scorer

    spider_dir = Path(cfg.spider_dir or paths.SPIDER1_DIR)
    if not (spider_dir / "dev.json").is_file():
        raise T2SError(f"--spider-dir {spider_dir}: no dev.json there")
    dev = json.loads((spider_dir / "dev.json").read_text())
    db_root = scorer.resolve_db_root(spider_dir)
    records = [{"db_id": ex["db_id"], "gold": ex["query"], "pred": ex["query"] + " "} for ex in dev
               if scorer.db_path_for(db_root, ex["db_id"]).is_file()][: cfg.limit or None]
    rows = []
    for workers in cfg.workers:
        times = []
        for _ in range(max(1, cfg.repeats)):
            scorer.clear_gold_cache()
            t0 = time.perf_counter()
            scored = scorer.score_records(records, scorer.ScoreConfig(spider_dir=spider_dir, workers=workers))
            times.append(time.perf_counter() - t0)
        best = min(times)
        summary = scorer.summarize(scored)
        rows.append({"workers": workers, "pairs": len(records), "queries_executed": 2 * len(records),
                     "wall_s_runs": [round(t, 3) for t in times], "wall_s_best": round(best, 3),
                     "pairs_per_s": round(len(records) / best, 1), "ex": summary.get("ex"),
                     "errors": summary.get("errors")})
    settings = {**asdict(cfg), "spider_dir": str(spider_dir)}
    settings.pop("out_dir")
    result = results.make_result("score", settings=settings, rows=rows,
                                 notes=["gold vs gold + ' ': both queries of each pair execute; cold gold cache"])
    result["path"] = str(results.write_result(result, cfg.out_dir, cfg.tag))
    return result
