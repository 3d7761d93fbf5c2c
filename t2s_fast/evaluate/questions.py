"""The questions an evaluation asks: Spider 1.0 dev, Spider 2.0-lite, or a user's prepared JSONL file.

Each question gets a stable id (its position in the source file, or its own id), so predictions from an
earlier run with another --limit/--db still line up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.jsonl import iter_numbered_jsonl, read_json


@dataclass
class Question:
    qid: str
    db_id: str
    question: str
    gold: str | None
    dialect: str = "sqlite"
    messages: list[dict] | None = None  # prepared messages (the prompt is built from these when given)
    external_knowledge: str | None = None
    db_path: Path | None = None  # local SQLite file, when there is one
    schema_text: str | None = None  # rendered schema when it does not come from db_path
    not_executable: str | None = None  # why its SQL cannot be executed here (scored as not executable)
    schema_level: str = "full"  # a rebuilt schema's level (`data/schema_text.py`), as prepare wrote the line
    extra: dict = field(default_factory=dict)  # suite-specific scoring data (Spider 2.0 gold CSVs, settings)


@dataclass
class QuestionSet:
    questions: list[Question]
    skipped: list[dict]  # {qid, db_id, reason}: could not even be prompted (no schema)
    source: str  # what was read, for the report


def sqlite_path(db_root: Path, db_id: str) -> Path:
    """<db_root>/<db_id>/<db_id>.sqlite: the Spider layout, which the scorer (t2s_fast.sql.scorer) reads."""
    return db_root / db_id / f"{db_id}.sqlite"


def _select(items: list, dbs: list[str], limit: int | None, db_of) -> list:
    if dbs:
        wanted = set(dbs)
        items = [it for it in items if db_of(it) in wanted]
    return items[:limit] if limit else items


def load_spider1(spider_dir: str | Path, split: str, *, dbs: list[str], limit: int | None) -> QuestionSet:
    root = Path(spider_dir)
    path = root / f"{split}.json"
    if not path.is_file():
        raise T2SError(f"{path}: not found (is --spider-dir the Spider 1.0 folder, and --split {split!r} right?)")
    data = read_json(path)
    if not isinstance(data, list):
        raise T2SError(f"{path}: expected a JSON list of questions")
    for i, item in enumerate(data):
        missing = [k for k in ("db_id", "question", "query") if not isinstance(item, dict) or k not in item]
        if missing:
            raise T2SError(f"{path}: question {i} has no {', '.join(map(repr, missing))}")
    known = {item["db_id"] for item in data}
    unknown = [d for d in dbs if d not in known]
    if unknown:
        raise T2SError(f"--db {', '.join(unknown)}: no such database in {path}")
    indexed = _select(list(enumerate(data)), dbs, limit, lambda it: it[1]["db_id"])
    db_root = root / "database"
    questions, skipped = [], []
    for i, item in indexed:
        qid = f"{split}-{i:04d}"
        db_path = sqlite_path(db_root, item["db_id"])
        if not db_path.is_file():
            skipped.append({"qid": qid, "db_id": item["db_id"], "reason": f"database file missing: {db_path}"})
            continue
        questions.append(Question(qid=qid, db_id=item["db_id"], question=item["question"], gold=item["query"],
                                  db_path=db_path))
    return QuestionSet(questions, skipped, str(path))


def jsonl_question_id(rec: dict, lineno: int) -> str:
    """The id of a prepared-format line: its own id, else its line number in the file."""
    return str(rec.get("id") or rec.get("instance_id") or f"line-{lineno:05d}")


def load_jsonl(questions_file: str | Path, db_root: str | Path | None, *, dbs: list[str],
               limit: int | None) -> QuestionSet:
    """Prepared-format lines: db_id, question, sql, dialect (default sqlite), optional id and messages."""
    path = Path(questions_file)
    rows = list(iter_numbered_jsonl(path, required=("db_id", "question")))  # file line numbers, blanks counted
    rows = _select(rows, dbs, limit, lambda it: it[1]["db_id"])
    root = Path(db_root) if db_root else None
    questions, skipped = [], []
    for lineno, rec in rows:
        qid = jsonl_question_id(rec, lineno)
        dialect = str(rec.get("dialect") or "sqlite").lower()
        messages = rec.get("messages")
        if messages is not None and not (isinstance(messages, list) and all(isinstance(m, dict) and "role" in m
                                                                             and "content" in m for m in messages)):
            raise T2SError(f"{path}:{lineno}: 'messages' must be a list of {{role, content}} objects")
        db_path = sqlite_path(root, rec["db_id"]) if root else None
        reason = None
        if dialect != "sqlite":
            reason = f"{dialect} SQL cannot be executed locally"
        elif db_path is None or not db_path.is_file():
            reason = ("no local SQLite database (pass --db-root)" if root is None
                      else f"database file missing: {db_path}")
        if messages is None and (db_path is None or not db_path.is_file()):
            skipped.append({"qid": qid, "db_id": rec["db_id"], "reason": f"no messages and {reason}"})
            continue
        questions.append(Question(qid=qid, db_id=rec["db_id"], question=rec["question"], gold=rec.get("sql"),
                                  dialect=dialect, messages=messages, external_knowledge=rec.get("external_knowledge"),
                                  db_path=db_path if db_path is not None and db_path.is_file() else None,
                                  not_executable=reason if reason else (None if rec.get("sql") else "no gold SQL")))
    return QuestionSet(questions, skipped, str(path))


def heldout_db_root(questions_file: str | Path, db_root: str | Path | None, spider_dir: str | Path | None) -> Path:
    """Where a held-out file's SQLite databases are: --db-root, else --spider-dir/database, else the Spider
    folder `t2s-fast prepare` read (its prepare_stats.json beside the questions file)."""
    if db_root:
        return Path(db_root)
    if spider_dir:
        return Path(spider_dir) / "database"
    stats = Path(questions_file).parent / "prepare_stats.json"
    spider = (read_json(stats).get("config") or {}).get("spider_dir") if stats.is_file() else None
    if not spider:
        raise T2SError(f"--suite heldout --questions {questions_file}: cannot find its databases; pass --db-root DIR "
                       f"(or --spider-dir, the Spider 1.0 folder with database/); no prepare_stats.json beside it "
                       "names the Spider folder")
    return Path(spider) / "database"


# the schema levels a prompt can be rebuilt at without the gold SQL (the later levels keep what the gold SQL reads)
REBUILDABLE_LEVELS = ("full", "no_sample_values")


def prepared_levels(questions_file: str | Path) -> dict[str, str]:
    """{line id: schema level} of the lines `prepare` shortened, from the prepare_stats.json beside the file
    ({} without one: every line was written at level full, or the file is not `prepare`'s)."""
    stats = Path(questions_file).parent / "prepare_stats.json"
    if not stats.is_file():
        return {}
    shortened = read_json(stats).get("shortened") or []
    return {str(s["id"]): str(s["level"]) for s in shortened if isinstance(s, dict) and "id" in s and "level" in s}


def load_heldout(questions_file: str | Path, db_root: str | Path | None, spider_dir: str | Path | None, *,
                 dbs: list[str], limit: int | None) -> QuestionSet:
    """A held-out prepared file (stage1_valid.jsonl) scored against its own SQLite databases.

    Prompts are rebuilt from each database (so --question-values and --sample-values apply) at the schema level
    `prepare` wrote for the line (prepare_stats.json beside the file: a schema too long for --max-seq-length
    lost its sample values), so a line gets the prompt `--suite jsonl` reads from the file. A line `prepare`
    shortened with its gold SQL (keeping only the tables it reads) is skipped: its prompt would give the answer
    away, and without the gold SQL it cannot be rebuilt."""
    root = heldout_db_root(questions_file, db_root, spider_dir)
    if not root.is_dir():
        raise T2SError(f"--suite heldout: database folder {root} not found (pass --db-root DIR)")
    qset = load_jsonl(questions_file, root, dbs=dbs, limit=limit)
    levels = prepared_levels(questions_file)
    rebuilt, skipped = [], list(qset.skipped)
    for q in qset.questions:
        q.messages = None
        q.schema_level = levels.get(q.qid, "full")
        if q.db_path is None:
            skipped.append({"qid": q.qid, "db_id": q.db_id, "reason": q.not_executable or "no database"})
        elif q.schema_level not in REBUILDABLE_LEVELS:
            skipped.append({"qid": q.qid, "db_id": q.db_id,
                            "reason": f"prepare shortened its schema with the gold SQL (level {q.schema_level}); "
                                      "prepare again with a larger --max-seq-length to ask it"})
        else:
            rebuilt.append(q)
    return QuestionSet(rebuilt, skipped, f"{qset.source} (databases in {root})")


def load_spider2_lite(spider_dir: str | Path, *, dbs: list[str], limit: int | None, sample_values: int = 3,
                      db_root: str | Path | None = None, max_prompt_tokens: int = 7936) -> QuestionSet:
    """`--suite spider2-lite`: every line of ``spider2-lite.jsonl`` whose database has schema metadata, read by
    `t2s_fast.data.spider2` and its schema text from the one `schema_text`, as in training but without the gold
    SQL (a schema that is too long keeps the leading tables that fit, estimated at CHARS_PER_TOKEN).

    Only SQLite questions whose database file is here can be executed (`t2s_fast.sql.spider2.score_spider2`);
    BigQuery and Snowflake ones need cloud accounts. Those still get predictions, and the report lists them as
    not executable, with the reason."""
    from t2s_fast.data.schema_text import Budget, schema_text
    from t2s_fast.data.spider2 import lite_root, read_lite_questions
    from t2s_fast.dialects import CLOUD_REASON
    from t2s_fast.sql.spider2 import find_eval_suite, gold_csv_paths, load_eval_settings, score_spider2

    lite = lite_root(spider_dir)
    gold_dir = find_eval_suite(lite)
    settings = load_eval_settings(gold_dir / "spider2lite_eval.jsonl")
    budget = Budget(max(256, max_prompt_tokens - 400))  # about 400 tokens for the rest of the prompt
    questions, skipped = [], []
    for lq in read_lite_questions(lite, dbs=dbs, limit=limit, sample_values=sample_values, db_root=db_root):
        if lq.schema is None:
            skipped.append({"qid": lq.id, "db_id": lq.db, "reason": f"no schema metadata for {lq.db!r} ({lq.dialect})"})
            continue
        fitted = schema_text(lq.schema, lq.dialect, budget)
        golds = gold_csv_paths(gold_dir / "exec_result", lq.id)
        gold_sql = gold_dir / "sql" / f"{lq.id}.sql"  # kept for the report, never read into the prompt
        if lq.dialect != "sqlite":
            reason = CLOUD_REASON[lq.dialect]
        elif lq.db_path is None:
            reason = ("its local SQLite database file is not here (Spider 2.0 ships the local databases "
                      "separately; pass --db-root DIR holding <db>.sqlite)")
        else:
            reason = None if golds else "no gold result CSV"
        questions.append(Question(
            qid=lq.id, db_id=lq.db, question=lq.question, dialect=lq.dialect,
            gold=gold_sql.read_text().strip() if gold_sql.is_file() else None,
            external_knowledge=lq.external_knowledge, db_path=lq.db_path, schema_text=fitted.text,
            not_executable=reason,
            extra={"scorer": score_spider2, "gold_csvs": [str(p) for p in golds],
                   "setting": settings.get(lq.id), "hardness": "n/a", "schema_shortening": fitted.level},
        ))
    return QuestionSet(questions, skipped, str(lite / "spider2-lite.jsonl"))
