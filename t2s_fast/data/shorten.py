"""Deterministic schema shortening: what the gold SQL reads, and the levels a schema is cut to when it does not fit.

`t2s_fast.data.schema_text.schema_text` tries the levels; this module finds what each level keeps. The runbook
fixes the order: first the sample values go, then the tables and columns the gold SQL does not use; the
question and the answer are never touched. The levels, tried in order until one fits:

    full              every table, every column, sample values
    no_sample_values  every table, every column
    gold_tables       only the tables the gold SQL reads (all their columns)
    gold_columns      only those tables, and only the columns the gold SQL names (plus key columns)
    gold_fields       as gold_columns, and BigQuery STRUCT columns keep only the nested fields the SQL names
                      (the ``hits`` column of ga_sessions alone is thousands of tokens of nested type)

If even the last level does not fit, the example is dropped with that reason. Without the gold SQL (eval,
infer) only the first two levels exist, then the leading tables that fit are kept.

"What the gold SQL uses" comes from sqlglot's parse tree (every identifier: table, column, alias and struct
field names, so BigQuery ``totals.transactions`` keeps the ``totals`` column); when sqlglot cannot parse a
query we fall back to the words of the query outside string literals. A wildcard table such as BigQuery's
``events_*`` keeps every table whose name starts with ``events_``.

Token counts are exact (the Qwen3 chat template rendered and tokenized). To stay fast on megabyte DDL files,
a level whose raw size is more than ``schema_text.SKIP_CHARS_PER_TOKEN`` characters per available token is
ruled out without parsing or tokenizing it: no SQL schema text packs that many characters into one token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from t2s_fast.data.lazy_schema import LazySchema, SchemaEntry
from t2s_fast.schema import Table

LEVELS = ("full", "no_sample_values", "gold_tables", "gold_columns", "gold_fields")

_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$\-]*\*?")


@dataclass(frozen=True)
class GoldRefs:
    identifiers: frozenset[str]  # lower-case names the SQL mentions
    prefixes: tuple[str, ...]  # wildcard table prefixes (BigQuery `events_*`), lower-case
    selects_star: bool  # SELECT * / t.* reads every column of its tables
    parsed: bool  # False: sqlglot failed and the words of the query were used instead


def gold_refs(sql: str, dialect: str) -> GoldRefs:
    try:
        with _quiet_sqlglot():
            trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
        if not trees:
            raise ValueError("empty")
        names: set[str] = set()
        star = False
        wild: set[str] = set()
        for tree in trees:
            names.update(i.name for i in tree.find_all(exp.Identifier))
            for t in tree.find_all(exp.Table):
                if t.name:
                    names.add(t.name)
                if t.name.endswith("*"):  # `project.dataset.*` or `project.dataset.events_*`
                    wild.add(".".join(p for p in (t.catalog, t.db, t.name) if p))
            star = star or any(_star_reads_table(s) for s in tree.find_all(exp.Star))
        names.update(wild)
        parsed = True
    except Exception:  # sqlglot raises several error types on dialect features it does not know
        text = _STRING_LITERAL.sub(" ", sql).replace('"', " ").replace("`", " ")
        names = set()
        for word in _WORD.findall(text):
            names.add(word)
            names.update(word.split("."))
        star = bool(re.search(r"select\s+(distinct\s+)?\*|\.\*", sql, re.I))
        parsed = False
    # dotted identifiers (`project.dataset.table` as one BigQuery identifier) count by each part too
    expanded = set()
    for n in names:
        expanded.add(n.lower())
        expanded.update(p.lower() for p in n.split("."))
    prefixes = tuple(sorted(n[:-1] for n in expanded if n.endswith("*") and len(n) > 1 and not n.endswith(".*")))
    prefixes += tuple(sorted(n[:-1] for n in expanded if n.endswith(".*")))  # a whole dataset
    return GoldRefs(frozenset(expanded), prefixes, star, parsed)


def _star_reads_table(star: exp.Star) -> bool:
    """True for SELECT * / t.* over a real table; COUNT(*) and SELECT * over a CTE name no table columns."""
    if isinstance(star.parent, exp.Count):
        return False
    select = star.find_ancestor(exp.Select)
    if select is None:
        return True
    root = select.root()
    ctes = {c.alias_or_name.lower() for c in root.find_all(exp.CTE)}
    sources = []
    from_ = select.args.get("from_") or select.args.get("from")  # the key is "from_" in sqlglot >= 26
    if from_ is not None:
        sources.append(from_.this)
    sources += [j.this for j in select.args.get("joins") or []]
    return any(isinstance(src, exp.Table) and src.name.lower() not in ctes for src in sources)


def prune_struct_type(type_text: str, keep: frozenset[str], dialect: str = "bigquery") -> str:
    """Keep only the nested STRUCT fields named in ``keep`` (recursively); a struct none of whose fields
    is named stays whole. Unparsable type text is returned unchanged."""
    if "struct<" not in type_text.lower():
        return type_text
    try:
        with _quiet_sqlglot():
            dt = exp.DataType.build(type_text, dialect=dialect)
    except Exception:
        return type_text

    def prune(node: exp.DataType) -> exp.DataType:
        if not isinstance(node, exp.DataType):
            return node
        if node.this == exp.DataType.Type.ARRAY and node.expressions:
            node.set("expressions", [prune(e) for e in node.expressions])
            return node
        if node.this == exp.DataType.Type.STRUCT:
            fields = [f for f in node.expressions if isinstance(f, exp.ColumnDef)]
            kept = [f for f in fields if f.name.lower() in keep]
            if kept:
                for f in kept:
                    if f.args.get("kind") is not None:
                        f.set("kind", prune(f.args["kind"]))
                node.set("expressions", kept)
        return node

    return prune(dt).sql(dialect)


class _quiet_sqlglot:
    """sqlglot logs warnings for unsupported syntax; the fallback handles those queries."""

    def __enter__(self):
        import logging

        self._logger = logging.getLogger("sqlglot")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)


def used_entries(schema: LazySchema, refs: GoldRefs) -> list[SchemaEntry]:
    out = []
    for e in schema.entries:
        if any(name in refs.identifiers for name in e.match_names) or any(
            name.startswith(p) for p in refs.prefixes for name in e.match_names
        ):
            out.append(e)
    return out


def column_keeper(refs: GoldRefs) -> Callable[[Table, str], bool]:
    def keep(table: Table, column: str) -> bool:
        if refs.selects_star:
            return True
        if column.lower() in refs.identifiers or column in table.primary_key:
            return True
        if any(column in fk.columns for fk in table.foreign_keys):
            return True
        # a table the query reads without naming any of its columns (COUNT(*)) keeps all of them
        return not any(c.name.lower() in refs.identifiers for c in table.columns)

    return keep


class DropExample(Exception):
    """This example cannot be made to fit (or has no usable schema); the message is the recorded reason."""
