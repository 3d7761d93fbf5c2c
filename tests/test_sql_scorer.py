"""The scorer and `t2s-fast score`: gold-vs-gold on all of Spider dev, SQL-level rules, bad input, the CLI."""

from __future__ import annotations

import json
import time

import pytest

from t2s_fast.cli import main as cli_main
from t2s_fast.errors import T2SError
from t2s_fast.sql import scorer
from t2s_fast.sql.scorer import ScoreConfig, score_file, score_records, summarize


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
