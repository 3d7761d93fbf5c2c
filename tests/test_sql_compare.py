"""Result-comparison rules (Spider 1.0 test-suite EX and Spider 2.0), one hand-made case per rule."""

from __future__ import annotations

import json

import pytest

from t2s_fast.sql.compare import (
    gold_has_order_by,
    official_postprocess,
    read_csv_table,
    spider1_results_match,
    spider2_match_multi,
    spider2_results_match,
    strip_distinct,
    table_from_rows,
)
from t2s_fast.sql.hardness import official_hardness_from_dict, spider_hardness
from t2s_fast.sql.spider2 import gold_csv_paths, load_eval_settings, load_gold_tables, spider2_match_any

# (rule, gold rows, pred rows, order_matters, expected)
SPIDER1_CASES = [
    ("two empty results are equal", [], [], False, True),
    ("empty vs non-empty", [], [(1,)], False, False),
    ("row count differs", [(1,), (2,)], [(1,)], False, False),
    ("column count differs", [(1, 2)], [(1,)], False, False),
    ("columns may be permuted", [(1, "a"), (2, "b")], [("a", 1), ("b", 2)], False, True),
    ("columns permuted, order matters too", [(1, "a"), (2, "b")], [("a", 1), ("b", 2)], True, True),
    ("row order ignored without ORDER BY", [(1,), (2,), (3,)], [(3,), (1,), (2,)], False, True),
    ("row order matters with ORDER BY", [(1,), (2,), (3,)], [(3,), (1,), (2,)], True, False),
    ("rows are a multiset (duplicates count)", [(1,), (1,), (2,)], [(1,), (2,), (2,)], False, False),
    ("same multiset with duplicates", [(1,), (1,), (2,)], [(2,), (1,), (1,)], False, True),
    ("int equals float of same value", [(1,)], [(1.0,)], False, True),
    ("no float tolerance", [(0.333,)], [(0.3333,)], False, False),
    ("None equals None", [(None, 1)], [(None, 1)], False, True),
    ("None differs from 0", [(None,)], [(0,)], False, False),
    ("values must be in the same permuted column for every row", [(1, 2), (2, 1)], [(1, 2), (1, 2)], False, False),
    (
        "more than 3 columns: sampled pruning still finds the permutation",
        [(i, f"s{i}", i * 1.5, i % 2, f"t{i}") for i in range(30)],
        [(f"t{i}", i % 2, i, i * 1.5, f"s{i}") for i in reversed(range(30))],
        False,
        True,
    ),
    (
        "more than 3 columns: one wrong value",
        [(i, f"s{i}", i * 1.5, i % 2) for i in range(30)],
        [(i, f"s{i}", i * 1.5, (i + 1) % 2 if i == 7 else i % 2) for i in range(30)],
        False,
        False,
    ),
    ("column names are not compared (only values)", [("x",)], [("x",)], False, True),
    ("strings are case sensitive", [("Paris",)], [("paris",)], False, False),
]


@pytest.mark.parametrize("rule,gold,pred,order_matters,expected", SPIDER1_CASES, ids=[c[0] for c in SPIDER1_CASES])
def test_spider1_rule(rule, gold, pred, order_matters, expected):
    assert spider1_results_match(gold, pred, order_matters=order_matters) is expected


STRIP_DISTINCT_CASES = [
    ("SELECT DISTINCT name FROM t", "SELECT  name FROM t"),
    ("SELECT count(DISTINCT name) FROM t", "SELECT count( name) FROM t"),  # parse.remove_distinct drops this too
    ("select distinct a from t where b = 'distinct'", "select  a from t where b = 'distinct'"),
    ('SELECT "distinct" FROM t', 'SELECT "distinct" FROM t'),
    ("SELECT a FROM t UNION SELECT a FROM u", "SELECT a FROM t UNION SELECT a FROM u"),
]


@pytest.mark.parametrize("sql,expected", STRIP_DISTINCT_CASES)
def test_strip_distinct_removes_only_the_keyword(sql, expected):
    assert strip_distinct(sql) == expected


ORDER_BY_CASES = [
    ("SELECT a FROM t ORDER BY a", True),
    ("SELECT a FROM t", False),
    ("SELECT a FROM (SELECT a FROM t ORDER BY a LIMIT 3)", True),  # as the official substring test
    ("SELECT a FROM t ORDER  BY a", True),  # spacing does not fool the AST
    ("SELECT a FROM t WHERE b = 'order by'", False),
]


@pytest.mark.parametrize("sql,expected", ORDER_BY_CASES)
def test_gold_has_order_by(sql, expected):
    assert gold_has_order_by(sql) is expected


def test_official_postprocess():
    assert official_postprocess("SELECT a FROM t WHERE b > = 3 AND c ! = 2 AND d = YEAR(CURDATE())") == (
        "SELECT a FROM t WHERE b >= 3 AND c != 2 AND d = 2020"
    )


# ---- Spider 2.0: (rule, gold columns, pred columns, condition_cols, ignore_order, expected)
SPIDER2_CASES = [
    ("same table", [[1, 2], ["a", "b"]], [[1, 2], ["a", "b"]], None, False, True),
    ("column names and column order are ignored", [[1, 2], ["a", "b"]], [["a", "b"], [1, 2]], None, False, True),
    ("extra predicted columns are fine", [[1, 2]], [["x", "y"], [1, 2], [9, 9]], None, False, True),
    ("a missing gold column fails", [[1, 2], ["a", "b"]], [[1, 2]], None, False, False),
    ("condition_cols: only the listed gold columns count", [[1, 2], ["a", "b"]], [["a", "b"]], [1], False, True),
    ("condition_cols: a listed column still must match", [[1, 2], ["a", "b"]], [[1, 2]], [1], False, False),
    ("ignore_order: rows may come in any order", [[1, 2, 3]], [[3, 1, 2]], None, True, True),
    ("order kept when ignore_order is false", [[1, 2, 3]], [[3, 1, 2]], None, False, False),
    ("numbers match within abs_tol 1e-2", [[1.0, 2.5]], [[1.004, 2.495]], None, False, True),
    ("numbers beyond abs_tol do not match", [[1.0]], [[1.02]], None, False, False),
    ("int and float compare numerically", [[3]], [[3.0]], None, False, True),
    ("two missing values match", [[None, 1]], [[float("nan"), 1]], None, False, True),
    ("missing vs value does not match", [[None]], [[0]], None, False, False),
    ("text must be equal", [["Paris"]], [["paris"]], None, False, False),
    ("row counts must agree", [[1, 2]], [[1, 2, 2]], None, True, False),
]


@pytest.mark.parametrize("rule,gold,pred,cond,ignore_order,expected", SPIDER2_CASES, ids=[c[0] for c in SPIDER2_CASES])
def test_spider2_rule(rule, gold, pred, cond, ignore_order, expected):
    assert spider2_results_match(gold, pred, condition_cols=cond, ignore_order=ignore_order) is expected


def test_spider2_any_of_several_gold_tables():
    gold_a, gold_b = [[1, 2]], [[10, 20]]
    assert spider2_match_multi([[20, 10]], [gold_a, gold_b], ignore_order=True)
    assert not spider2_match_multi([[5, 6]], [gold_a, gold_b], ignore_order=True)
    # per-gold condition_cols ([[...], [...]]): gold b only checks its column 1
    gold_c = [[7, 8], ["x", "y"]]
    assert spider2_match_multi([["x", "y"]], [gold_a, gold_c], condition_cols=[[0], [1]], ignore_order=True)
    assert not spider2_match_multi([["x", "y"]], [gold_a, gold_c], condition_cols=[[0], [0]], ignore_order=True)
    # one flat list shared by every gold table
    assert spider2_match_multi([[1, 2]], [gold_a, gold_c], condition_cols=[0], ignore_order=True)
    assert not spider2_match_multi([[1, 2]], [], ignore_order=True)


def test_spider2_csv_round_trip_types_like_pandas(tmp_path):
    csv_path = tmp_path / "gold.csv"
    csv_path.write_text("name,total,share\nParis,3,0.5\nLyon,,0.25\n")
    header, gold = read_csv_table(csv_path)
    assert header == ["name", "total", "share"]
    assert gold == [["Paris", "Lyon"], [3.0, None], [0.5, 0.25]]
    # an executed result goes through the same text round trip: ints, floats and NULLs line up
    pred = table_from_rows(["n", "t", "s"], [("Lyon", None, 0.25), ("Paris", 3, 0.5)])
    assert spider2_results_match(gold, pred, ignore_order=True)
    # a text column stays text: "3" read from a mixed column is not the number 3
    _, mixed = read_csv_table(_write(tmp_path / "m.csv", "v\n3\nabc\n"))
    assert mixed == [["3", "abc"]]
    assert not spider2_results_match(mixed, [[3, "abc"]], ignore_order=True)


def _write(path, text):
    path.write_text(text)
    return path


def test_spider2_real_eval_settings_and_gold_csvs(spider2_dir):
    gold_dir = spider2_dir / "spider2-lite" / "evaluation_suite" / "gold"
    settings = load_eval_settings(gold_dir / "spider2lite_eval.jsonl")
    assert len(settings) == 547
    s = settings["local002"]
    assert s.condition_cols == [[1], [0], [0]] and s.ignore_order is True
    paths = gold_csv_paths(gold_dir / "exec_result", "local002")
    assert [p.name for p in paths] == ["local002_a.csv", "local002_b.csv", "local002_c.csv"]
    golds = load_gold_tables(gold_dir / "exec_result", "local002")
    # each gold answer matches itself, and a table holding only gold b's checked column matches too
    for gold in golds:
        assert spider2_match_any(gold, golds, s)
    assert spider2_match_any([golds[1][0]], golds, s)
    assert not spider2_match_any([[123456789.0]], golds, s)


# ---- hardness


HARDNESS_CASES = [
    ("SELECT count(*) FROM singer", "easy"),
    ("SELECT name FROM singer WHERE age > 20", "easy"),
    ("SELECT name, country FROM singer WHERE age > 20", "medium"),
    ("SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.sid WHERE T2.year = 2014", "medium"),
    ("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)", "hard"),
    ("SELECT name FROM singer WHERE age > 20 INTERSECT SELECT name FROM singer WHERE age < 30", "hard"),
    ("SELECT name, age FROM singer WHERE age > 20 INTERSECT SELECT name, age FROM singer WHERE age < 30", "extra"),
    ("SELECT a, count(*) FROM t JOIN u ON t.x = u.y WHERE b LIKE '%x%' OR c = 1 GROUP BY a ORDER BY count(*) DESC "
     "LIMIT 1", "extra"),
]


@pytest.mark.parametrize("sql,expected", HARDNESS_CASES)
def test_hardness_hand_cases(sql, expected):
    assert spider_hardness(sql) == expected


def test_hardness_matches_official_counting_on_all_of_spider_dev(spider1_dir):
    dev = json.loads((spider1_dir / "dev.json").read_text())
    ours = [spider_hardness(ex["query"]) for ex in dev]
    official = [official_hardness_from_dict(ex["sql"]) for ex in dev]
    assert ours == official
    counts = {level: ours.count(level) for level in ("easy", "medium", "hard", "extra")}
    assert counts == {"easy": 248, "medium": 446, "hard": 174, "extra": 166}  # the published dev split


def test_hardness_of_unparsable_text_is_unknown():
    assert spider_hardness("this is not sql (") == "unknown"
