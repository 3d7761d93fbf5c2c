"""Reading Spider 2.0: the questions with public gold SQL (training), the Spider2-lite questions eval asks, and
their schemas from the DDL/metadata files. (Its dialect rules: `t2s_fast.dialects`; its evaluation rules:
`t2s_fast.sql.spider2`.)

Which questions for training (see ../shared/data/spider2/README.md for the layout):

- Spider2-lite: every question of ``spider2-lite.jsonl`` whose ``evaluation_suite/gold/sql/<id>.sql`` exists,
  in its own dialect from the id prefix: ``local*`` SQLite, ``bq*``/``ga*`` BigQuery, ``sf*`` Snowflake.
  Gold files of questions no longer in the jsonl (bq078, ...) have no question and are only counted.
- Spider2-snow: every question with a public gold file, Snowflake dialect. 83 of them repeat a Spider2-lite
  Snowflake question (same id, question and database) with a *different* gold query; we keep the lite one
  and list the snow copy as dropped ("duplicate"), so one prompt never has two answers and the lite/snow copy
  can never straddle train and validation. The ``sf_local*`` questions are the SQLite questions moved to
  Snowflake: their schema comes from the SQLite metadata folder, with tables named ``DB.DB.TABLE`` the way the
  Snowflake gold SQL names them.

Schemas: ``DDL.csv`` (``table_name,ddl`` for BigQuery and SQLite, ``table_name,description,DDL`` for
Snowflake, one Snowflake file without a DDL column) plus per-table JSON files (column names/types, sample
rows) where a DDL is missing or empty. Date-sharded tables (``ga_sessions_20170101`` ... with identical
columns) are collapsed into one representative table with a note giving the shard range. When the gold SQL
reads a dataset that is described under another database's folder (bq376, sf_bq233), that folder is added.
Folder names are matched to database names case-insensitively with ``-`` read as ``_`` (``Db-IMDB`` ->
``DB_IMDB``, ``sqlite-sakila`` -> ``SQLITE_SAKILA``).

External knowledge: the questions name markdown documents that the shared copy does not include. When the
document is present (``resource/documents/<name>``) its text goes into the prompt; otherwise the prompt has
no external knowledge and the example is listed in the stats as such (we never invent text).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from t2s_fast.data.ddl import clean_type, parse_ddl
from t2s_fast.data.example import Dropped, SourceExample
from t2s_fast.data.lazy_schema import LazySchema, SchemaEntry
from t2s_fast.dialects import dialect_of
from t2s_fast.errors import T2SError
from t2s_fast.jsonl import read_jsonl
from t2s_fast.schema import Column, Table

LITE_DIR, SNOW_DIR = "spider2-lite", "spider2-snow"
_SHARD_DIGITS = re.compile(r"\d{4,}")  # a year, month or day in a table name: 2017, 201701, 20170101
_QUALIFIED = re.compile(r"([A-Za-z0-9_\-]+)\.([A-Za-z0-9_\-]+)\.([A-Za-z0-9_\-*]+)")


def norm(name: str) -> str:
    return name.lower().replace("-", "_")


# ----------------------------------------------------------------------------------------------- metadata


@dataclass
class _Raw:
    """One table as found in a metadata folder, not parsed yet."""

    short: str  # table name without qualifiers
    ddl: str | None
    meta: dict | None  # the per-table JSON, if any
    description: str | None
    dialect: str  # the DDL's dialect (what sqlglot reads it as)

    def body_key(self) -> str:
        """What two shards of one family share: the DDL without the table's own name, or the column list."""
        if self.ddl:
            return self.ddl.replace(self.short, "\0")
        m = self.meta or {}
        return json.dumps([m.get("column_names"), m.get("column_types")])

    def est_chars(self) -> int:
        if self.ddl:
            return len(self.ddl) + len(self.description or "")
        m = self.meta or {}
        return sum(len(str(n)) + len(str(t)) + 6 for n, t in zip(m.get("column_names") or [],
                                                                 m.get("column_types") or []))


def _read_ddl_csv(path: Path) -> list[dict]:
    csv.field_size_limit(sys.maxsize)  # single DDL cells run to hundreds of kilobytes
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            if "table_name" not in header:
                raise T2SError(f"{path}:1: expected a header with 'table_name' (got {header})")
            rows = []
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise T2SError(f"{path}: row ending at line {reader.line_num}: {len(row)} fields, header has "
                                   f"{len(header)}")
                rows.append(dict(zip(header, row)))
            return rows
    except csv.Error as exc:
        raise T2SError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None


def _read_table_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise T2SError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise T2SError(f"{path}: expected a JSON object describing one table")
    return data


def _scan_folder(folder: Path, dialect: str, notes: dict) -> list[_Raw]:
    metas: dict[str, dict] = {}
    for jpath in sorted(folder.glob("*.json")):
        meta = _read_table_json(jpath)
        name = str(meta.get("table_name") or jpath.stem).split(".")[-1]
        metas[name.lower()] = meta
    raws: list[_Raw] = []
    seen = set()
    ddl_csv = folder / "DDL.csv"
    if ddl_csv.is_file():
        for row in _read_ddl_csv(ddl_csv):
            short = row["table_name"].strip().split(".")[-1]
            if not short or short.lower() in seen:
                continue
            ddl = (row.get("ddl") or "").strip() or None
            meta = metas.get(short.lower())
            if ddl is None and meta is None:
                notes.setdefault("tables_without_ddl", {}).setdefault(str(folder), []).append(short)
                continue
            seen.add(short.lower())
            raws.append(_Raw(short, ddl, meta, (row.get("description") or "").strip() or None, dialect))
    for key, meta in metas.items():  # tables described only by their JSON file
        if key not in seen:
            short = str(meta.get("table_name") or key).split(".")[-1]
            seen.add(key)
            raws.append(_Raw(short, None, meta, None, dialect))
    return raws


def _samples(meta: dict | None, k: int) -> dict[str, list]:
    """Up to k distinct scalar values per column from the JSON's sample rows."""
    out: dict[str, list] = {}
    if not meta or k <= 0:
        return out
    rows = meta.get("sample_rows") or []
    if not isinstance(rows, list):
        return out
    for row in rows:
        if not isinstance(row, dict):
            continue
        for col, val in row.items():
            if val is None or isinstance(val, (dict, list, bool)) or val == "":
                continue
            vals = out.setdefault(col, [])
            if len(vals) < k and val not in vals:
                vals.append(val)
    return out


def _build_table(raw: _Raw, display: str, k: int, description: str | None) -> Table:
    samples = _samples(raw.meta, k)
    if raw.ddl:
        columns, pk = parse_ddl(raw.ddl, raw.dialect)
    else:
        m = raw.meta or {}
        names = m.get("column_names") or []
        types = m.get("column_types") or [""] * len(names)
        descs = m.get("description") or [None] * len(names)
        if not isinstance(descs, list) or len(descs) != len(names):
            descs = [None] * len(names)
        columns = [
            Column(name=str(n), type=clean_type(str(t or "")), description=(str(d) if d else None))
            for n, t, d in zip(names, types, descs)
        ]
        pk = []
    for c in columns:
        c.samples = samples.get(c.name, [])
    return Table(name=display, columns=columns, primary_key=pk, description=description)


def _family_note(shorts: list[str], rep: str) -> str:
    if len(shorts) <= 4:
        listed = ", ".join(shorts)
    else:
        listed = f"{shorts[0]} ... {shorts[-1]}"
    return f"{len(shorts)} date-sharded tables with identical columns ({listed}); shown once as {rep}"


def entries_for_folder(folder: Path, *, dialect: str, qualifier: str, upper_tables: bool, k: int,
                       notes: dict) -> list[SchemaEntry]:
    """Schema entries of one metadata folder. ``qualifier`` prefixes table names (``project.dataset``,
    ``DB.SCHEMA`` or empty for SQLite)."""
    raws = _scan_folder(folder, "sqlite" if folder.parts[-2] == "sqlite" else dialect, notes)
    # Collapse date-sharded families: same name shape (digits of 4+ replaced) and same columns.
    families: dict[tuple[str, str], list[_Raw]] = {}
    order: list[tuple[str, str]] = []
    for raw in raws:
        key = (_SHARD_DIGITS.sub("#", raw.short), raw.body_key()) if _SHARD_DIGITS.search(raw.short) else (raw.short,
                                                                                                           "")
        if key not in families:
            families[key] = []
            order.append(key)
        families[key].append(raw)
    entries = []
    for key in order:
        members = sorted(families[key], key=lambda r: r.short)
        rep = members[-1]  # the latest shard
        short = rep.short.upper() if upper_tables else rep.short
        display = f"{qualifier}.{short}" if qualifier else short
        description = rep.description
        match = {display.lower(), rep.short.lower()}
        if len(members) > 1:
            shorts = [m.short for m in members]
            description = _family_note(shorts, short)
            match.update(s.lower() for s in shorts)
            notes.setdefault("collapsed_shard_families",
                             {})[f"{folder}/{_SHARD_DIGITS.sub('*', rep.short)}"] = len(members)
        entries.append(
            SchemaEntry(
                name=display,
                est_chars=rep.est_chars() + len(description or ""),
                loader=(lambda rep=rep, display=display, description=description: _build_table(rep, display, k,
                                                                                               description)),
                match_names=frozenset(match),
            )
        )
    return entries


# ----------------------------------------------------------------------------------------------- questions


@dataclass
class Spider2Question:
    id: str
    db: str
    question: str
    external_knowledge: str | None
    gold_path: Path
    origin: str  # "lite" | "snow"


@dataclass
class SchemaResolver:
    """Database name -> metadata folders, with the schema of each database built once."""

    root: Path  # spider2-lite/resource/databases
    k: int
    notes: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict)

    def db_folder(self, kind: str, db: str) -> Path | None:
        base = self.root / kind
        if not base.is_dir():
            return None
        want = norm(db)
        for p in sorted(base.iterdir()):
            if p.is_dir() and norm(p.name) == want:
                return p
        return None

    def _index(self, kind: str) -> dict[str, Path]:
        """Qualifier (``project.dataset`` / ``db.schema``, lower-case) -> a folder that describes it."""
        key = ("index", kind)
        if key not in self._cache:
            idx: dict[str, Path] = {}
            base = self.root / kind
            for sub in sorted(base.glob("*/*")) if base.is_dir() else []:
                if sub.is_dir():
                    q = sub.name.lower() if kind == "bigquery" else f"{sub.parent.name}.{sub.name}".lower()
                    idx.setdefault(q, sub)
            self._cache[key] = idx
        return self._cache[key]

    def schema_for(self, q: Spider2Question, dialect: str) -> LazySchema | None:
        sf_local = dialect == "snowflake" and q.id.startswith("sf_local")
        kind = "sqlite" if (dialect == "sqlite" or sf_local) else dialect
        folder = self.db_folder(kind, q.db)
        if folder is None:
            return None
        subfolders = [folder] if kind == "sqlite" else sorted(p for p in folder.iterdir() if p.is_dir())
        if kind != "sqlite":
            # a dataset the gold SQL reads that is described under another database's folder (bq376, sf_bq233)
            own = {(s.name if kind == "bigquery" else f"{folder.name}.{s.name}").lower() for s in subfolders}
            text = q.gold_path.read_text(encoding="utf-8").replace('"', "").replace("`", "")
            for m in _QUALIFIED.finditer(text):
                qual = f"{m.group(1)}.{m.group(2)}".lower()
                extra = self._index(kind).get(qual)
                if qual not in own and extra is not None and extra not in subfolders:
                    subfolders.append(extra)
                    self.notes.setdefault("extra_schema_folders", {}).setdefault(q.id, []).append(
                        str(extra.relative_to(self.root))
                    )
        cache_key = (dialect, sf_local, q.db if sf_local else "", tuple(subfolders))
        if cache_key not in self._cache:
            entries: list[SchemaEntry] = []
            for sub in subfolders:
                if sf_local:
                    qualifier = f"{q.db.upper()}.{q.db.upper()}"
                elif kind == "bigquery":
                    qualifier = sub.name
                elif kind == "snowflake":
                    qualifier = f"{sub.parent.name}.{sub.name}"
                else:
                    qualifier = ""
                entries += entries_for_folder(sub, dialect=dialect, qualifier=qualifier, upper_tables=sf_local,
                                              k=self.k, notes=self.notes)
            self._cache[cache_key] = LazySchema(db_id=q.db, entries=entries)
        schema = self._cache[cache_key]
        return schema if schema.entries else None


def _gold_files(gold_dir: Path) -> dict[str, Path]:
    if not gold_dir.is_dir():
        raise T2SError(f"{gold_dir}: gold SQL folder not found (is --spider2-dir the Spider 2.0 folder?)")
    return {p.stem: p for p in sorted(gold_dir.glob("*.sql"))}


def external_knowledge_for(spider2_dir: Path, name: str | None) -> tuple[str | None, bool]:
    """(text, available). The shared copy leaves the documents out; use one if a user's copy has it."""
    if not name:
        return None, True
    for sub in (LITE_DIR, SNOW_DIR):
        p = spider2_dir / sub / "resource" / "documents" / name
        if p.is_file():
            return p.read_text(encoding="utf-8"), True
    return None, False


def load_spider2(spider2_dir: str | Path, *, sample_values: int = 3) -> tuple[list[SourceExample], list[Dropped], dict]:
    spider2_dir = Path(spider2_dir)
    if not spider2_dir.is_dir():
        raise T2SError(f"{spider2_dir}: Spider 2.0 folder not found")
    lite_jsonl = spider2_dir / LITE_DIR / "spider2-lite.jsonl"
    lite_rows = read_jsonl(lite_jsonl, required=("instance_id", "db", "question"))
    lite_gold = _gold_files(spider2_dir / LITE_DIR / "evaluation_suite" / "gold" / "sql")
    questions: list[Spider2Question] = []
    lite_ids = set()
    for row in lite_rows:
        iid = row["instance_id"]
        lite_ids.add(iid)
        if iid in lite_gold:
            questions.append(Spider2Question(iid, row["db"], row["question"], row.get("external_knowledge"),
                                             lite_gold[iid], "lite"))
    info: dict = {
        "lite_questions": len(lite_rows),
        "lite_gold_files": len(lite_gold),
        "lite_gold_without_question": sorted(set(lite_gold) - lite_ids),
    }
    dropped: list[Dropped] = []
    snow_dir = spider2_dir / SNOW_DIR
    if snow_dir.is_dir():
        snow_rows = read_jsonl(snow_dir / "spider2-snow.jsonl", required=("instance_id", "db_id", "instruction"))
        snow_gold = _gold_files(snow_dir / "evaluation_suite" / "gold" / "sql")
        lite_by_id = {q.id: q for q in questions}
        info.update(snow_questions=len(snow_rows), snow_gold_files=len(snow_gold))
        for row in snow_rows:
            iid = row["instance_id"]
            if iid not in snow_gold:
                continue
            twin = lite_by_id.get(iid)
            if twin is not None and norm(twin.db) == norm(row["db_id"]):
                dropped.append(Dropped(f"snow:{iid}", "spider2", row["db_id"],
                                       f"duplicate of Spider2-lite {iid} (same question and database); the lite gold "
                                       "SQL is kept"))
                continue
            questions.append(Spider2Question(iid if twin is None else f"snow:{iid}", row["db_id"], row["instruction"],
                                             row.get("external_knowledge"), snow_gold[iid], "snow"))
    else:
        info["snow"] = f"{snow_dir} not present: Spider2-snow questions not used"

    resolver = SchemaResolver(spider2_dir / LITE_DIR / "resource" / "databases", sample_values)
    examples: list[SourceExample] = []
    ek_missing = []
    for q in questions:
        iid = q.id.removeprefix("snow:")
        dialect = "snowflake" if q.origin == "snow" else dialect_of(iid)
        sql = q.gold_path.read_text(encoding="utf-8").strip()
        if not sql:
            dropped.append(Dropped(q.id, "spider2", q.db, f"empty gold SQL file {q.gold_path.name}"))
            continue
        schema = resolver.schema_for(q, dialect)
        if schema is None:
            dropped.append(Dropped(q.id, "spider2", q.db,
                                   f"no schema metadata for database {q.db!r} ({dialect}) in {resolver.root}"))
            continue
        ek_text, available = external_knowledge_for(spider2_dir, q.external_knowledge)
        if not available:
            ek_missing.append({"id": q.id, "document": q.external_knowledge})
        examples.append(
            SourceExample(
                id=q.id,
                source="spider2",
                db_id=q.db,
                dialect=dialect,
                question=q.question.strip(),
                sql=sql,
                schema=schema,
                group=norm(q.db),
                external_knowledge=ek_text,
            )
        )
    info["questions_with_gold"] = len(questions) + sum(1 for d in dropped if d.reason.startswith("duplicate"))
    info["external_knowledge_unavailable"] = ek_missing
    info.update(resolver.notes)
    return examples, dropped, info


# ----------------------------------------------------------------------------------------------- eval questions


@dataclass
class LiteQuestion:
    """A Spider2-lite question as eval asks it. Its gold SQL is never read: the reader would look into it to add
    datasets described under another database's folder (bq376, sf_bq233), and which tables the gold reads must
    not shape an evaluation prompt."""

    id: str
    db: str
    question: str
    dialect: str
    schema: LazySchema | None  # None: no schema metadata for its database
    external_knowledge: str | None
    db_path: Path | None  # its local SQLite file (SQLite questions whose file is here)


def lite_root(spider_dir: str | Path) -> Path:
    """The folder holding spider2-lite.jsonl: the Spider 2.0 folder's spider2-lite/, or that folder itself."""
    base = Path(spider_dir)
    for cand in (base, base / LITE_DIR):
        if (cand / "spider2-lite.jsonl").is_file():
            return cand
    raise T2SError(f"{base}: no spider2-lite.jsonl (give the Spider 2.0 folder or its spider2-lite folder "
                   "as --spider-dir)")


def _local_db(db: str, roots: list[Path]) -> Path | None:
    for root in roots:
        for cand in (root / f"{db}.sqlite", root / db / f"{db}.sqlite"):
            if cand.is_file():
                return cand
    return None


def read_lite_questions(lite: Path, *, dbs: list[str], limit: int | None, sample_values: int = 3,
                        db_root: str | Path | None = None) -> list[LiteQuestion]:
    """Every line of ``<lite>/spider2-lite.jsonl`` (on ``dbs``, the first ``limit``), with its schema, external
    knowledge and local SQLite file (``<db_root>/<db>.sqlite``, or Spider 2.0's own
    ``resource/databases/spider2-localdb/``)."""
    rows = read_jsonl(lite / "spider2-lite.jsonl", required=("instance_id", "db", "question"))
    if dbs:
        rows = [r for r in rows if r["db"] in set(dbs)]
    if limit:
        rows = rows[:limit]
    resolver = SchemaResolver(lite / "resource" / "databases", sample_values)
    db_roots = ([Path(db_root)] if db_root else []) + [lite / "resource" / "databases" / "spider2-localdb"]
    out = []
    for row in rows:
        iid, db = row["instance_id"], row["db"]
        dialect = dialect_of(iid)
        q = Spider2Question(iid, db, row["question"], row.get("external_knowledge"), Path("/dev/null"), "lite")
        ek_text, _ = external_knowledge_for(lite.parent, row.get("external_knowledge"))
        out.append(LiteQuestion(iid, db, row["question"].strip(), dialect, resolver.schema_for(q, dialect), ek_text,
                                _local_db(db, db_roots) if dialect == "sqlite" else None))
    return out
