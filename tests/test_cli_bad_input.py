"""Bad flag values to `eval` and `score`: exit code 2 and a message naming the flag, before anything loads."""

from __future__ import annotations

import json

import pytest

from t2s_fast.cli import main


def _fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    return err


def _eval(tmp_path, *extra):
    return ["eval", "--base-model", "some/model", "--suite", "jsonl", "--questions", str(tmp_path / "q.jsonl"),
            "--db-root", str(tmp_path), "--out-dir", str(tmp_path / "run"), *extra]


@pytest.mark.parametrize("extra, flag", [
    (("--include-base", "--temperature", "-2"), "--temperature -2"),
    (("--include-base", "--workers", "-1"), "--workers -1"),
    (("--include-base", "--timeout", "0"), "--timeout 0"),
    (("--include-base", "--timeout", "-5"), "--timeout -5"),
    ((), "--include-base"),  # neither --adapter nor --include-base
])
def test_eval_rejects_bad_values_naming_the_flag(tmp_path, capsys, extra, flag):
    err = _fails(_eval(tmp_path, *extra), capsys)
    assert flag in err
    assert not (tmp_path / "run").exists()


def test_eval_without_adapter_or_include_base_says_how_to_evaluate_the_base(tmp_path, capsys):
    err = _fails(_eval(tmp_path), capsys)
    assert "nothing to evaluate" in err and "--adapter NAME=PATH" in err
    assert "--include-base to evaluate the base model alone" in err


def _preds(tmp_path):
    path = tmp_path / "preds.jsonl"
    path.write_text(json.dumps({"db_id": "concert_singer", "gold": "SELECT count(*) FROM singer",
                                "pred": "SELECT count(*) FROM singer"}) + "\n")
    return path


@pytest.mark.parametrize("extra, flag", [(("--workers", "-1"), "--workers -1"), (("--timeout", "0"), "--timeout 0"),
                                         (("--timeout", "-1"), "--timeout -1")])
def test_score_rejects_bad_values_naming_the_flag(tmp_path, capsys, extra, flag):
    err = _fails(["score", "--pred", str(_preds(tmp_path)), "--spider-dir", str(tmp_path), *extra], capsys)
    assert flag in err


def test_score_out_into_a_missing_folder_creates_it_and_says_so(tmp_path, capsys, spider1_dir):
    out = tmp_path / "new" / "deeper" / "scored.jsonl"
    main(["score", "--pred", str(_preds(tmp_path)), "--spider-dir", str(spider1_dir), "--out", str(out),
          "--workers", "0", "--json"])
    captured = capsys.readouterr()
    assert f"created folder {out.parent} for --out" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["ex"] == 1.0  # stdout stays one JSON object
    assert out.is_file()
    main(["score", "--pred", str(_preds(tmp_path)), "--spider-dir", str(spider1_dir), "--out", str(out),
          "--workers", "0", "--json"])
    assert "created folder" not in capsys.readouterr().err  # only when it was missing
