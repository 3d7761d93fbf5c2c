"""Bad bytes and missing models: one-line errors naming the file and line (or the flag), exit 2."""

from __future__ import annotations

import pytest

from t2s_fast.cli import main
from t2s_fast.errors import T2SError
from t2s_fast.jsonl import read_json, read_jsonl


def test_non_utf8_line_names_file_and_line(tmp_path):
    p = tmp_path / "preds.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    with pytest.raises(T2SError, match=r"preds\.jsonl:2: not valid UTF-8"):
        read_jsonl(p)


def test_a_multibyte_character_cut_at_the_end_is_a_torn_tail(tmp_path):
    p = tmp_path / "store.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": "\xc3')  # crash in the middle of a two-byte character
    assert read_jsonl(p, tolerate_torn_tail=True) == [{"a": 1}]
    with pytest.raises(T2SError, match=r"store\.jsonl:2"):
        read_jsonl(p)


def test_non_utf8_json_file(tmp_path):
    p = tmp_path / "tables.json"
    p.write_bytes(b'[{"db_id": "\xff"}]')
    with pytest.raises(T2SError, match=r"tables\.json: not valid UTF-8"):
        read_json(p)


def test_cli_score_on_non_utf8_predictions_exits_2(tmp_path, capsys):
    p = tmp_path / "preds.jsonl"
    p.write_bytes(b'\xff\xfe{"db_id": "x"}\n')
    with pytest.raises(SystemExit) as e:
        main(["score", "--pred", str(p), "--spider-dir", str(tmp_path)])
    assert e.value.code == 2
    assert "preds.jsonl:1: not valid UTF-8" in capsys.readouterr().err


def test_infer_with_a_model_path_that_does_not_load_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schema.sql").write_text("CREATE TABLE t (a INT);")
    (tmp_path / "runs" / "stage1").mkdir(parents=True)  # a folder, but neither a model nor an adapter
    with pytest.raises(SystemExit) as e:
        main(["infer", "--model-path", "runs/stage1", "--question", "How many?", "--schema-file", "schema.sql",
              "--db-id", "t"])
    assert e.value.code == 2
    assert "--model-path runs/stage1: cannot load it" in capsys.readouterr().err


def test_a_crash_mid_timing_append_does_not_break_the_next_session(tmp_path):
    """A torn last line of timings.jsonl is cut on resume, so the next session's appends stay readable."""
    from t2s_fast.evaluate.predictions import PredictionStore

    store = PredictionStore(tmp_path, {"model": "m"})
    store.append([{"key": "a|q1|0"}], {"batch": 0, "tokens": 5})
    with (tmp_path / "timings.jsonl").open("ab") as fh:
        fh.write(b'{"batch": 1, "tok')  # the process died here
    resumed = PredictionStore(tmp_path, {"model": "m"})
    resumed.append([{"key": "a|q2|0"}], {"batch": 1, "tokens": 7})
    assert [t["batch"] for t in resumed.timings()] == [0, 1]
    assert set(resumed.records) == {"a|q1|0", "a|q2|0"}


def test_an_unterminated_string_reads_as_one_phrase(tmp_path):
    from t2s_fast.jsonl import read_json

    path = tmp_path / "cut.json"
    path.write_text('{"a": "abc')
    with pytest.raises(T2SError) as exc:
        read_json(path)
    assert str(exc.value) == f"{path}:1: malformed JSON (Unterminated string starting at column 7)"


def test_a_malformed_yaml_config_is_one_line_naming_the_file_and_line(tmp_path, capsys):
    pytest.importorskip("yaml")
    from t2s_fast.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("pred: x\nworkers: [1, 2\ntimeout: 3\n")
    with pytest.raises(SystemExit) as exc:
        main(["score", "--config", str(path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.strip() == f"error: --config {path}:3: malformed YAML (expected ',' or ']', but got ':' at column 8)"
