"""Execution accuracy (EX) of predicted SQL against gold SQL on Spider-style SQLite databases.

``score_records`` is the library function (the evaluation harness calls it); ``score_file`` is what
``t2s-fast score`` runs. Per record: the gold and predicted queries are prepared exactly as the test-suite
evaluator prepares them (``compare.official_postprocess``, DISTINCT stripped from both unless
``keep_distinct``), the prediction is transpiled from ``pred_dialect`` to SQLite when that is not SQLite, both
run read-only in a worker pool (``executor.ExecutorPool``), and the results are compared with
``compare.spider1_results_match`` (row order matters only when the gold SQL has ORDER BY).

Records whose database is missing get error kind ``no_database`` and are left out of EX (they are counted
under ``excluded`` and ``errors``), so a partial copy of the databases still gives a meaningful number.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot.errors import SqlglotError

from t2s_fast.errors import T2SError
from t2s_fast.jsonl import iter_numbered_jsonl, write_jsonl
from t2s_fast.sql.compare import gold_has_order_by, official_postprocess, spider1_results_match, strip_distinct
from t2s_fast.sql.executor import DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_ROWS, ExecResult, ExecutorPool
from t2s_fast.sql.hardness import HARDNESS_LEVELS, spider_hardness

GOLD_ERROR = "gold_error"  # the gold query itself failed: a data problem, reported apart from the model's errors


@dataclass
class ScoreConfig:
    spider_dir: Path = field(metadata={"help": "Spider folder or its database/ subfolder (<db_id>/<db_id>.sqlite)."})
    workers: int = field(default=2,
                         metadata={"help": "Worker processes running queries (0 = in this process, not crash-proof)."})
    timeout: float = field(default=30.0, metadata={"help": "Wall-clock limit per query, seconds."})
    keep_distinct: bool = field(default=False, metadata={
        "help": "Keep DISTINCT (the official evaluator strips it from both queries)."})
    pred_dialect: str = field(default="sqlite",
                              metadata={"help": "sqlglot dialect of the predictions; transpiled to SQLite when "
                                                "different."})
    max_rows: int = field(default=DEFAULT_MAX_ROWS, metadata={"help": "Rows fetched per query at most."})
    max_result_bytes: int = field(default=DEFAULT_MAX_RESULT_BYTES,
                                  metadata={"help": "Estimated result bytes per query at most."})
    use_gold_cache: bool = field(default=True, metadata={"help": "Reuse gold results across calls in this process.",
                                                         "cli": False})

    def __post_init__(self):
        self.spider_dir = Path(self.spider_dir)
        check_workers_timeout(self.workers, self.timeout)
        try:
            sqlglot.Dialect.get_or_raise(self.pred_dialect)
        except (ValueError, SqlglotError):
            raise T2SError(f"unknown SQL dialect {self.pred_dialect!r} for --pred-dialect (sqlglot names: sqlite, "
                           "bigquery, snowflake, postgres, mysql, ...)") from None


def check_workers_timeout(workers: int, timeout_s: float) -> None:
    """--workers and --timeout as `score` and `eval` take them (0 workers: queries run in this process)."""
    if workers < 0:
        raise T2SError(f"--workers {workers}: must be 0 (run the queries in this process) or more")
    if not timeout_s > 0:
        raise T2SError(f"--timeout {timeout_s:g}: must be a positive number of seconds per query")


@dataclass
class ScoreFileConfig:
    """Which predictions `t2s-fast score` reads, and where its results go (ScoreConfig says how to score)."""

    pred: Path = field(metadata={"help": "JSONL with db_id, gold and pred per line."})
    out: Path | None = field(default=None, metadata={"help": "Write the scored lines here (JSONL); a missing folder "
                                                             "is created (and said so)."})
    json: bool = field(default=False, metadata={"help": "Print one JSON object instead of a table."})


def resolve_db_root(db_root: str | os.PathLike) -> Path:
    """Accept the Spider folder itself (holding ``database/``) or its ``database`` folder."""
    root = Path(db_root)
    if (root / "database").is_dir():
        return root / "database"
    if not root.is_dir():
        raise T2SError(f"{root}: database folder not found (give the Spider folder or its database/ subfolder)")
    return root


def db_path_for(db_root: Path, db_id: str) -> Path:
    return db_root / db_id / f"{db_id}.sqlite"


# Gold results per (database file, its size and mtime, prepared SQL): gold queries repeat across adapters,
# epochs and runs in one process (the evaluation harness scores several adapters on the same dev set).
_GOLD_CACHE: dict[tuple, ExecResult] = {}


def clear_gold_cache() -> None:
    _GOLD_CACHE.clear()


def _cache_key(db_path: Path, sql: str) -> tuple | None:
    try:
        st = db_path.stat()
    except OSError:
        return None
    return (str(db_path.resolve()), st.st_mtime_ns, st.st_size, sql)


def prepare_gold(gold: str, keep_distinct: bool) -> str:
    gold = official_postprocess(gold)
    return gold if keep_distinct else strip_distinct(gold)


def prepare_pred(pred, cfg: ScoreConfig) -> tuple[str | None, str | None]:
    """(SQLite text to run, None) or (None, parse error message)."""
    if not isinstance(pred, str) or not pred.strip():
        return None, "empty prediction"
    sql = pred
    if cfg.pred_dialect.lower() != "sqlite":
        try:
            statements = sqlglot.transpile(sql, read=cfg.pred_dialect, write="sqlite")
        except SqlglotError as exc:
            return None, f"cannot parse as {cfg.pred_dialect}: {str(exc).splitlines()[0]}"
        statements = [s for s in statements if s.strip()]
        if len(statements) != 1:
            return None, f"expected one statement, found {len(statements)}"
        sql = statements[0]
    sql = official_postprocess(sql)
    return (sql if cfg.keep_distinct else strip_distinct(sql)), None


def _check_record(i: int, rec) -> None:
    if not isinstance(rec, dict):
        raise T2SError(f"record {i}: expected an object with db_id, gold and pred")
    for key in ("db_id", "gold"):
        if not isinstance(rec.get(key), str) or not rec.get(key):
            raise T2SError(f"record {i}: field {key!r} must be a non-empty string")
    if "pred" not in rec:
        raise T2SError(f"record {i}: missing field 'pred'")


def score_records(records: list[dict], cfg: ScoreConfig, progress: bool = False) -> list[dict]:
    """Copies of ``records`` with ``exec_match``, ``error`` ("<kind>: message" or None), ``error_kind`` and
    ``hardness`` added (plus ``truncated`` when the prediction's result hit the row/byte cap)."""
    for i, rec in enumerate(records):
        _check_record(i, rec)
    db_root = resolve_db_root(cfg.spider_dir)

    plans = []  # per record: (db_path, gold_sql, pred_sql, pred_error)
    jobs: dict[tuple[str, str], int] = {}  # unique (db, sql) -> job index
    for rec in records:
        db_path = db_path_for(db_root, rec["db_id"])
        gold_sql = prepare_gold(rec["gold"], cfg.keep_distinct)
        pred_sql, pred_error = prepare_pred(rec.get("pred"), cfg)
        plans.append((db_path, gold_sql, pred_sql, pred_error))
        if not db_path.is_file():
            continue
        key = _cache_key(db_path, gold_sql)
        if not (cfg.use_gold_cache and key in _GOLD_CACHE):
            jobs.setdefault((str(db_path), gold_sql), len(jobs))
        if pred_sql is not None:
            jobs.setdefault((str(db_path), pred_sql), len(jobs))

    job_list = list(jobs)
    results = _run_jobs(job_list, cfg, progress)
    by_job = dict(zip(job_list, results))

    scored = []
    for rec, (db_path, gold_sql, pred_sql, pred_error) in zip(records, plans):
        out = dict(rec)
        out["hardness"] = spider_hardness(rec["gold"])
        match, kind, message, truncated = False, None, None, False
        if not db_path.is_file():
            kind, message = "no_database", f"database file not found: {db_path}"
        else:
            key = _cache_key(db_path, gold_sql)
            gold_res = by_job.get((str(db_path), gold_sql)) or _GOLD_CACHE.get(key)
            if cfg.use_gold_cache and gold_res is not None and gold_res.ok and not gold_res.truncated:
                _GOLD_CACHE[key] = gold_res
            if gold_res is None or not gold_res.ok:
                failure = gold_res.error_text() if gold_res else "not run"
                kind, message = GOLD_ERROR, f"the gold query failed ({failure})"
            elif gold_res.truncated:
                kind = GOLD_ERROR
                message = f"the gold result is too large to compare ({gold_res.error}); raise max_rows"
            elif pred_error is not None:
                kind, message = "parse", pred_error
            else:
                pred_res = by_job[(str(db_path), pred_sql)]
                if not pred_res.ok:
                    kind, message = pred_res.error_kind, pred_res.error
                elif pred_res.truncated:
                    truncated = True  # more rows than the (complete) gold result: wrong, not an error
                else:
                    match = spider1_results_match(gold_res.rows, pred_res.rows,
                                                  order_matters=gold_has_order_by(gold_sql))
        out["exec_match"] = bool(match)
        out["error_kind"] = kind
        out["error"] = None if kind is None else f"{kind}: {message}"
        if truncated:
            out["truncated"] = True
        scored.append(out)
    return scored


def _run_jobs(jobs: list[tuple[str, str]], cfg: ScoreConfig, progress: bool) -> list[ExecResult]:
    if not jobs:
        return []
    pool = ExecutorPool(workers=cfg.workers, timeout_s=cfg.timeout, max_rows=cfg.max_rows,
                        max_result_bytes=cfg.max_result_bytes)
    with pool:
        if not progress:
            return pool.run(jobs)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("executing queries"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task("run", total=len(jobs), rate="")

            def update(done: int) -> None:
                elapsed = bar.tasks[0].elapsed or 1e-9
                bar.update(task, completed=done, rate=f"{done / elapsed:.0f} queries/s")

            return pool.run(jobs, progress=update)


def summarize(scored: list[dict]) -> dict:
    """``ex`` and ``n`` over records with a database; ``by_hardness`` {level: {n, ex}}; ``errors`` {kind: count}.

    Records with error kind ``no_database``, ``gold_error`` (the gold query failed: a data problem, not the
    model's; the official evaluator stops on it) or with ``exec_match`` None (not scored by execution) are left
    out of ``ex`` and ``n`` and counted in ``excluded_no_database`` / ``excluded_gold_error`` /
    ``excluded_not_scored``."""
    data_problems = ("no_database", GOLD_ERROR)
    counted = [r for r in scored if r.get("error_kind") not in data_problems and r.get("exec_match") is not None]
    n_gold_error = sum(1 for r in scored if r.get("error_kind") == GOLD_ERROR)
    n_not_scored = sum(1 for r in scored if r.get("error_kind") not in data_problems and r.get("exec_match") is None)
    n = len(counted)
    levels = list(HARDNESS_LEVELS) + sorted({r.get("hardness", "unknown") for r in counted} - set(HARDNESS_LEVELS))
    by_hardness = {}
    for level in levels:
        group = [r for r in counted if r.get("hardness") == level]
        by_hardness[level] = {"n": len(group),
                              "ex": (sum(r["exec_match"] for r in group) / len(group)) if group else None}
    errors = Counter(r["error_kind"] for r in scored if r.get("error_kind"))
    return {
        "ex": (sum(r["exec_match"] for r in counted) / n) if n else None,
        "n": n,
        "n_total": len(scored),
        "excluded_no_database": len(scored) - n - n_not_scored - n_gold_error,
        "excluded_gold_error": n_gold_error,
        "excluded_not_scored": n_not_scored,
        "by_hardness": by_hardness,
        "errors": dict(sorted(errors.items())),
    }


def score_file(pred_path: str | os.PathLike, out_path: str | os.PathLike | None, cfg: ScoreConfig,
               progress: bool = False) -> dict:
    """Score a JSONL of {db_id, gold, pred, ...}; write the scored lines atomically to ``out_path``."""
    pred_path = Path(pred_path)
    numbered = list(iter_numbered_jsonl(pred_path, required=("db_id", "gold", "pred")))
    if not numbered:
        raise T2SError(f"{pred_path}: no predictions in the file (one JSON object per line: db_id, gold, pred)")
    for i, (lineno, rec) in enumerate(numbered):
        try:
            _check_record(i, rec)
        except T2SError as exc:
            raise T2SError(f"{pred_path}:{lineno}: {str(exc).split(': ', 1)[1]}") from None
    records = [rec for _, rec in numbered]
    scored = score_records(records, cfg, progress=progress)
    if out_path is not None:
        write_jsonl(out_path, scored)
    return summarize(scored)
