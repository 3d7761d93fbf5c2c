"""Schema shortening on a synthetic huge schema, gold-SQL reference extraction and DDL parsing."""

from __future__ import annotations

import pytest

from t2s_fast.data.ddl import parse_ddl
from t2s_fast.data.example import SourceExample
from t2s_fast.data.fit import SchemaFitter
from t2s_fast.data.lazy_schema import LazySchema
from t2s_fast.data.shorten import DropExample, gold_refs, prune_struct_type
from t2s_fast.prompt import render_conversation
from t2s_fast.schema import Column, ForeignKey, Schema, Table


def _huge_schema(n_tables: int = 300, n_cols: int = 25) -> Schema:
    tables = []
    for t in range(n_tables):
        cols = [Column(f"t{t}_col{c}", "TEXT",
                       samples=[f"value {t}-{c}-{k} with some text" for k in range(3)]) for c in range(n_cols)]
        cols[0] = Column("id", "INTEGER", samples=[1, 2, 3])
        fks = [ForeignKey([f"t{t}_col1"], f"table_{t - 1}", ["id"])] if t else []
        tables.append(Table(f"table_{t}", cols, primary_key=["id"], foreign_keys=fks))
    return Schema("huge_db", tables)


def _example(schema: Schema, sql: str) -> SourceExample:
    return SourceExample(
        id="x1", source="spider1", db_id=schema.db_id, dialect="sqlite", question="How many rows match?",
        sql=sql, schema=LazySchema.from_schema(schema), group=schema.db_id,
    )


def _fit(tokenizer, ex, max_tokens):
    fitted = SchemaFitter(tokenizer, max_tokens).fit_all([ex])[0]
    if isinstance(fitted, DropExample):
        raise fitted
    return fitted


def _n_tokens(tokenizer, messages):
    return len(tokenizer(render_conversation(tokenizer, messages), add_special_tokens=False)["input_ids"])


def test_huge_schema_is_cut_to_the_gold_tables_and_columns(qwen3_tokenizer):
    sql = ("SELECT T1.t7_col3, COUNT(*) FROM table_7 AS T1 JOIN table_42 AS T2 ON T1.id = T2.t42_col1 "
           "GROUP BY T1.t7_col3")
    ex = _example(_huge_schema(n_cols=80), sql)
    fitted = _fit(qwen3_tokenizer, ex, 1024)
    user, answer = fitted.messages[1]["content"], fitted.messages[2]["content"]
    assert answer == sql  # never the answer
    assert "Question: How many rows match?" in user  # never the question
    assert fitted.level == "gold_columns"
    assert "CREATE TABLE table_7 (" in user and "CREATE TABLE table_42 (" in user
    assert "table_8 " not in user and "t7_col5" not in user  # unused tables and columns went
    assert "t7_col3" in user and "t42_col1" in user
    assert fitted.n_tokens == _n_tokens(qwen3_tokenizer, fitted.messages) <= 1024
    # deterministic
    again = _fit(qwen3_tokenizer, _example(_huge_schema(n_cols=80), sql), 1024)
    assert again.messages == fitted.messages


def test_sample_values_go_first(qwen3_tokenizer):
    schema = _huge_schema(n_tables=6, n_cols=8)
    ex = _example(schema, "SELECT t1_col2 FROM table_1")
    full = _fit(qwen3_tokenizer, ex, 100_000)
    assert full.level == "full" and "e.g. " in full.messages[1]["content"]
    budget = full.n_tokens - 50  # a little too long with the samples, fits without them
    fitted = _fit(qwen3_tokenizer, _example(schema, ex.sql), budget)
    assert fitted.level == "no_sample_values"
    assert "e.g. " not in fitted.messages[1]["content"]
    assert fitted.messages[1]["content"].count("CREATE TABLE") == 6  # all tables still there


def test_too_long_even_at_the_shortest_level_is_dropped_with_reason(qwen3_tokenizer):
    ex = _example(_huge_schema(), "SELECT * FROM table_3")
    with pytest.raises(DropExample, match="schema too long"):
        _fit(qwen3_tokenizer, ex, 200)


def test_gold_refs_wildcards_ctes_and_fallback():
    refs = gold_refs(
        "WITH a AS (SELECT totals.transactions FROM `bigquery-public-data.ga4.events_*`) SELECT * FROM a",
        "bigquery",
    )
    assert refs.parsed and "events_" in refs.prefixes and "totals" in refs.identifiers
    assert not refs.selects_star  # SELECT * over a CTE reads no extra table columns
    assert gold_refs("SELECT COUNT(*) FROM t", "sqlite").selects_star is False
    assert gold_refs("SELECT * FROM t", "sqlite").selects_star is True
    whole_dataset = gold_refs("SELECT x FROM `bigquery-public-data.google_analytics_sample.*`", "bigquery")
    assert "bigquery-public-data.google_analytics_sample." in whole_dataset.prefixes
    broken = gold_refs("SELEC foo FROM bar WHERE name = 'not_a_column' ((", "sqlite")
    assert not broken.parsed and {"foo", "bar"} <= broken.identifiers and "not_a_column" not in broken.identifiers


def test_prune_struct_type_keeps_named_fields():
    t = ("ARRAY<STRUCT<time INT64, page STRUCT<pagePath STRING, hostname STRING>, "
         "product ARRAY<STRUCT<v2ProductName STRING, productSKU STRING>>>>")
    pruned = prune_struct_type(t, frozenset({"page", "pagepath", "time"}))
    assert "pagePath" in pruned and "time" in pruned and "hostname" not in pruned and "product" not in pruned
    assert prune_struct_type("STRING", frozenset()) == "STRING"
    assert prune_struct_type("STRUCT<a INT64>", frozenset({"zzz"})) == "STRUCT<a INT64>"  # nothing named: whole


def test_parse_ddl_dialects_and_fallback():
    cols, _ = parse_ddl(
        "CREATE TABLE `p-d.ds.t` (a INT64 OPTIONS(description='the a'), s STRUCT<x STRING, y ARRAY<INT64>>)", "bigquery"
    )
    assert [(c.name, c.type) for c in cols] == [("a", "INT64"), ("s", "STRUCT<x STRING, y ARRAY<INT64>>")]
    assert cols[0].description == "the a"
    cols, _ = parse_ddl('create or replace TABLE T (\n\t"block_height" NUMBER(38,0),\n\t"h" VARCHAR(16777216)\n);',
                        "snowflake")
    assert [c.name for c in cols] == ["block_height", "h"] and cols[1].type == "VARCHAR"  # 16 MiB default dropped
    cols, pk = parse_ddl("CREATE TABLE x (id INTEGER PRIMARY KEY, name TEXT)", "sqlite")
    assert pk == ["id"] and [c.name for c in cols] == ["id", "name"]
    cols, _ = parse_ddl('CREATE WEIRDTHING x ("a b" FANCYTYPE<1,2> MAGIC, c INT, PRIMARY KEY (c))', "snowflake")
    assert [c.name for c in cols] == ["a b", "c"]
