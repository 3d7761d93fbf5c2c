"""The SQL layer (t2s_fast/sql/): result comparison, the executor, the scorer and `t2s-fast score`.

- Result-comparison rules (Spider 1.0 test-suite EX and Spider 2.0), one hand-made case per rule.
- The executor against hostile queries: writes, attaches, runaway joins, huge results, crashes and hangs.
- The scorer and `t2s-fast score`: gold-vs-gold on all of Spider dev, SQL-level rules, bad input, the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from t2s_fast.cli import main as cli_main
from t2s_fast.errors import T2SError
from t2s_fast.sql import scorer
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
from t2s_fast.sql.executor import ExecutorPool, execute_query
from t2s_fast.sql.hardness import official_hardness_from_dict, spider_hardness
from t2s_fast.sql.scorer import ScoreConfig, score_file, score_records, summarize
from t2s_fast.sql.spider2 import gold_csv_paths, load_eval_settings, load_gold_tables, spider2_match_any

# --- sql_compare ---
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


# --- sql_executor ---
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def db_copy(spider1_dir, tmp_path) -> Path:
    """A temporary copy of a real Spider database (never the shared file)."""
    src = spider1_dir / "database" / "concert_singer" / "concert_singer.sqlite"
    dst = tmp_path / "db" / "concert_singer.sqlite"
    dst.parent.mkdir()
    shutil.copy2(src, dst)
    return dst


HOSTILE = [
    "DROP TABLE singer",
    "DELETE FROM singer",
    "UPDATE singer SET Name = 'x'",
    "INSERT INTO singer (Singer_ID, Name) VALUES (99, 'x')",
    "CREATE TABLE evil (a)",
    "CREATE TEMP TABLE evil (a)",
    "CREATE VIEW evil AS SELECT 1",
    "ALTER TABLE singer ADD COLUMN evil",
    "ATTACH DATABASE '{dir}/attached.sqlite' AS evil",
    "PRAGMA user_version = 7",
    "PRAGMA journal_mode = WAL",
    "PRAGMA writable_schema = ON",
    "VACUUM",
    "VACUUM INTO '{dir}/copy.sqlite'",
    "REINDEX",
    "BEGIN IMMEDIATE",
    "SELECT 1; DROP TABLE singer",
]


@pytest.mark.parametrize("sql", HOSTILE)
def test_writes_fail_as_runtime_error_and_leave_the_file_byte_identical(db_copy, sql):
    sql = sql.format(dir=db_copy.parent)
    before = _sha256(db_copy)
    files_before = sorted(p.name for p in db_copy.parent.iterdir())
    res = execute_query(db_copy, sql)
    assert not res.ok and res.error_kind == "runtime", res
    assert _sha256(db_copy) == before
    assert sorted(p.name for p in db_copy.parent.iterdir()) == files_before  # no attached/vacuumed file made


def test_reading_still_works(db_copy):
    res = execute_query(db_copy, "SELECT Name FROM singer ORDER BY Name LIMIT 2;")
    assert res.ok and res.columns == ["Name"] and len(res.rows) == 2 and not res.truncated


@pytest.mark.parametrize(
    "sql,kind",
    [("SELEC name FROM singer", "parse"), ("SELECT nope FROM singer", "runtime"), ("", "parse")],
)
def test_error_kinds(db_copy, sql, kind):
    assert execute_query(db_copy, sql).error_kind == kind


def test_missing_database_is_an_error_not_an_exception(tmp_path):
    res = execute_query(tmp_path / "nope.sqlite", "SELECT 1")
    assert res.error_kind == "no_database"
    assert not (tmp_path / "nope.sqlite").exists()  # read-only open never creates the file


def test_cartesian_product_stops_at_the_timeout(spider1_dir):
    db = spider1_dir / "database" / "world_1" / "world_1.sqlite"
    sql = "SELECT count(*) FROM city a, city b, city c WHERE a.Population + b.Population + c.Population = 7"
    start = time.monotonic()
    res = execute_query(db, sql, timeout_s=1.0)
    assert res.error_kind == "timeout"
    assert time.monotonic() - start < 3.0


def test_millions_of_rows_stay_within_the_caps(db_copy):
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000) SELECT x, 'padding' FROM c"
    res = execute_query(db_copy, sql, max_rows=100_000)
    assert res.ok and res.truncated and len(res.rows) == 100_000
    res = execute_query(db_copy, sql, max_result_bytes=1_000_000)
    assert res.truncated and len(res.rows) < 20_000


def test_pool_returns_results_in_input_order(db_copy):
    jobs = [(db_copy, f"SELECT {i}") for i in range(40)] + [(db_copy, "SELECT nope")]
    with ExecutorPool(workers=2, timeout_s=5) as pool:
        results = pool.run(jobs)
    assert [r.rows for r in results[:40]] == [[(i,)] for i in range(40)]
    assert results[40].error_kind == "runtime"


CHAOS_WORKER = """
import json, os, sys, time
from t2s_fast.sql import executor

real = executor.execute_query

def chaos(db, sql, **kw):
    if sql == "CRASH":
        os._exit(3)  # like a segfault or an out-of-memory kill
    if sql == "HANG":
        time.sleep(60)  # a hang the in-SQLite timeout cannot reach
    return real(db, sql, **kw)

executor.execute_query = chaos
executor._worker_loop(json.loads(sys.argv[1]))
"""


class ChaosPool(ExecutorPool):
    script: Path = None

    def _worker_command(self):
        return [sys.executable, str(self.script), *super()._worker_command()[3:]]


def test_pool_survives_a_crashing_and_a_hanging_worker(db_copy, tmp_path):
    script = tmp_path / "chaos_worker.py"
    script.write_text(CHAOS_WORKER)
    jobs = [(db_copy, "SELECT 1"), (db_copy, "CRASH"), (db_copy, "SELECT 2"), (db_copy, "HANG"), (db_copy, "SELECT 3")]
    pool = ChaosPool(workers=2, timeout_s=1.0, kill_grace_s=0.5)
    pool.script = script
    start = time.monotonic()
    with pool:
        results = pool.run(jobs)
    assert time.monotonic() - start < 15
    assert results[0].rows == [(1,)] and results[2].rows == [(2,)] and results[4].rows == [(3,)]
    assert results[1].error_kind == "runtime" and "crashed" in results[1].error
    assert results[3].error_kind == "timeout"


def test_in_process_mode_gives_the_same_results(db_copy):
    jobs = [(db_copy, "SELECT count(*) FROM singer"), (db_copy, "DROP TABLE singer")]
    with ExecutorPool(workers=0) as pool:
        results = pool.run(jobs)
    assert results[0].ok and results[1].error_kind == "runtime"


# --- sql_scorer ---
def _dev_records(spider1_dir):
    dev = json.loads((spider1_dir / "dev.json").read_text())
    return [{"id": i, "db_id": ex["db_id"], "gold": ex["query"], "pred": ex["query"]} for i, ex in enumerate(dev)]


@pytest.mark.slow
def test_gold_against_gold_is_100_percent_on_spider_dev(spider1_dir):
    records = _dev_records(spider1_dir)
    # a trailing space makes every prediction a distinct job, so both sides really run (no de-duplication)
    for rec in records:
        rec["pred"] = rec["gold"] + " "
    scorer.clear_gold_cache()
    start = time.monotonic()
    scored = score_records(records, ScoreConfig(spider_dir=spider1_dir, workers=2))
    elapsed = time.monotonic() - start
    summary = summarize(scored)
    missing = {r["db_id"] for r in scored if r["error_kind"] == "no_database"}
    assert missing <= {"wta_1", "baseball_1", "soccer_1"}
    assert summary["ex"] == 1.0, [r for r in scored if not r["exec_match"] and r["error_kind"] != "no_database"][:3]
    assert summary["n"] + summary["excluded_no_database"] == len(records)
    assert summary["errors"] == ({"no_database": summary["excluded_no_database"]} if missing else {})
    assert all(r["id"] == i for i, r in enumerate(scored))  # input order and extra fields kept
    assert elapsed < 60


# SQL-level cases on concert_singer: (rule, gold, pred, keep_distinct, expected exec_match, expected error kind)
SQL_CASES = [
    ("same result", "SELECT count(*) FROM singer", "SELECT COUNT(Singer_ID) FROM singer", False, True, None),
    ("columns permuted", "SELECT Name, Age FROM singer", "SELECT Age, Name FROM singer", False, True, None),
    ("row order free without ORDER BY", "SELECT Name FROM singer", "SELECT Name FROM singer ORDER BY Name DESC", False,
     True, None),
    ("row order checked with ORDER BY", "SELECT Name FROM singer ORDER BY Age",
     "SELECT Name FROM singer ORDER BY Age DESC", False, False, None),
    ("DISTINCT stripped from both by default", "SELECT DISTINCT Country FROM singer", "SELECT Country FROM singer",
     False, True, None),
    ("--keep-distinct keeps it", "SELECT DISTINCT Country FROM singer", "SELECT Country FROM singer", True, False,
     None),
    ("two empty results match", "SELECT Name FROM singer WHERE Age > 1000", "SELECT Country FROM singer WHERE 0",
     False, True, None),
    ("wrong value", "SELECT count(*) FROM singer WHERE Age > 30", "SELECT count(*) FROM singer WHERE Age > 40", False,
     False, None),
    ("syntax error is a parse error", "SELECT count(*) FROM singer", "SELECT count(* FROM singer", False, False,
     "parse"),
    ("empty prediction is a parse error", "SELECT count(*) FROM singer", "", False, False, "parse"),
    ("unknown column is a runtime error", "SELECT count(*) FROM singer", "SELECT nope FROM singer", False, False,
     "runtime"),
    ("a write is a runtime error", "SELECT count(*) FROM singer", "DELETE FROM singer", False, False, "runtime"),
    ("official postprocess joins '> ='", "SELECT count(*) FROM singer WHERE Age >= 30",
     "SELECT count(*) FROM singer WHERE Age > = 30", False, True, None),
]


@pytest.mark.parametrize("rule,gold,pred,keep_distinct,match,kind", SQL_CASES, ids=[c[0] for c in SQL_CASES])
def test_sql_level_rules(spider1_dir, rule, gold, pred, keep_distinct, match, kind):
    rec = {"db_id": "concert_singer", "gold": gold, "pred": pred}
    [out] = score_records([rec], ScoreConfig(spider_dir=spider1_dir, workers=0, keep_distinct=keep_distinct))
    assert out["exec_match"] is match and out["error_kind"] == kind
    assert (out["error"] is None) == (kind is None)
    if kind:
        assert out["error"].startswith(f"{kind}: ")


def test_pred_dialect_is_transpiled_and_bad_text_is_a_parse_error(spider1_dir):
    cfg = ScoreConfig(spider_dir=spider1_dir, workers=0, pred_dialect="mysql")
    recs = [
        {"db_id": "concert_singer", "gold": "SELECT Name FROM singer WHERE Age > 30",
         "pred": "SELECT `Name` FROM `singer` WHERE `Age` > 30"},
        {"db_id": "concert_singer", "gold": "SELECT count(*) FROM singer", "pred": "SELECT FROM WHERE ((("},
    ]
    out = score_records(recs, cfg)
    assert out[0]["exec_match"] is True
    assert out[1]["error_kind"] == "parse"


def test_missing_database_is_a_per_line_error(spider1_dir):
    recs = [
        {"db_id": "no_such_db", "gold": "SELECT 1", "pred": "SELECT 1"},
        {"db_id": "concert_singer", "gold": "SELECT count(*) FROM singer", "pred": "SELECT count(*) FROM singer"},
    ]
    out = score_records(recs, ScoreConfig(spider_dir=spider1_dir / "database", workers=1))
    assert out[0]["error_kind"] == "no_database" and out[0]["exec_match"] is False
    assert out[1]["exec_match"] is True
    summary = summarize(out)
    assert summary["ex"] == 1.0 and summary["n"] == 1 and summary["errors"] == {"no_database": 1}


def test_a_failing_gold_query_is_excluded_not_scored_as_the_models_miss(spider1_dir):
    recs = [
        {"db_id": "concert_singer", "gold": "SELECT no_such_column FROM singer", "pred": "SELECT count(*) FROM singer"},
        {"db_id": "concert_singer", "gold": "SELECT count(*) FROM singer", "pred": "SELECT count(*) FROM singer"},
    ]
    out = score_records(recs, ScoreConfig(spider_dir=spider1_dir / "database", workers=1))
    assert out[0]["error_kind"] == "gold_error"
    summary = summarize(out)
    assert summary["ex"] == 1.0 and summary["n"] == 1
    assert summary["excluded_gold_error"] == 1 and summary["excluded_no_database"] == 0
    assert summary["errors"] == {"gold_error": 1}  # still reported, apart from EX


def test_huge_prediction_is_wrong_not_fatal(spider1_dir):
    huge = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000) SELECT x FROM c"
    rec = {"db_id": "concert_singer", "gold": "SELECT Name FROM singer", "pred": huge}
    [out] = score_records([rec], ScoreConfig(spider_dir=spider1_dir, workers=1, max_rows=50_000))
    assert out["exec_match"] is False and out["truncated"] is True


def test_timeout_through_the_scorer(spider1_dir):
    rec = {
        "db_id": "world_1",
        "gold": "SELECT count(*) FROM city",
        "pred": "SELECT count(*) FROM city a, city b, city c WHERE a.Population + b.Population + c.Population = 7",
    }
    [out] = score_records([rec], ScoreConfig(spider_dir=spider1_dir, workers=1, timeout=1.0))
    assert out["error_kind"] == "timeout"


def test_gold_results_are_cached_across_calls(spider1_dir, monkeypatch):
    scorer.clear_gold_cache()
    rec = {"db_id": "concert_singer", "gold": "SELECT Name FROM singer", "pred": "SELECT Name FROM singer ORDER BY 1"}
    cfg = ScoreConfig(spider_dir=spider1_dir, workers=0)
    score_records([rec], cfg)
    seen = []
    real = scorer._run_jobs
    monkeypatch.setattr(scorer, "_run_jobs", lambda jobs, c, p: seen.extend(jobs) or real(jobs, c, p))
    [out] = score_records([rec], cfg)
    assert out["exec_match"] is True
    assert [sql for _, sql in seen] == [rec["pred"]]  # only the prediction ran again


def test_bad_records_name_the_line(tmp_path, spider1_dir):
    path = tmp_path / "preds.jsonl"
    path.write_text('{"db_id": "concert_singer", "gold": "SELECT 1", "pred": "SELECT 1"}\n\n{"db_id": "x", "gold": 5, '
                    '"pred": "SELECT 1"}\n')
    out = tmp_path / "out.jsonl"
    with pytest.raises(T2SError, match=r"preds.jsonl:3: field 'gold'"):
        score_file(path, out, ScoreConfig(spider_dir=spider1_dir, workers=0))
    assert not out.exists()  # nothing half-written


def test_cli_json_and_table(tmp_path, spider1_dir, capsys):
    path = tmp_path / "preds.jsonl"
    lines = [
        {"db_id": "concert_singer", "gold": "SELECT count(*) FROM singer", "pred": "SELECT count(*) FROM singer",
         "note": "kept"},
        {"db_id": "concert_singer", "gold": "SELECT Name FROM singer", "pred": "SELECT nope FROM singer"},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "scored.jsonl"
    cli_main(["score", "--pred", str(path), "--spider-dir", str(spider1_dir), "--out", str(out), "--workers", "1",
              "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["ex"] == 0.5 and summary["n"] == 2 and summary["errors"] == {"runtime": 1}
    scored = [json.loads(x) for x in out.read_text().splitlines()]
    assert scored[0]["note"] == "kept" and scored[0]["exec_match"] is True and scored[0]["hardness"] == "easy"
    assert scored[1]["error"].startswith("runtime: ")

    cli_main(["score", "--pred", str(path), "--spider-dir", str(spider1_dir), "--workers", "0"])
    text = capsys.readouterr().out
    assert "Execution accuracy" in text and "50.0" in text


def test_cli_bad_input_exits_2(tmp_path, spider1_dir, capsys):
    path = tmp_path / "preds.jsonl"
    path.write_text('{"db_id": "concert_singer", "gold": "SELECT 1"\n')
    with pytest.raises(SystemExit) as exc:
        cli_main(["score", "--pred", str(path), "--spider-dir", str(spider1_dir)])
    assert exc.value.code == 2
    assert "preds.jsonl:1" in capsys.readouterr().err
