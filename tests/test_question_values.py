"""Question-matched values (--question-values): the matching, its caps, that the lever off leaves prompts
byte-identical, and that prepare (training), eval and infer build the same prompt with it on."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from t2s_fast.errors import T2SError
from t2s_fast.evaluate.generation import build_prompts, question_messages
from t2s_fast.evaluate.questions import Question
from t2s_fast.schema import read_sqlite_schema, render_schema
from t2s_fast.schema_values import MAX_VALUE_CHARS, QuestionValueMatcher, make_matcher, match_values, read_text_values

pytest.importorskip("rapidfuzz")

COUNTRIES = ["France", "Netherlands", "United States", "Japan", "Brazil", "Germany", "Spain", "Italy"]
LONG = "A very long biography that mentions France somewhere in the middle of it " * 2


def make_db(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, bio TEXT, age INTEGER);"
        "CREATE TABLE stadium (stadium_id INTEGER PRIMARY KEY, name TEXT, capacity INTEGER);")
    names = ["Joe Sharp", "Timbaland", "Justin Brown", "Rose White", "John Nizinik", "Tribal King", "Ann", "Bo"]
    for i, (name, country) in enumerate(zip(names, COUNTRIES)):
        conn.execute("INSERT INTO singer VALUES (?, ?, ?, ?, ?)", (i, name, country, LONG if i == 3 else "short",
                                                                   20 + i))
    for i, name in enumerate(["Stadium A", "Stadium B", "Stadium C", "Stadium D"]):
        conn.execute("INSERT INTO stadium VALUES (?, ?, ?)", (i, name, 1000 * i))
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def db(tmp_path) -> Path:
    return make_db(tmp_path / "database" / "concerts" / "concerts.sqlite")


def test_question_value_is_found_and_unrelated_values_are_not(db):
    values = read_text_values(db)
    matches = match_values("Show the names of singers from France.", values, per_column=3)
    assert matches == {("singer", "country"): ["France"]}
    # fuzzy: a near miss still finds the stored spelling; the threshold keeps other countries out
    assert match_values("singers from the Netherland", values, per_column=3) == {("singer", "country"): ["Netherlands"]}
    assert match_values("How many singers are there?", values, per_column=3) == {}
    # numbers are not text values; a value longer than MAX_VALUE_CHARS is never a candidate
    assert all(len(v) <= MAX_VALUE_CHARS for vs in values.values() for v in vs)
    assert ("singer", "age") not in values and LONG not in values[("singer", "bio")]


def test_caps_per_column_total_and_rows_scanned(db):
    values = read_text_values(db)
    q = "Capacity of stadium a, stadium b, stadium c and stadium d for singers from Japan"
    assert match_values(q, values, per_column=2)[("stadium", "name")] == ["Stadium A", "Stadium B"]
    assert len(match_values(q, values, per_column=4)[("stadium", "name")]) == 4
    capped = match_values(q, values, per_column=4, max_total=3)
    assert sum(len(v) for v in capped.values()) == 3
    # only the first rows of each column are read
    assert read_text_values(db, max_rows=2)[("singer", "country")] == ["France", "Netherlands"]


def test_rendering_with_values_off_is_todays_text(db):
    schema = read_sqlite_schema(db, sample_values=2)
    expected = (
        "CREATE TABLE singer (\n"
        "  singer_id INTEGER, -- e.g. 0, 1\n"
        "  name TEXT, -- e.g. 'Joe Sharp', 'Timbaland'\n"
        "  country TEXT, -- e.g. 'France', 'Netherlands'\n"
        "  bio TEXT, -- e.g. 'short', 'A very long biography that mentions F...'\n"
        "  age INTEGER, -- e.g. 20, 21\n"
        "  PRIMARY KEY (singer_id)\n"
        ");\n\n"
        "CREATE TABLE stadium (\n"
        "  stadium_id INTEGER, -- e.g. 0, 1\n"
        "  name TEXT, -- e.g. 'Stadium A', 'Stadium B'\n"
        "  capacity INTEGER, -- e.g. 0, 1000\n"
        "  PRIMARY KEY (stadium_id)\n"
        ");"
    )
    assert render_schema(schema) == render_schema(schema, question_values={}) == expected
    on = render_schema(schema, question_values=QuestionValueMatcher(2).match(db, "singers from Japan"))
    assert "  country TEXT, -- e.g. 'France', 'Netherlands'; values matching the question: 'Japan'\n" in on
    assert on.replace("; values matching the question: 'Japan'", "") == expected
    q = Question(qid="q", db_id="concerts", question="singers from Japan", gold="SELECT 1", db_path=db)
    assert question_messages(q, {}, 2) == question_messages(q, {}, 2, make_matcher(0))
    assert make_matcher(0) is None
    with pytest.raises(T2SError, match="question-values"):
        make_matcher(-1)


def _tiny_spider(root: Path, questions: list[tuple[str, str]]) -> Path:
    make_db(root / "database" / "concerts" / "concerts.sqlite")
    make_db(root / "database" / "other" / "other.sqlite")
    (root / "tables.json").write_text(json.dumps([{"db_id": "concerts"}, {"db_id": "other"}]))
    items = [{"db_id": db, "question": q, "query": "SELECT name FROM singer"} for db, q in questions]
    (root / "train_spider.json").write_text(json.dumps(items))
    (root / "train_others.json").write_text("[]")
    return root


def test_prepared_training_prompt_equals_eval_and_infer_prompt(tmp_path, qwen3_tokenizer_dir, qwen3_tokenizer):
    from t2s_fast.data.prepare import PrepareConfig, prepare
    from t2s_fast.infer import InferConfig, build_infer_messages

    questions = [("concerts", "Names of singers from France?"), ("concerts", "Capacity of stadium b?"),
                 ("other", "Which singers come from Japan?"), ("other", "How many singers are there?")]
    spider = _tiny_spider(tmp_path / "spider", questions)
    out = tmp_path / "prepared"
    stats = prepare(PrepareConfig(spider_dir=spider, out_dir=out, tokenizer=str(qwen3_tokenizer_dir),
                                  question_values=2, valid_fraction=0.5))
    assert stats["question_values"]["examples_with_values"] == 3
    lines = [json.loads(x) for f in ("stage1_train.jsonl", "stage1_valid.jsonl")
             for x in (out / f).read_text().splitlines()]
    assert len(lines) == 4
    cache, matcher = {}, make_matcher(2)
    for line in lines:
        db_path = spider / "database" / line["db_id"] / f"{line['db_id']}.sqlite"
        q = Question(qid=line["id"], db_id=line["db_id"], question=line["question"], gold=line["sql"], db_path=db_path)
        assert question_messages(q, cache, 3, matcher) == line["messages"][:2]
        assert build_prompts([q], qwen3_tokenizer, question_values=2)[q.qid] == build_prompts(
            [Question(qid=q.qid, db_id=q.db_id, question=q.question, gold=None, messages=line["messages"])],
            qwen3_tokenizer)[q.qid]
        infer_msgs = build_infer_messages(InferConfig(model_path="m", question=line["question"], db=str(db_path),
                                                      question_values=2))
        assert infer_msgs == line["messages"][:2]
    by_q = {line["question"]: line["messages"][1]["content"] for line in lines}
    assert "values matching the question: 'France'" in by_q["Names of singers from France?"]
    assert "values matching the question: 'Stadium B'" in by_q["Capacity of stadium b?"]
    assert "values matching the question" not in by_q["How many singers are there?"]
