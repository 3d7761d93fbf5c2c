"""The paired comparison: EX difference with its paired bootstrap interval, on cases whose answer is known, and
`t2s-fast report RUN_A RUN_B` printing it from two runs' per-question files."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from t2s_fast.errors import T2SError
from t2s_fast.evaluate.paired import (
    compare_runs,
    describe,
    paired_bootstrap,
    read_per_question,
    verdict,
    write_per_question,
)


def _verdicts(pattern: list[bool]) -> dict[str, bool]:
    return {f"q{i}": v for i, v in enumerate(pattern)}


def test_identical_verdicts_give_a_zero_interval_called_noise():
    a = _verdicts([True, False] * 50)
    c = paired_bootstrap(a, dict(a))
    assert (c["diff"], c["ci_low"], c["ci_high"]) == (0.0, 0.0, 0.0)
    assert (c["right_to_wrong"], c["wrong_to_right"], c["n"]) == (0, 0, 100)
    assert verdict(c) == "noise"


def test_all_discordant_pairs_one_way_give_an_interval_above_zero():
    a = _verdicts([False] * 10 + [True] * 40 + [False] * 50)
    b = _verdicts([True] * 10 + [True] * 40 + [False] * 50)  # 10 wrong -> right, nothing the other way
    c = paired_bootstrap(a, b)
    assert c["diff"] == pytest.approx(0.10) and (c["right_to_wrong"], c["wrong_to_right"]) == (0, 10)
    assert 0 < c["ci_low"] < 0.10 < c["ci_high"]
    assert verdict(c) == "gain"
    reverse = paired_bootstrap(b, a)
    assert reverse["ci_high"] < 0 and verdict(reverse) == "loss"


def test_two_questions_one_discordant_gives_the_exact_interval():
    # resampling 2 questions: the difference is 0, 1/2 or 1 with chances 1/4, 1/2, 1/4, so the central 95% is [0, 1]
    c = paired_bootstrap({"x": False, "y": True}, {"x": True, "y": True})
    assert c["diff"] == 0.5 and (c["ci_low"], c["ci_high"]) == (0.0, 1.0) and verdict(c) == "noise"


def test_interval_matches_the_known_variance_of_a_paired_difference():
    # n=1000, 100 wrong->right, 50 right->wrong: difference 0.05; the sampling standard deviation of the mean of
    # d in {+1, -1, 0} is sqrt((p+ + p- - diff^2) / n) = 0.01214, so the 95% interval is about 0.05 +- 0.0238
    a = _verdicts([False] * 100 + [True] * 50 + [True] * 400 + [False] * 450)
    b = _verdicts([True] * 100 + [False] * 50 + [True] * 400 + [False] * 450)
    c = paired_bootstrap(a, b)
    assert c["diff"] == pytest.approx(0.05) and (c["ex_a"], c["ex_b"]) == (0.45, 0.5)
    half = 1.96 * math.sqrt((0.15 - 0.05 ** 2) / 1000)
    assert c["ci_low"] == pytest.approx(0.05 - half, abs=0.003)
    assert c["ci_high"] == pytest.approx(0.05 + half, abs=0.003)
    assert verdict(c) == "gain"
    assert paired_bootstrap(a, b) == c  # seeded: the same interval every time


def test_questions_are_matched_by_id_and_unmatched_ones_left_out():
    a = {"q1": True, "q2": False, "only-a": True}
    b = {"q2": True, "q1": True, "only-b": False}
    c = paired_bootstrap(a, b)
    assert (c["n"], c["wrong_to_right"], c["right_to_wrong"], c["only_a"], c["only_b"]) == (2, 1, 0, 1, 1)
    with pytest.raises(T2SError, match="share no question"):
        paired_bootstrap({"x": True}, {"y": True})


def _run(tmp_path, name, verdicts_by_adapter):
    folder = tmp_path / name
    recs = [{"adapter": ad, "qid": f"dev-{i:04d}", "db_id": "d", "pred": "SELECT 1", "exec_match": v,
             "error_kind": None if v else "wrong_result", "hardness": "easy"}
            for ad, vs in verdicts_by_adapter.items() for i, v in enumerate(vs)]
    recs.append({"adapter": "stage1", "qid": "gold-broken", "exec_match": False, "error_kind": "gold_error"})
    write_per_question(folder, recs)
    (folder / "report.json").write_text(json.dumps({"adapters": {}}))
    return folder


def test_per_question_file_is_gzipped_and_the_same_bytes_for_the_same_lines(tmp_path):
    recs = [{"adapter": "a", "qid": "q1", "exec_match": True}]
    p1 = write_per_question(tmp_path / "one", recs)
    p2 = write_per_question(tmp_path / "two", recs)
    assert p1.name == "scored.jsonl.gz" and p1.read_bytes() == p2.read_bytes()
    assert json.loads(gzip.decompress(p1.read_bytes())) == recs[0]
    assert read_per_question(tmp_path / "one") == recs


def test_compare_runs_per_adapter_in_both_and_gold_errors_left_out(tmp_path):
    a = _run(tmp_path, "a", {"stage1": [True, False, False, True], "base": [False] * 4})
    b = _run(tmp_path, "b", {"stage1": [True, True, True, True]})
    (c,) = compare_runs(a, b)
    assert c["adapter"] == "stage1" and c["n"] == 4 and c["wrong_to_right"] == 2 and c["diff"] == 0.5
    assert "wrong->right" in describe(c)


def test_report_command_prints_the_paired_comparison(tmp_path):
    from click.testing import CliRunner

    from t2s_fast.cli import cli as main

    a = _run(tmp_path, "a", {"stage1": [False] * 30 + [True] * 70})
    b = _run(tmp_path, "b", {"stage1": [True] * 100})
    (a / "report.json").write_text(json.dumps(_report()))
    (b / "report.json").write_text(json.dumps(_report()))
    res = CliRunner().invoke(main, ["report", str(a), str(b)])
    assert res.exit_code == 0, res.output
    assert "+30.0 pts" in res.output and "30 wrong->right" in res.output and ": gain" in res.output
    assert (a / "paired.md").is_file() and "wrong→right" in (a / "paired.md").read_text()


def test_report_command_names_a_run_without_per_question_file(tmp_path):
    from click.testing import CliRunner

    from t2s_fast.cli import cli as main

    a = _run(tmp_path, "a", {"stage1": [True]})
    b = tmp_path / "old"
    b.mkdir()
    (a / "report.json").write_text(json.dumps(_report()))
    (b / "report.json").write_text(json.dumps(_report()))
    res = CliRunner().invoke(main, ["report", str(a), str(b)])
    assert res.exit_code == 0, res.output
    assert f"no paired comparison of {a} and {b}" in res.output and "no per-question file" in res.output
    assert (a / "comparison.md").is_file() and not (a / "paired.md").exists()


def _report() -> dict:
    """A real report.json (committed with the 0.5B runbook's dev evaluation): `report` re-renders it."""
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    return json.loads((repo / "records/reports/2026-11-29-h200-qwen2.5-coder-0.5b/eval-dev/report.json").read_text())
