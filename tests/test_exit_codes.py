"""Exit codes a script can rely on: `train` stopped by a signal exits 128 + the signal (Ctrl-C 130, SIGTERM 143)
after saving; `score` refuses an empty predictions file with 2, as `train` refuses an empty train file."""

from __future__ import annotations

import pytest

from t2s_fast.cli import main


@pytest.mark.parametrize("signal_name, code", [("SIGINT", 130), ("SIGTERM", 143), (None, 143)])
def test_train_stopped_by_a_signal_exits_128_plus_the_signal(monkeypatch, tmp_path, signal_name, code):
    from t2s_fast.train import trainer

    info = {"stop_reason": "interrupted", "stop_signal": signal_name, "global_step": 3, "tokens_trained": 10,
            "trained_tokens_per_s": 1.0, "cost_usd": 0.0, "adapter_dir": str(tmp_path / "adapter")}
    monkeypatch.setattr(trainer, "train", lambda cfg: info)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--train-file", "t.jsonl", "--output-dir", str(tmp_path)])
    assert exc.value.code == code


def test_a_completed_train_exits_0(monkeypatch, tmp_path):
    from t2s_fast.train import trainer

    monkeypatch.setattr(trainer, "train", lambda cfg: {"stop_reason": "completed", "global_step": 3,
                                                       "tokens_trained": 10, "trained_tokens_per_s": 1.0,
                                                       "cost_usd": 0.0, "adapter_dir": None})
    assert main(["train", "--train-file", "t.jsonl", "--output-dir", str(tmp_path)]) in (None, 0)


def test_score_refuses_an_empty_predictions_file_with_2(tmp_path, capsys, spider1_dir):
    pred = tmp_path / "empty.jsonl"
    pred.write_text("")
    with pytest.raises(SystemExit) as exc:
        main(["score", "--pred", str(pred), "--spider-dir", str(spider1_dir), "--workers", "0"])
    assert exc.value.code == 2
    assert f"{pred}: no predictions" in capsys.readouterr().err
