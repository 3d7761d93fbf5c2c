"""The demo's own database and question generator: deterministic, honest held-out split, executable gold SQL."""

from __future__ import annotations

import sqlite3

import pytest

from t2s_fast.demo.synthetic_db import (
    SLOT_KINDS,
    TEMPLATES,
    build_database,
    generate_examples,
    slot_pools,
    write_demo_data,
)
from t2s_fast.errors import T2SError
from t2s_fast.jsonl import read_jsonl


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return build_database(tmp_path_factory.mktemp("demo-db") / "company" / "company.sqlite", seed=0)


def _dump(path):
    conn = sqlite3.connect(path)
    try:
        return [conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("department", "employee")]
    finally:
        conn.close()


def test_same_seed_same_database_and_questions(tmp_path, db):
    again = build_database(tmp_path / "again.sqlite", seed=0)
    assert _dump(db.path) == _dump(again.path)
    a = generate_examples(db, n_train=120, n_heldout=30, seed=0)
    b = generate_examples(again, n_train=120, n_heldout=30, seed=0)
    assert [(e.question, e.sql) for e in a[0] + a[1]] == [(e.question, e.sql) for e in b[0] + b[1]]


def test_other_seed_other_data(tmp_path, db):
    other = build_database(tmp_path / "other.sqlite", seed=1)
    assert _dump(db.path) != _dump(other.path)
    a = generate_examples(db, n_train=60, n_heldout=20, seed=0)
    b = generate_examples(other, n_train=60, n_heldout=20, seed=1)
    assert [e.question for e in a[1]] != [e.question for e in b[1]]


def test_heldout_values_never_appear_in_training(db):
    train, heldout = generate_examples(db, n_train=300, n_heldout=60, seed=0)
    pools = slot_pools(db, seed=0)
    for kind in SLOT_KINDS:
        assert not set(pools[kind]["train"]) & set(pools[kind]["heldout"]), kind
        assert pools[kind]["heldout"], kind
    train_values = {(k, v) for ex in train for k, v in ex.slots.items()}
    heldout_values = {(k, v) for ex in heldout for k, v in ex.slots.items()}
    assert heldout_values and not train_values & heldout_values
    # Values are not only disjoint as slots: no held-out value is even mentioned in a training question.
    train_text = " ".join(ex.question + " " + ex.sql for ex in train)
    for kind, value in heldout_values:
        if kind in ("dept", "person", "city"):
            assert str(value) not in train_text, (kind, value)
    assert not {ex.question for ex in train} & {ex.question for ex in heldout}


def test_heldout_has_unseen_templates_and_training_never_uses_them(db):
    train, heldout = generate_examples(db, n_train=300, n_heldout=40, seed=0)
    new = {t.name for t in TEMPLATES if t.heldout_only}
    assert new and not {ex.template for ex in train} & new
    n_new = sum(ex.template in new for ex in heldout)
    assert n_new == 10  # a quarter of 40
    assert len({ex.question for ex in heldout}) == len(heldout)  # no repeats


def test_every_gold_sql_executes_and_most_return_rows(db):
    train, heldout = generate_examples(db, n_train=300, n_heldout=60, seed=0)
    conn = sqlite3.connect(db.path)
    non_empty = 0
    for ex in train + heldout:
        rows = conn.execute(ex.sql).fetchall()  # raises if a template is broken
        non_empty += bool(rows) and rows != [(None,)] and rows != [(0,)]
    assert non_empty >= 0.85 * len(train + heldout)


def test_write_demo_data_writes_prepared_jsonl_with_the_shared_prompt(tmp_path):
    from t2s_fast.prompt import build_messages

    data = write_demo_data(tmp_path / "data", n_train=50, n_heldout=12, seed=3)
    assert data.db_path == data.db_root / "company" / "company.sqlite" and data.db_path.is_file()
    train = read_jsonl(data.train_file, required=("id", "source", "db_id", "dialect", "question", "sql", "messages"))
    heldout = read_jsonl(data.heldout_file)
    assert len(train) == 50 and len(heldout) == 12 == data.n_heldout
    rec = heldout[0]
    assert rec["messages"] == build_messages(dialect="sqlite", db_id="company", schema=data.schema_text,
                                             question=rec["question"], sql=rec["sql"])
    assert "CREATE TABLE employee" in data.schema_text and "FOREIGN KEY (dept_id)" in data.schema_text
    assert len({r["id"] for r in train + heldout}) == 62


def test_impossible_request_is_a_clear_error(db):
    with pytest.raises(T2SError, match="at least one"):
        generate_examples(db, n_train=0, n_heldout=5)
    with pytest.raises(T2SError, match="distinct"):
        generate_examples(db, n_train=10, n_heldout=100_000)
