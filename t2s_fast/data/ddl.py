"""CREATE TABLE text (Spider 2.0 DDL.csv cells) -> columns with types and descriptions.

sqlglot parses the DDL of all three dialects (BigQuery ``STRUCT<...>`` types and ``OPTIONS(description=...)``,
Snowflake quoted lower-case names, SQLite). When it cannot, a small splitter over the top-level commas of
the column list is used, so an unusual statement still gives column names and type text.
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp

from t2s_fast.schema import Column

# Snowflake's VARCHAR default length (16 MiB) says nothing about the data and costs tokens in every column.
_NOISE_TYPE_ARGS = re.compile(r"\((?:16777216|65535)\)")
_CONSTRAINT_WORDS = ("primary ", "foreign ", "constraint ", "unique ", "key ", "check ", "index ")


def clean_type(type_text: str) -> str:
    return _NOISE_TYPE_ARGS.sub("", " ".join(type_text.split()))


def parse_ddl(ddl: str, dialect: str) -> tuple[list[Column], list[str]]:
    """(columns, primary key column names) of one CREATE TABLE statement."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        tree = sqlglot.parse_one(ddl, read=dialect)
        schema = tree.this if isinstance(tree, exp.Create) else None
        if not isinstance(schema, exp.Schema):
            raise ValueError("not a CREATE TABLE with a column list")
        columns, pk = [], []
        for item in schema.expressions:
            if isinstance(item, exp.ColumnDef):
                kind = item.args.get("kind")
                desc = None
                for constraint in item.args.get("constraints") or []:
                    if isinstance(constraint.args.get("kind"), exp.PrimaryKeyColumnConstraint):
                        pk.append(item.name)
                    lit = constraint.find(exp.Literal)
                    if desc is None and lit is not None and lit.is_string and lit.this.strip():
                        desc = lit.this
                columns.append(
                    Column(name=item.name, type=clean_type(kind.sql(dialect)) if kind else "", description=desc)
                )
            elif isinstance(item, exp.PrimaryKey):
                pk.extend(e.name for e in item.expressions)
        if not columns:
            raise ValueError("no columns")
        return columns, pk
    except Exception:  # sqlglot raises ParseError, TokenError and others on odd DDL
        return _split_columns(ddl), []
    finally:
        logger.setLevel(level)


def _split_columns(ddl: str) -> list[Column]:
    start = ddl.find("(")
    if start < 0:
        return []
    depth, angle, items, cur, quote = 0, 0, [], [], None
    for ch in ddl[start + 1 :]:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "\"'`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                break
            depth -= 1
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle -= 1
        elif ch == "," and depth == 0 and angle <= 0:
            items.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    items.append("".join(cur))
    columns = []
    for item in items:
        item = item.strip()
        if not item or item.lower().startswith(_CONSTRAINT_WORDS):
            continue
        m = re.match(r'("(?:[^"]|"")+"|`[^`]+`|\S+)\s*(.*)', item, re.S)
        if not m:
            continue
        name = m.group(1).strip('"`').replace('""', '"')
        type_text = re.split(r"\s+(?:OPTIONS|COMMENT|NOT\s+NULL|DEFAULT)\b", m.group(2), maxsplit=1, flags=re.I)[0]
        columns.append(Column(name=name, type=clean_type(type_text)))
    return columns
