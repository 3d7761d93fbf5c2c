"""A database schema as data, its CREATE TABLE rendering, and reading one from a SQLite file.

The same rendering is used for every source (Spider 1.0 SQLite files, Spider 2.0 DDL/metadata files, a
user's own SQLite file at inference), so prompts look alike whatever the schema came from.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from t2s_fast.dialects import quote_identifier
from t2s_fast.errors import T2SError

MAX_SAMPLE_CHARS = 40  # one sample value is cut to this many characters in the prompt


@dataclass
class Column:
    name: str
    type: str = ""
    samples: list[str | int | float] = field(default_factory=list)  # distinct example values
    description: str | None = None


@dataclass
class ForeignKey:
    columns: list[str]
    ref_table: str
    ref_columns: list[str]


@dataclass
class Table:
    name: str
    columns: list[Column]
    primary_key: list[str] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    description: str | None = None


@dataclass
class Schema:
    db_id: str
    tables: list[Table]

    def table(self, name: str) -> Table | None:
        low = name.lower()
        return next((t for t in self.tables if t.name.lower() == low), None)


def _sample_text(value: str | int | float) -> str:
    """Numbers as they are, text quoted and cut to MAX_SAMPLE_CHARS."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    text = " ".join(str(value).split())
    if len(text) > MAX_SAMPLE_CHARS:
        text = text[: MAX_SAMPLE_CHARS - 3] + "..."
    return repr(text)


def render_table(table: Table, *, sample_values: bool = True, dialect: str | None = None,
                 question_values: dict[str, list] | None = None) -> str:
    """One CREATE TABLE statement. ``question_values``: {column name lower-cased: values matching the
    question} (``t2s_fast.schema_values``), shown after the sample values; None/empty renders as before."""

    def _quote(name: str) -> str:
        return quote_identifier(name, dialect)

    lines = []
    for col in table.columns:
        line = f"  {_quote(col.name)}" + (f" {col.type}" if col.type else "")
        notes = []
        if col.description:
            notes.append(" ".join(col.description.split())[:120])
        if sample_values and col.samples:
            notes.append("e.g. " + ", ".join(_sample_text(s) for s in col.samples))
        matched = question_values.get(col.name.lower()) if question_values else None
        if matched:
            notes.append("values matching the question: " + ", ".join(_sample_text(v) for v in matched))
        lines.append((line, " -- " + "; ".join(notes) if notes else ""))
    constraints = []
    if table.primary_key:
        constraints.append(f"  PRIMARY KEY ({', '.join(_quote(c) for c in table.primary_key)})")
    for fk in table.foreign_keys:
        constraints.append(
            f"  FOREIGN KEY ({', '.join(_quote(c) for c in fk.columns)}) REFERENCES "
            f"{_quote(fk.ref_table)}({', '.join(_quote(c) for c in fk.ref_columns)})"
        )
    body = []
    n_items = len(lines) + len(constraints)
    for i, (line, note) in enumerate(lines):
        comma = "," if i < n_items - 1 else ""
        body.append(line + comma + note)
    for j, c in enumerate(constraints):
        body.append(c + ("," if len(lines) + j < n_items - 1 else ""))
    head = f"CREATE TABLE {_quote(table.name)} ("
    if table.description:
        head = f"-- {' '.join(table.description.split())[:200]}\n" + head
    return head + "\n" + "\n".join(body) + "\n);"


def render_schema(schema: Schema, *, sample_values: bool = True, dialect: str | None = None,
                  question_values: dict[tuple[str, str], list] | None = None) -> str:
    """CREATE TABLE statements with keys, and sample values as trailing comments; identifiers quoted as
    ``dialect`` requires (see ``quote_identifier``). ``question_values``: {(table, column) lower-cased:
    values matching the question} (``t2s_fast.schema_values.match_values``); None renders as before."""
    by_table: dict[str, dict[str, list]] = {}
    for (table, column), values in (question_values or {}).items():
        by_table.setdefault(table, {})[column] = values
    return "\n\n".join(render_table(t, sample_values=sample_values, dialect=dialect,
                                    question_values=by_table.get(t.name.lower()))
                       for t in schema.tables)


def _decode(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def read_sqlite_schema(db_path: str | Path, *, db_id: str | None = None, sample_values: int = 3) -> Schema:
    """Read tables, declared types, primary and foreign keys, and up to ``sample_values`` distinct
    non-null values per column from a SQLite file (opened read-only)."""
    db_path = Path(db_path)
    if not db_path.is_file():
        raise T2SError(f"{db_path}: SQLite database not found")
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        conn.text_factory = _decode  # some Spider databases hold non-UTF-8 bytes
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
    except sqlite3.DatabaseError as exc:
        raise T2SError(f"{db_path}: not a readable SQLite database ({exc})") from None
    tables = []
    try:
        for name in names:
            qn = _quote_always(name)
            info = conn.execute(f"PRAGMA table_info({qn})").fetchall()
            pk = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
            columns = []
            for _, col_name, col_type, *_rest in info:
                samples: list[str] = []
                if sample_values > 0:
                    try:
                        rows = conn.execute(
                            f"SELECT DISTINCT {_quote_always(col_name)} FROM {qn} "
                            f"WHERE {_quote_always(col_name)} IS NOT NULL LIMIT {int(sample_values)}"
                        ).fetchall()
                        samples = [r[0] if isinstance(r[0], (int, float)) else str(r[0]) for r in rows]
                    except sqlite3.DatabaseError:
                        samples = []
                columns.append(Column(name=col_name, type=(col_type or "").upper(), samples=samples))
            fks: dict[int, ForeignKey] = {}
            for row in conn.execute(f"PRAGMA foreign_key_list({qn})").fetchall():
                fk_id, _seq, ref_table, from_col, to_col = row[0], row[1], row[2], row[3], row[4]
                fk = fks.setdefault(fk_id, ForeignKey(columns=[], ref_table=ref_table, ref_columns=[]))
                fk.columns.append(from_col)
                fk.ref_columns.append(to_col or "")
            # A FOREIGN KEY clause without target columns refers to the target's primary key.
            tables.append(Table(name=name, columns=columns, primary_key=pk, foreign_keys=list(fks.values())))
    finally:
        conn.close()
    return Schema(db_id=db_id or db_path.stem, tables=tables)


def _quote_always(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
