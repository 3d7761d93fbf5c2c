"""One schema text for every prompt: for the same question, the messages eval sends to the model equal the
messages `prepare` wrote for training (without the answer), in each dialect: SQLite (Spider 1.0, and a
Spider2-lite local question), BigQuery and Snowflake (Spider2-lite), identifiers quoted per dialect."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from t2s_fast.data.prepare import PrepareConfig, prepare
from t2s_fast.evaluate.config import EvalConfig
from t2s_fast.evaluate.generation import question_messages
from t2s_fast.evaluate.harness import load_questions

QUESTION = "What is the total amount per region?"
SPIDER2 = {  # instance id -> (database, metadata folder, DDL.csv text, gold SQL)
    "bq901": ("shop", "bigquery/shop/my-project.shop_ds", "table_name,ddl\norders,\"CREATE TABLE `my-project.shop_ds"
              ".orders` (region STRING, `unit-price` FLOAT64, amount INT64)\"\n",
              "SELECT region, SUM(amount) FROM `my-project.shop_ds.orders` GROUP BY region"),
    "sf901": ("SALES", "snowflake/SALES/PUBLIC", "table_name,description,DDL\nSALES.PUBLIC.ORDERS,Orders,\"CREATE "
              "TABLE SALES.PUBLIC.ORDERS (\n\t\"\"region\"\" VARCHAR(16777216),\n\tAMOUNT NUMBER(38,0)\n);\"\n",
              'SELECT "region", SUM(AMOUNT) FROM SALES.PUBLIC.ORDERS GROUP BY "region"'),
    "local901": ("tiny", "sqlite/tiny", "table_name,ddl\n\"Sales Orders\",\"CREATE TABLE \"\"Sales Orders\"\" "
                 "(region TEXT, amount INTEGER)\"\n",
                 'SELECT region, SUM(amount) FROM "Sales Orders" GROUP BY region'),
}


def _spider1(root: Path) -> Path:
    db = root / "database" / "concerts" / "concerts.sqlite"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.executescript('CREATE TABLE "Sales Orders" (id INTEGER PRIMARY KEY, region TEXT, amount INTEGER);'
                       "INSERT INTO \"Sales Orders\" VALUES (1, 'North', 5), (2, 'South', 7);")
    conn.commit()
    conn.close()
    item = {"db_id": "concerts", "question": QUESTION,
            "query": 'SELECT region, SUM(amount) FROM "Sales Orders" GROUP BY region'}
    (root / "tables.json").write_text(json.dumps([{"db_id": "concerts"}]))
    for name in ("train_spider.json", "dev.json"):  # the same question in training and in eval
        (root / name).write_text(json.dumps([item]))
    (root / "train_others.json").write_text("[]")
    return root


def _spider2(root: Path) -> Path:
    lite = root / "spider2-lite"
    gold = lite / "evaluation_suite" / "gold"
    (gold / "sql").mkdir(parents=True)
    rows = []
    for iid, (db, folder, ddl, sql) in SPIDER2.items():
        meta = lite / "resource" / "databases" / folder
        meta.mkdir(parents=True)
        (meta / "DDL.csv").write_text(ddl)
        (gold / "sql" / f"{iid}.sql").write_text(sql)
        rows.append({"instance_id": iid, "db": db, "question": QUESTION, "external_knowledge": None})
    (lite / "spider2-lite.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (gold / "spider2lite_eval.jsonl").write_text("".join(
        json.dumps({"instance_id": iid, "condition_cols": [], "ignore_order": True}) + "\n" for iid in SPIDER2))
    return root


def _eval_messages(tmp_path: Path, suite: str, spider_dir: Path) -> dict[str, list[dict]]:
    """{(db_id, question): the messages eval sends}, through the eval's own question loading."""
    cfg = EvalConfig(base_model="m", out_dir=str(tmp_path / f"eval-{suite}"), include_base=True, suite=suite,
                     spider_dir=str(spider_dir))
    cache: dict = {}
    return {q.qid: question_messages(q, cache, cfg.sample_values) for q in load_questions(cfg).questions}


def test_eval_prompt_equals_training_prompt_in_every_dialect(tmp_path, qwen3_tokenizer_dir):
    spider1, spider2 = _spider1(tmp_path / "spider1"), _spider2(tmp_path / "spider2")
    out = tmp_path / "prepared"
    prepare(PrepareConfig(spider_dir=spider1, spider2_dir=spider2, out_dir=out, tokenizer=str(qwen3_tokenizer_dir),
                          valid_fraction=0.5))
    training = {}
    for f in out.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            assert rec["messages"][-1] == {"role": "assistant", "content": rec["sql"]}
            training[rec["id"]] = (rec["dialect"], rec["messages"][:-1])

    evaluated = _eval_messages(tmp_path, "spider1", spider1)
    assert list(evaluated) == ["dev-0000"]
    assert training["spider1-train_spider-0"] == ("sqlite", evaluated["dev-0000"])
    evaluated = _eval_messages(tmp_path, "spider2-lite", spider2)
    assert sorted(evaluated) == sorted(SPIDER2)
    differ = sorted(iid for iid, messages in evaluated.items() if training[iid][1] != messages)
    assert not differ, f"eval prompts differ from the training prompts of {differ}"
    assert {training[iid][0] for iid in SPIDER2} == {"bigquery", "snowflake", "sqlite"}
    # quoted as each dialect needs (the point of the one schema text)
    assert "CREATE TABLE `my-project.shop_ds.orders` (" in evaluated["bq901"][1]["content"]
    assert "`unit-price` FLOAT64" in evaluated["bq901"][1]["content"]
    assert '\n  "region" VARCHAR' in evaluated["sf901"][1]["content"]
    assert 'CREATE TABLE "Sales Orders" (' in evaluated["local901"][1]["content"]


def test_schema_text_levels_and_budget(qwen3_tokenizer):
    """No budget: the whole schema; a budget: sample values go first, then (gold SQL) the unused tables, or
    (no gold SQL) the tables after the leading ones that fit."""
    from t2s_fast.data.schema_text import Budget, schema_text
    from t2s_fast.data.shorten import DropExample
    from t2s_fast.schema import Column, Schema, Table

    tables = [Table(f"t{i}", [Column("id", "INTEGER", samples=[1, 2, 3]), Column(f"name_{i}", "TEXT",
                                                                                  samples=["a long sample value"] * 3)])
              for i in range(40)]
    schema = Schema("db", tables)
    whole = schema_text(schema, "sqlite", None)
    assert whole.level == "full" and whole.text.count("CREATE TABLE") == 40 and "e.g. " in whole.text
    n_full = len(qwen3_tokenizer(whole.text)["input_ids"])
    bare = schema_text(schema, "sqlite", Budget(n_full - 1, qwen3_tokenizer))
    assert bare.level == "no_sample_values" and "e.g. " not in bare.text and bare.size <= n_full - 1
    gold = schema_text(schema, "sqlite", Budget(60, qwen3_tokenizer), gold="SELECT name_7 FROM t7")
    assert gold.level == "gold_tables" and gold.text.startswith("CREATE TABLE t7 (") and gold.size <= 60
    lead = schema_text(schema, "sqlite", Budget(60))  # no tokenizer: about CHARS_PER_TOKEN characters a token
    assert lead.level.startswith("first_") and lead.level.endswith("_of_40_tables")
    assert lead.text.startswith("CREATE TABLE t0 (") and len(lead.text) <= 3 * 60
    with pytest.raises(DropExample, match="schema too long"):
        schema_text(schema, "sqlite", Budget(5, qwen3_tokenizer), gold="SELECT name_7 FROM t7")
