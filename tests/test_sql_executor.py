"""The executor against hostile queries: writes, attaches, runaway joins, huge results, crashes and hangs."""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from pathlib import Path

import pytest

from t2s_fast.sql.executor import ExecutorPool, execute_query


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
