"""Deterministic schema shortening so that every example fits in ``max_seq_length`` tokens.

The issue fixes the order: first the sample values go, then the tables and columns the gold SQL does not
use; the question and the answer are never touched. The levels, tried in order until one fits:

    full              every table, every column, sample values
    no_sample_values  every table, every column
    gold_tables       only the tables the gold SQL reads (all their columns)
    gold_columns      only those tables, and only the columns the gold SQL names (plus key columns)
    gold_fields       as gold_columns, and BigQuery STRUCT columns keep only the nested fields the SQL names
                      (the ``hits`` column of ga_sessions alone is thousands of tokens of nested type)

If even ``gold_columns`` does not fit, the example is dropped with that reason.

"What the gold SQL uses" comes from sqlglot's parse tree (every identifier: table, column, alias and struct
field names, so BigQuery ``totals.transactions`` keeps the ``totals`` column); when sqlglot cannot parse a
query we fall back to the words of the query outside string literals. A wildcard table such as BigQuery's
``events_*`` keeps every table whose name starts with ``events_``.

Token counts are exact (the Qwen3 chat template rendered and tokenized). To stay fast on megabyte DDL files,
a level whose raw size is more than SKIP_CHARS_PER_TOKEN characters per available token is ruled out without
parsing or tokenizing it: no SQL schema text packs that many characters into one token.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from t2s_fast.data.example import SourceExample
from t2s_fast.data.lazy_schema import LazySchema, SchemaEntry
from t2s_fast.prompt import build_messages, render_conversation
from t2s_fast.schema import Table, render_schema

LEVELS = ("full", "no_sample_values", "gold_tables", "gold_columns", "gold_fields")
SKIP_CHARS_PER_TOKEN = 12

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


@dataclass
class Fitted:
    messages: list[dict[str, str]]
    n_tokens: int
    level: str
    schema_tables: int


class DropExample(Exception):
    """This example cannot be made to fit (or has no usable schema); the message is the recorded reason."""


def conversation_messages(ex: SourceExample, schema_text: str) -> list[dict[str, str]]:
    return build_messages(
        dialect=ex.dialect,
        db_id=ex.db_id,
        schema=schema_text,
        question=ex.question,
        external_knowledge=ex.external_knowledge,
        sql=ex.sql,
    )


def count_tokens(tokenizer, texts: Sequence[str]) -> list[int]:
    """Token counts in one batched call of the fast (Rust) tokenizer."""
    if not texts:
        return []
    enc = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
    return [len(ids) for ids in enc["input_ids"]]


class SchemaFitter:
    """Renders each example at the first level that fits. Schema text for the levels that do not depend on
    the gold SQL is cached per database, so a database is rendered once, not once per question."""

    def __init__(self, tokenizer, max_tokens: int, question_values=None):
        """``question_values``: a ``t2s_fast.schema_values.QuestionValueMatcher`` (the --question-values
        lever) whose matches join the sample values at level ``full``; None = off."""
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self._cache: dict[tuple[int, str, str], str] = {}
        self.question_values = question_values
        self.values_stats = {"examples_with_values": 0, "values": 0, "seconds": 0.0}

    def _question_matches(self, ex: SourceExample) -> dict:
        if self.question_values is None or ex.db_path is None or ex.dialect != "sqlite":
            return {}
        import time

        t0 = time.perf_counter()
        matches = self.question_values.match(ex.db_path, ex.question)
        self.values_stats["seconds"] += time.perf_counter() - t0
        if matches:
            self.values_stats["examples_with_values"] += 1
            self.values_stats["values"] += sum(len(v) for v in matches.values())
        return matches

    def _too_big(self, schema: LazySchema, entries) -> bool:
        return schema.est_chars(entries) > SKIP_CHARS_PER_TOKEN * self.max_tokens

    def schema_text(self, ex: SourceExample, level: str, refs: GoldRefs | None = None) -> str | None:
        """The rendered schema at ``level``, or None when the level is ruled out (too big or empty)."""
        schema = ex.schema
        if level in ("full", "no_sample_values"):
            if self._too_big(schema, None):
                return None
            matches = self._question_matches(ex) if level == "full" else {}
            if matches:  # per question: not cached
                return render_schema(schema.materialize(), sample_values=True, dialect=ex.dialect,
                                     question_values=matches)
            key = (id(schema), level, ex.dialect)
            if key not in self._cache:
                self._cache[key] = render_schema(schema.materialize(), sample_values=level == "full", dialect=ex.dialect)
            return self._cache[key]
        refs = refs or gold_refs(ex.sql, ex.dialect)
        entries = used_entries(schema, refs)
        if not entries:
            return None
        if level == "gold_tables":
            if self._too_big(schema, entries) or len(entries) == len(schema.entries):
                return None  # same as no_sample_values, already tried
            return render_schema(schema.materialize(entries), sample_values=False, dialect=ex.dialect)
        narrowed = schema.materialize(entries, keep_column=column_keeper(refs))
        if level == "gold_columns":
            return render_schema(narrowed, sample_values=False, dialect=ex.dialect)
        if not any("struct<" in c.type.lower() for t in narrowed.tables for c in t.columns):
            return None  # no nested types: same as gold_columns, already tried
        for t in narrowed.tables:
            t.columns = [dataclasses.replace(c, type=prune_struct_type(c.type, refs.identifiers)) for c in t.columns]
        return render_schema(narrowed, sample_values=False, dialect=ex.dialect)

    def first_pass(self, examples: Sequence[SourceExample]) -> list[Fitted | None]:
        """Level ``full`` for every example with one batched tokenizer call; None where it does not fit."""
        texts, idx = [], []
        out: list[Fitted | None] = [None] * len(examples)
        msgs_by_i = {}
        for i, ex in enumerate(examples):
            text = self.schema_text(ex, "full")
            if text is None:
                continue
            msgs = conversation_messages(ex, text)
            msgs_by_i[i] = msgs
            texts.append(render_conversation(self.tokenizer, msgs))
            idx.append(i)
        for i, n in zip(idx, count_tokens(self.tokenizer, texts)):
            if n <= self.max_tokens:
                out[i] = Fitted(msgs_by_i[i], n, "full", len(examples[i].schema.entries))
        return out

    def fit(self, ex: SourceExample, *, start: int = 0) -> Fitted:
        """Try the levels from ``start`` on; raise DropExample with the reason when none fits."""
        refs = None
        tried = []
        best = None
        for level in LEVELS[start:]:
            if level.startswith("gold") and refs is None:
                refs = gold_refs(ex.sql, ex.dialect)
            text = self.schema_text(ex, level, refs)
            if text is None:
                continue
            if not text.strip():
                continue
            msgs = conversation_messages(ex, text)
            n = count_tokens(self.tokenizer, [render_conversation(self.tokenizer, msgs)])[0]
            tried.append(f"{level}={n}")
            if n <= self.max_tokens:
                return Fitted(msgs, n, level, text.count("CREATE TABLE "))
            best = n
        if refs is not None and not used_entries(ex.schema, refs):
            raise DropExample("the gold SQL names no table of the schema, and the whole schema is too long")
        raise DropExample(
            f"schema too long even at the shortest level (tokens per level tried: {', '.join(tried) or 'none'};"
            f" max {self.max_tokens})"
            if best is not None
            else f"schema too long at every level (max {self.max_tokens} tokens)"
        )
