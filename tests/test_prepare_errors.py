"""Bad input to `t2s-fast prepare`: one clear message naming the file (and line), exit code 2, no output."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from t2s_fast.cli import main


def _mini_spider1(root: Path) -> Path:
    d = root / "spider1"
    (d / "database" / "shop").mkdir(parents=True)
    con = sqlite3.connect(d / "database" / "shop" / "shop.sqlite")
    con.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
    con.executemany("INSERT INTO item VALUES (?, ?, ?)", [(1, "pen", 1.5), (2, "book", 12.0)])
    con.commit()
    con.close()
    (d / "tables.json").write_text(json.dumps([{"db_id": "shop"}, {"db_id": "gone"}]))
    train = [
        {"db_id": "shop", "question": "How many items are there?", "query": "SELECT count(*) FROM item"},
        {"db_id": "gone", "question": "Anything?", "query": "SELECT 1"},
    ]
    (d / "train_spider.json").write_text(json.dumps(train, indent=1))
    (d / "train_others.json").write_text(json.dumps([train[0]], indent=1))
    return d


def _run(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


@pytest.fixture
def mini(tmp_path):
    return _mini_spider1(tmp_path)


def _args(spider_dir, out, tok, *extra):
    return ["prepare", "--spider-dir", str(spider_dir), "--out-dir", str(out), "--tokenizer", str(tok), *extra]


def test_mini_run_writes_stage1_files(mini, tmp_path, qwen3_tokenizer_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stage2_mixed_train.jsonl").write_text("{}\n")  # left by an earlier run with another split
    main(_args(mini, out, qwen3_tokenizer_dir, "--valid-fraction", "0.3"))
    stats = json.loads((out / "prepare_stats.json").read_text())
    # one database present, one missing: the missing one is dropped with a reason
    assert [d["reason"] for d in stats["dropped"]] == ["database file gone/gone.sqlite is missing"]
    assert stats["files"]["stage1_train.jsonl"]["examples"] + stats["files"]["stage1_valid.jsonl"]["examples"] == 2
    assert not (out / "stage2_mixed_train.jsonl").exists()  # removed: not written by this run


def test_missing_folder(tmp_path, capsys, qwen3_tokenizer_dir):
    out = tmp_path / "out"
    code, err = _run(_args(tmp_path / "nope", out, qwen3_tokenizer_dir), capsys)
    assert code == 2 and str(tmp_path / "nope") in err
    assert not out.exists()


def test_missing_file(mini, tmp_path, capsys, qwen3_tokenizer_dir):
    (mini / "train_others.json").unlink()
    out = tmp_path / "out"
    code, err = _run(_args(mini, out, qwen3_tokenizer_dir), capsys)
    assert code == 2 and "train_others.json" in err and "not found" in err
    assert not out.exists()


def test_malformed_json_names_file_and_line(mini, tmp_path, capsys, qwen3_tokenizer_dir):
    text = (mini / "train_spider.json").read_text().splitlines()
    text[3] = text[3] + " oops,"
    (mini / "train_spider.json").write_text("\n".join(text))
    out = tmp_path / "out"
    out.mkdir()
    code, err = _run(_args(mini, out, qwen3_tokenizer_dir), capsys)
    assert code == 2 and "train_spider.json:4" in err
    assert list(out.iterdir()) == []  # nothing half-written


def test_db_id_unknown_to_tables_json(mini, tmp_path, capsys, qwen3_tokenizer_dir):
    data = json.loads((mini / "train_others.json").read_text())
    data.append({"db_id": "nowhere", "question": "q?", "query": "SELECT 1"})
    (mini / "train_others.json").write_text(json.dumps(data))
    out = tmp_path / "out"
    code, err = _run(_args(mini, out, qwen3_tokenizer_dir), capsys)
    assert code == 2 and "train_others.json: example 1" in err and "'nowhere'" in err
    assert not out.exists()


def test_malformed_spider2_jsonl_line(mini, tmp_path, capsys, qwen3_tokenizer_dir):
    s2 = tmp_path / "spider2"
    (s2 / "spider2-lite" / "evaluation_suite" / "gold" / "sql").mkdir(parents=True)
    (s2 / "spider2-lite" / "spider2-lite.jsonl").write_text(
        json.dumps({"instance_id": "local001", "db": "x", "question": "q"}) + "\n{broken\n"
    )
    out = tmp_path / "out"
    code, err = _run(_args(mini, out, qwen3_tokenizer_dir, "--spider2-dir", str(s2)), capsys)
    assert code == 2 and "spider2-lite.jsonl:2" in err
    assert not out.exists()


def test_bad_flag_values(mini, tmp_path, capsys, qwen3_tokenizer_dir):
    code, err = _run(_args(mini, tmp_path / "o", qwen3_tokenizer_dir, "--valid-fraction", "1.5"), capsys)
    assert code == 2 and "--valid-fraction" in err


def _no_network(monkeypatch):
    """Any attempt to open a connection fails the test (and would have taken the retry path)."""
    import socket

    def refuse(*a, **kw):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_offline_hub_id_fails_at_once_saying_to_pass_a_local_folder(mini, tmp_path, capsys, monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _no_network(monkeypatch)
    out = tmp_path / "out"
    t0 = time.monotonic()
    code, err = _run(_args(mini, out, "t2s-fast-tests/no-such-tokenizer"), capsys)
    assert time.monotonic() - t0 < 20  # no ~50 s of retries (and no connection at all: see _no_network)
    assert code == 2
    assert "HF_HUB_OFFLINE is set" in err and "Pass --tokenizer DIR, a local tokenizer folder" in err
    assert err.rstrip().endswith(").")  # the whole message: nothing cut mid-sentence
    assert not out.exists()


def test_unreachable_hub_is_detected_with_one_probe(mini, tmp_path, capsys, monkeypatch):
    import socket

    from t2s_fast import hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    probes = []

    def unreachable(address, timeout=None):
        probes.append((address, timeout))
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    code, err = _run(_args(mini, tmp_path / "out", "t2s-fast-tests/no-such-tokenizer"), capsys)
    assert code == 2 and "cannot be reached" in err and "--tokenizer DIR" in err
    assert probes == [(("huggingface.co", 443), hub.PROBE_TIMEOUT_S)]  # one probe, then the local cache only


def test_tokenizer_errors_are_not_cut_short(tmp_path):
    from t2s_fast.errors import T2SError
    from t2s_fast.hub import load_tokenizer

    bad = tmp_path / "tok"
    bad.mkdir()
    (bad / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(T2SError) as exc:
        load_tokenizer(str(bad))
    assert str(exc.value).startswith(f"--tokenizer {bad}: cannot load") and str(exc.value).endswith("or a hub id.")
