"""Evaluating Spider 2.0 (Spider2-lite): eval settings, gold result CSVs, the any-gold match, and scoring one
prediction by executing it. (Reading Spider 2.0: `t2s_fast.data.spider2`; its dialect rules: `t2s_fast.dialects`.)

Layout (xlang-ai/Spider2 ``spider2-lite/evaluation_suite/gold``): ``spider2lite_eval.jsonl`` holds one line per
question with ``condition_cols`` and ``ignore_order``; ``exec_result/`` holds the gold results as
``<id>.csv`` or, when several answers are acceptable, ``<id>_a.csv``, ``<id>_b.csv`` ... (evaluate.py matches
``^<id>(_[a-z])?\\.csv$``). Comparison rules: ``t2s_fast.sql.compare`` (module docstring).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.jsonl import read_jsonl
from t2s_fast.sql.compare import Table, read_csv_table, spider2_match_multi, table_from_rows


@dataclass
class Spider2EvalSetting:
    instance_id: str
    condition_cols: list = field(default_factory=list)  # [int] or, with several gold CSVs, [[int], ...]
    ignore_order: bool = False  # evaluate.py's default when a question has no setting


def find_eval_suite(spider2_dir: str | Path) -> Path:
    """The ``evaluation_suite/gold`` folder from the Spider2 root, ``spider2-lite`` or the gold folder itself."""
    base = Path(spider2_dir)
    for cand in (base, base / "gold", base / "evaluation_suite" / "gold",
                 base / "spider2-lite" / "evaluation_suite" / "gold"):
        if (cand / "spider2lite_eval.jsonl").is_file():
            return cand
    raise T2SError(f"{base}: no spider2lite_eval.jsonl found (expected spider2-lite/evaluation_suite/gold under it)")


def load_eval_settings(path: str | Path) -> dict[str, Spider2EvalSetting]:
    """``spider2lite_eval.jsonl`` (or a folder holding it) -> {instance_id: setting}."""
    path = Path(path)
    if path.is_dir():
        path = find_eval_suite(path) / "spider2lite_eval.jsonl"
    settings = {}
    for rec in read_jsonl(path, required=("instance_id",)):
        settings[rec["instance_id"]] = Spider2EvalSetting(
            instance_id=rec["instance_id"],
            condition_cols=list(rec.get("condition_cols") or []),
            ignore_order=bool(rec.get("ignore_order", False)),
        )
    return settings


def gold_csv_paths(exec_result_dir: str | Path, instance_id: str) -> list[Path]:
    """The gold CSVs of one question, sorted (``<id>.csv`` or ``<id>_a.csv``, ``<id>_b.csv`` ...)."""
    folder = Path(exec_result_dir)
    if not folder.is_dir() and (folder / "exec_result").is_dir():
        folder = folder / "exec_result"
    pattern = re.compile(rf"^{re.escape(instance_id)}(_[a-z])?\.csv$")
    return sorted(p for p in folder.glob(f"{instance_id}*.csv") if pattern.match(p.name))


def load_gold_tables(exec_result_dir: str | Path, instance_id: str) -> list[Table]:
    return [read_csv_table(p)[1] for p in gold_csv_paths(exec_result_dir, instance_id)]


def spider2_match_any(pred_table: Table, gold_tables: list[Table], settings: Spider2EvalSetting | dict | None) -> bool:
    """True if the predicted table matches any of the gold tables under the question's settings."""
    if settings is None:
        condition_cols, ignore_order = [], False
    elif isinstance(settings, dict):
        condition_cols, ignore_order = settings.get("condition_cols") or [], bool(settings.get("ignore_order", False))
    else:
        condition_cols, ignore_order = settings.condition_cols, settings.ignore_order
    return spider2_match_multi(pred_table, gold_tables, condition_cols=condition_cols, ignore_order=ignore_order)


def pred_table_from_result(columns: list[str] | None, rows: list[tuple] | None) -> Table:
    """An ExecResult's rows as a Spider2 column table (after the CSV round trip the official evaluator does)."""
    return table_from_rows(columns or [], rows or [])


def score_spider2(q, rec: dict, cfg) -> dict:
    """Execute the prediction on the question's local SQLite file and compare with any of its gold CSVs (Spider
    2.0 rules). ``q``: an eval question (``t2s_fast.evaluate.questions.Question``) with ``db_path`` and
    ``extra["gold_csvs"]``/``extra["setting"]``; ``cfg``: the eval config (its ``timeout``)."""
    from t2s_fast.sql.executor import run_jobs

    res = run_jobs([(q.db_path, rec["pred"])], workers=1, timeout_s=cfg.timeout)[0]
    if not res.ok:
        return dict(rec, exec_match=False, error_kind=res.error_kind, error=res.error_text(), hardness="n/a")
    if res.truncated:  # more rows than the executor keeps: a partial result must not be compared as whole
        return dict(rec, exec_match=False, error_kind=None, error=None, hardness="n/a", truncated=True)
    golds = [read_csv_table(p)[1] for p in q.extra["gold_csvs"]]
    match = spider2_match_any(pred_table_from_result(res.columns, res.rows), golds, q.extra.get("setting"))
    return dict(rec, exec_match=bool(match), error_kind=None, error=None, hardness="n/a")
