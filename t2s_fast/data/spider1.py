"""Spider 1.0 training questions (train_spider.json + train_others.json) with schemas read from SQLite.

Each database is read once (tables, keys, a few distinct sample values per column) and shared by all of
its questions. A question whose database file is missing (baseball_1, soccer_1 in the shared copy) is
dropped with that reason; a ``db_id`` that ``tables.json`` does not know is bad input (an error).
"""

from __future__ import annotations

from pathlib import Path

from t2s_fast.data.example import Dropped, SourceExample
from t2s_fast.data.lazy_schema import LazySchema
from t2s_fast.errors import T2SError
from t2s_fast.jsonl import read_json
from t2s_fast.schema import read_sqlite_schema

TRAIN_FILES = ("train_spider.json", "train_others.json")


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise T2SError(f"{path}: {what} not found (is --spider-dir the Spider 1.0 folder?)")
    return path


def load_spider1(spider_dir: str | Path, *, sample_values: int = 3) -> tuple[list[SourceExample], list[Dropped], dict]:
    """All training questions of Spider 1.0, in file order; returns (examples, dropped, info)."""
    spider_dir = Path(spider_dir)
    _require(spider_dir, "Spider 1.0 folder")
    tables_path = _require(spider_dir / "tables.json", "tables.json")
    db_root = _require(spider_dir / "database", "database/ folder")
    tables = read_json(tables_path)
    if not isinstance(tables, list):
        raise T2SError(f"{tables_path}: expected a JSON list of databases")
    known_dbs = set()
    for i, t in enumerate(tables):
        if not isinstance(t, dict) or "db_id" not in t:
            raise T2SError(f"{tables_path}: entry {i} has no 'db_id'")
        known_dbs.add(t["db_id"])

    schemas: dict[str, LazySchema | None] = {}
    examples: list[SourceExample] = []
    dropped: list[Dropped] = []
    per_file = {}
    for fname in TRAIN_FILES:
        path = _require(spider_dir / fname, fname)
        data = read_json(path)
        if not isinstance(data, list):
            raise T2SError(f"{path}: expected a JSON list of examples")
        stem = fname.removesuffix(".json")
        per_file[fname] = len(data)
        for i, item in enumerate(data):
            where = f"{path}: example {i}"
            if not isinstance(item, dict):
                raise T2SError(f"{where}: expected a JSON object")
            missing = [k for k in ("db_id", "question", "query") if not isinstance(item.get(k), str)]
            if missing:
                raise T2SError(f"{where}: missing or non-text field(s) {', '.join(map(repr, missing))}")
            db_id = item["db_id"]
            ex_id = f"spider1-{stem}-{i}"
            if db_id not in known_dbs:
                raise T2SError(f"{where}: db_id {db_id!r} is not in {tables_path}")
            if db_id not in schemas:
                db_path = db_root / db_id / f"{db_id}.sqlite"
                schemas[db_id] = (
                    LazySchema.from_schema(read_sqlite_schema(db_path, db_id=db_id, sample_values=sample_values))
                    if db_path.is_file()
                    else None
                )
            schema = schemas[db_id]
            if schema is None:
                dropped.append(Dropped(ex_id, "spider1", db_id, f"database file {db_id}/{db_id}.sqlite is missing"))
                continue
            sql = item["query"].strip()
            if not sql:
                dropped.append(Dropped(ex_id, "spider1", db_id, "empty gold SQL"))
                continue
            examples.append(
                SourceExample(
                    id=ex_id,
                    source="spider1",
                    db_id=db_id,
                    dialect="sqlite",
                    question=item["question"].strip(),
                    sql=sql,
                    schema=schema,
                    group=db_id,
                    db_path=db_root / db_id / f"{db_id}.sqlite",
                )
            )
    info = {
        "examples_per_file": per_file,
        "databases_read": sum(1 for s in schemas.values() if s is not None),
        "databases_missing": sorted(k for k, s in schemas.items() if s is None),
    }
    return examples, dropped, info
