"""SQL extraction from model replies: what a user's EX depends on when a model wraps its SQL."""

import pytest

from t2s_fast.generate.extract import extract, extract_sql

CASES = [
    # (raw reply, expected SQL, changed)
    ("SELECT name FROM singer", "SELECT name FROM singer", False),
    ("  SELECT name FROM singer;\n", "SELECT name FROM singer", False),
    ("```sql\nSELECT count(*) FROM singer\n```", "SELECT count(*) FROM singer", True),
    ("```\nSELECT 1\n```\nThis returns one.", "SELECT 1", True),
    ("Here is the query:\n```sql\nSELECT a FROM t WHERE b = 'x;y'\n```", "SELECT a FROM t WHERE b = 'x;y'", True),
    ("Here is the query: SELECT a FROM t", "SELECT a FROM t", True),
    ("SELECT a FROM t;\nThis query selects a.", "SELECT a FROM t", True),
    ("SELECT a\nFROM t\n\nThis query selects a.", "SELECT a\nFROM t", True),
    ("WITH x AS (SELECT 1 AS v)\n\nSELECT v FROM x", "WITH x AS (SELECT 1 AS v)\n\nSELECT v FROM x", False),
    ("<think>\nthe user wants names\n</think>\n\nSELECT name FROM singer", "SELECT name FROM singer", True),
    ("<think>\n\n</think>\n\nSELECT name FROM singer", "SELECT name FROM singer", True),
    ("reasoning without an opening tag</think>SELECT 2", "SELECT 2", True),
    ("```sql\nSELECT 3", "SELECT 3", True),  # an unclosed fence (cut by max_new_tokens)
    ("SELECT 'a;b' FROM t; SELECT 2", "SELECT 'a;b' FROM t", True),
    ("select lower(name) from singer", "select lower(name) from singer", False),
    ("I cannot answer that.", "I cannot answer that.", False),
    ("", "", False),
    # Seen on the H200 with the real Qwen2.5-Coder-0.5B: a reply ending in a lone closing fence (the opening one
    # never written) used to extract as an empty prediction.
    ("SELECT count(*) FROM singer\n```", "SELECT count(*) FROM singer", True),
    ("SELECT count(*) FROM singer```", "SELECT count(*) FROM singer", True),
    ("SELECT name FROM singer\n```\nThis lists the names.\n```", "SELECT name FROM singer", True),
    # ... and a blank line inside a WITH query used to cut it off: inside parentheses, after a comma or a
    # keyword that needs more, and before the next common table expression, a blank line never ends the query.
    ("WITH a AS (\n  SELECT x FROM t\n\n  WHERE x > 1\n)\nSELECT * FROM a",
     "WITH a AS (\n  SELECT x FROM t\n\n  WHERE x > 1\n)\nSELECT * FROM a", False),
    ("WITH a AS (SELECT x FROM t),\n\nb AS (SELECT y FROM u)\nSELECT * FROM a JOIN b",
     "WITH a AS (SELECT x FROM t),\n\nb AS (SELECT y FROM u)\nSELECT * FROM a JOIN b", False),
    ("WITH a AS (SELECT x FROM t)\n\nb AS (SELECT y FROM u)\nSELECT * FROM a, b",
     "WITH a AS (SELECT x FROM t)\n\nb AS (SELECT y FROM u)\nSELECT * FROM a, b", False),
    ("SELECT name FROM singer WHERE\n\ncountry = 'France'", "SELECT name FROM singer WHERE\n\ncountry = 'France'",
     False),
    ("WITH a AS (SELECT 1 AS v)\nSELECT v FROM a\n\nThe CTE computes v.", "WITH a AS (SELECT 1 AS v)\nSELECT v FROM a",
     True),
]


@pytest.mark.parametrize("raw,sql,changed", CASES)
def test_extract_table(raw, sql, changed):
    got = extract(raw)
    assert got.sql == sql
    assert got.changed is changed
    assert extract_sql(raw) == sql


def test_extract_reports_the_rule_used():
    assert extract("SELECT 1").method == "plain"
    assert extract("```sql\nSELECT 1\n```").method == "fence"
    assert extract("The answer: SELECT 1").method == "keyword"
    assert extract("no sql here").method == "none"
