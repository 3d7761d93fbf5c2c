"""`--suite spider2-lite`: Spider 2.0-lite questions, their schemas, and scoring against gold result CSVs.

Questions: every line of ``spider2-lite/spider2-lite.jsonl`` whose database has schema metadata in
``resource/databases`` (all local SQLite databases; the BigQuery/Snowflake databases of questions with public
gold SQL). Schemas come from the prepare step's reader (`t2s_fast.data.spider2`), so prompts look like the
training prompts. Without the gold SQL (which must not leak into an evaluation prompt) a schema that is too long
is shortened by dropping sample values, then by keeping the leading tables that fit.

Execution: only SQLite questions can run locally, and only when their database file is present
(``<db_root>/<db>.sqlite``, or Spider 2.0's own ``resource/databases/spider2-localdb/``); the shared copy has
none. BigQuery and Snowflake questions need cloud accounts. Questions that cannot run still get predictions
and are listed in the report as not executable, with the reason. Executable ones are compared with the gold
CSVs by the Spider 2.0 rules (`t2s_fast.sql.spider2.spider2_match_any`).
"""

from __future__ import annotations

from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.evaluate.questions import Question, QuestionSet
from t2s_fast.jsonl import read_jsonl

LITE_DIR = "spider2-lite"
CHARS_PER_TOKEN = 3.0  # conservative for CREATE TABLE text with Qwen's tokenizer: shorten a little early
CLOUD_REASON = {"bigquery": "a BigQuery question: it runs only on Google BigQuery (cloud credentials), not locally",
                "snowflake": "a Snowflake question: it runs only on Snowflake (cloud account), not locally"}


def _lite_root(spider_dir: str | Path) -> Path:
    base = Path(spider_dir)
    for cand in (base, base / LITE_DIR):
        if (cand / "spider2-lite.jsonl").is_file():
            return cand
    raise T2SError(f"{base}: no spider2-lite.jsonl (give the Spider 2.0 folder or its spider2-lite folder "
                   "as --spider-dir)")


def _fit_schema(schema, max_chars: int, sample_values: int) -> tuple[str, str]:
    """(schema text, how it was shortened) within ``max_chars``; never uses the gold SQL."""
    from t2s_fast.schema import render_schema

    if schema.est_chars() <= max_chars:
        full = render_schema(schema.materialize(), sample_values=sample_values > 0)
        if len(full) <= max_chars:
            return full, "full"
        bare = render_schema(schema.materialize(), sample_values=False)
        if len(bare) <= max_chars:
            return bare, "no_sample_values"
    kept, used = [], 0
    for entry in schema.entries:
        if used + entry.est_chars + 2 > max_chars:
            break
        kept.append(entry)
        used += entry.est_chars + 2
    if not kept:
        kept = schema.entries[:1]
    text = render_schema(schema.materialize(kept), sample_values=False)
    return text, f"first_{len(kept)}_of_{len(schema.entries)}_tables"


def _local_db(db: str, roots: list[Path]) -> Path | None:
    for root in roots:
        for cand in (root / f"{db}.sqlite", root / db / f"{db}.sqlite"):
            if cand.is_file():
                return cand
    return None


def load_spider2_lite(spider_dir: str | Path, *, dbs: list[str], limit: int | None, sample_values: int = 3,
                      db_root: str | Path | None = None, max_prompt_tokens: int = 7936) -> QuestionSet:
    try:
        from t2s_fast.data.spider2 import external_knowledge_for, Spider2Question, SchemaResolver, dialect_of
    except ImportError as exc:  # the prepare step's reader is what makes prompts match training
        raise T2SError(f"--suite spider2-lite needs t2s_fast.data.spider2 ({exc})") from None
    from t2s_fast.sql.spider2 import find_eval_suite, gold_csv_paths, load_eval_settings

    lite = _lite_root(spider_dir)
    spider2_root = lite.parent
    rows = read_jsonl(lite / "spider2-lite.jsonl", required=("instance_id", "db", "question"))
    if dbs:
        rows = [r for r in rows if r["db"] in set(dbs)]
    if limit:
        rows = rows[:limit]
    gold_dir = find_eval_suite(lite)
    settings = load_eval_settings(gold_dir / "spider2lite_eval.jsonl")
    resolver = SchemaResolver(lite / "resource" / "databases", sample_values)
    db_roots = ([Path(db_root)] if db_root else []) + [lite / "resource" / "databases" / "spider2-localdb"]
    max_chars = int(CHARS_PER_TOKEN * max(256, max_prompt_tokens - 400))
    questions, skipped = [], []
    for row in rows:
        iid, db = row["instance_id"], row["db"]
        dialect = dialect_of(iid)
        gold_sql = gold_dir / "sql" / f"{iid}.sql"  # kept for the report, never read into the prompt
        # No gold SQL here: the reader would look into it to add datasets described under another database's
        # folder (bq376, sf_bq233), and which tables the gold reads must not shape an evaluation prompt.
        q = Spider2Question(iid, db, row["question"], row.get("external_knowledge"), Path("/dev/null"), "lite")
        schema = resolver.schema_for(q, dialect)
        if schema is None:
            skipped.append({"qid": iid, "db_id": db, "reason": f"no schema metadata for {db!r} ({dialect})"})
            continue
        schema_text, shortening = _fit_schema(schema, max_chars, sample_values)
        ek_text, _ = external_knowledge_for(spider2_root, row.get("external_knowledge"))
        golds = gold_csv_paths(gold_dir / "exec_result", iid)
        db_path = _local_db(db, db_roots) if dialect == "sqlite" else None
        if dialect != "sqlite":
            reason = CLOUD_REASON[dialect]
        elif db_path is None:
            reason = ("its local SQLite database file is not here (Spider 2.0 ships the local databases "
                      "separately; pass --db-root DIR holding <db>.sqlite)")
        elif not golds:
            reason = "no gold result CSV"
        else:
            reason = None
        questions.append(Question(
            qid=iid, db_id=db, question=row["question"].strip(), gold=gold_sql.read_text().strip() if gold_sql.is_file() else None,
            dialect=dialect, external_knowledge=ek_text, db_path=db_path, schema_text=schema_text,
            not_executable=reason,
            extra={"scorer": score_spider2, "gold_csvs": [str(p) for p in golds],
                   "setting": settings.get(iid), "hardness": "n/a", "schema_shortening": shortening},
        ))
    return QuestionSet(questions, skipped, str(lite / "spider2-lite.jsonl"))


def score_spider2(q: Question, rec: dict, cfg) -> dict:
    """Execute the prediction on the local SQLite file and compare with any gold CSV (Spider 2.0 rules)."""
    from t2s_fast.sql.compare import read_csv_table
    from t2s_fast.sql.executor import run_jobs
    from t2s_fast.sql.spider2 import pred_table_from_result, spider2_match_any

    res = run_jobs([(q.db_path, rec["pred"])], workers=1, timeout_s=cfg.timeout)[0]
    if not res.ok:
        return dict(rec, exec_match=False, error_kind=res.error_kind, error=res.error_text(), hardness="n/a")
    if res.truncated:  # more rows than the executor keeps: a partial result must not be compared as whole
        return dict(rec, exec_match=False, error_kind=None, error=None, hardness="n/a", truncated=True)
    golds = [read_csv_table(p)[1] for p in q.extra["gold_csvs"]]
    match = spider2_match_any(pred_table_from_result(res.columns, res.rows), golds, q.extra.get("setting"))
    return dict(rec, exec_match=bool(match), error_kind=None, error=None, hardness="n/a")
