"""Report cosmetics and one vocabulary: bar labels keep their decimal, a one-database chart shows its bars
whole, the title names what was evaluated, decoding does not warn about space clean-up, and every command
takes the same dtype names."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from t2s_fast.errors import T2SError
from t2s_fast.evaluate import report


@pytest.mark.parametrize("ex, label", [(0.025, "2.5"), (0.55, "55"), (1.0, "100"), (1 / 3, "33.3"), (0.0, "0"),
                                       (None, "n/a")])
def test_bar_labels_keep_decimals(ex, label):
    assert report.bar_label(ex) == label


@pytest.fixture
def figures(monkeypatch):
    seen = []
    monkeypatch.setattr(report, "_png", lambda fig: seen.append(fig) or "png")
    return seen


@pytest.mark.parametrize("horizontal", [True, False])
def test_a_one_category_chart_shows_every_bar_whole_with_its_label(figures, horizontal):
    report._grouped_bars(["concert_singer"], {"base model": [0.025], "stage1": [1.0]}, title="t",
                         horizontal=horizontal)
    ax = figures[-1].axes[0]
    lo, hi = sorted(ax.get_ylim() if horizontal else ax.get_xlim())
    bars = [p for p in ax.patches]
    assert len(bars) == 2
    for b in bars:
        start, size = (b.get_y(), b.get_height()) if horizontal else (b.get_x(), b.get_width())
        assert lo <= start and start + size <= hi  # the bar's whole thickness is inside the axes
        length = b.get_width() if horizontal else b.get_height()
        limit = ax.get_xlim()[1] if horizontal else ax.get_ylim()[1]
        assert length <= limit
    assert {t.get_text() for t in ax.texts} == {"2.5", "100"}


def test_title_names_what_was_evaluated():
    cfg = SimpleNamespace(suite="jsonl", questions="/tmp/demo/data/heldout.jsonl", split="dev")
    assert report.report_title(cfg) == "t2s-fast evaluation: heldout.jsonl"
    assert report.report_title(SimpleNamespace(suite="spider1", questions=None, split="dev")) == \
        "t2s-fast evaluation: spider1 dev"
    assert not report.report_title(SimpleNamespace(suite="jsonl", questions=None, split="dev")).endswith("jsonl")


def test_decode_does_not_ask_for_space_clean_up(qwen3_tokenizer_dir, monkeypatch):
    from transformers import AutoTokenizer
    from transformers import tokenization_utils_tokenizers as tut

    from t2s_fast.prompt import decode

    tok = AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir), clean_up_tokenization_spaces=True)  # as the demo's
    warned = []
    monkeypatch.setattr(tut.logger, "warning_once", lambda msg, *a, **k: warned.append(msg))
    ids = tok("SELECT a , b FROM t", add_special_tokens=False)["input_ids"]
    assert decode(tok, ids) == "SELECT a , b FROM t"
    assert not [m for m in warned if "clean_up_tokenization_spaces" in m]
    tok.decode(ids)  # the plain call is what warned
    assert [m for m in warned if "clean_up_tokenization_spaces" in m]


@pytest.mark.parametrize("given, canonical", [("bf16", "bfloat16"), ("BF16", "bfloat16"), ("bfloat16", "bfloat16"),
                                              ("fp16", "float16"), ("float16", "float16"), ("fp32", "float32"),
                                              ("float32", "float32"), (None, None)])
def test_dtype_names_normalize_to_one_vocabulary(given, canonical):
    from t2s_fast.dtypes import normalize_dtype

    assert normalize_dtype(given) == canonical


def test_eval_and_merge_take_the_same_dtype_names(tmp_path, capsys):
    from t2s_fast.cli import main
    from t2s_fast.dtypes import normalize_dtype
    from t2s_fast.evaluate.config import EvalConfig

    cfg = EvalConfig(base_model="m", out_dir=str(tmp_path), include_base=True, suite="jsonl",
                     questions="q.jsonl", dtype="bf16")
    assert cfg.dtype == "bfloat16"
    with pytest.raises(T2SError, match="--dtype 'fp8'"):
        normalize_dtype("fp8")
    for cmd in (["eval", "--base-model", "m", "--include-base", "--suite", "jsonl", "--questions", "q.jsonl",
                 "--out-dir", str(tmp_path / "e")],
                ["merge", "--adapter-path", str(tmp_path / "a"), "--output-dir", str(tmp_path / "m")]):
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--dtype", "fp8"])
        assert exc.value.code == 2 and "--dtype 'fp8'" in capsys.readouterr().err


def test_a_chart_of_one_database_is_small(figures):
    report._grouped_bars(["company"], {"base model": [0.025], "demo-lora": [0.55]}, title="t", horizontal=True)
    width, height = figures[-1].get_size_inches()
    assert width <= 7 and height <= 2
    report._grouped_bars([f"db{i}" for i in range(20)], {"a": [0.5] * 20}, title="t", horizontal=True)
    assert tuple(figures[-1].get_size_inches()) == (9, 0.32 * 20 + 1)  # many databases: as before


def test_the_report_names_a_converted_model_by_its_alias():
    from t2s_fast.evaluate.document import to_html

    rep = {"base_model": "/root/.cache/t2s-fast/models/smollm2-135m-float32", "backend": "hf", "source": "q.jsonl",
           "decoding": "greedy", "max_new_tokens": 56, "distinct_handling": "d", "timeout_s": 10.0}
    questions = {"evaluated": 1, "selected": 1, "executable": 1, "missing_databases": [],
                 "not_executable": {"count": 0, "reasons": {}, "qids": []}}
    page = to_html(report.Document("t", report.settings_section({"settings": rep, "questions": questions})))
    assert "Base model: <code>smollm2-135m</code> (converted once to <code>/root/.cache" in page


def test_the_speed_line_of_a_resumed_run_keeps_this_session_apart():
    from t2s_fast.evaluate.document import Document, to_markdown

    timing = {"generated_tokens": 1656, "generation_seconds": 62.245, "tokens_per_s": 26.6,
              "device": {"device": "cpu (x86_64)"}, "scoring_seconds": 0.1, "wall_seconds_this_session": 29.4,
              "this_session": {"requests": 40, "tokens": 726, "seconds": 27.7, "tokens_per_s": 26.2, "resumed": 40}}
    md = to_markdown(Document("t", report.speed_section(timing)))
    assert "1656 tokens generated in 62.2 s of generation" in md and "summed over this session and the earlier" in md
    assert "this session: 726 tokens in 27.7 s of generation (26.2 tokens/s); 40 answers came from the earlier" in md
    fresh = dict(timing, this_session=dict(timing["this_session"], resumed=0))
    assert "earlier" not in to_markdown(Document("t", report.speed_section(fresh)))
