"""records/drivers/recipe_config.py: a committed sweep's chosen recipe becomes a `t2s-fast train --config` file that
TrainConfig accepts, with the settings the chosen run recorded (how the session-5 GPU driver trained the choices)."""

import importlib.util
import json
from pathlib import Path

import pytest

from t2s_fast.configs import load_config
from t2s_fast.train.config import TrainConfig

pytestmark = pytest.mark.records  # reads a committed sweep under records/

REPO = Path(__file__).parents[1]
SWEEPS = REPO / "records/reports/2026-11-29-h200-sweeps-qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def recipe_config():
    spec = importlib.util.spec_from_file_location("recipe_config", REPO / "records/drivers/recipe_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_stage1_choice_becomes_a_train_config_with_its_recorded_settings(recipe_config, tmp_path, capsys):
    out = tmp_path / "recipe.json"
    recipe_config.main([str(SWEEPS / "stage1/sweep_state.json"), str(out), "--model-name", "qwen2.5-coder-1.5b",
                        "--output-dir", "runs/stage1-chosen-1.5b"])
    assert capsys.readouterr().out.split() == ["r16-lr0p0004", "-", "data/prepared/stage1_train.jsonl"]
    cfg = load_config(out, TrainConfig)  # unknown keys or wrong types would be refused here
    assert (cfg["learning_rate"], cfg["lora_r"], cfg["lora_alpha"], cfg["num_train_epochs"]) == (4e-4, 16, 32, 1)
    assert (cfg["model_name"], cfg["output_dir"], cfg["max_cost_usd"], cfg["resume"]) == \
        ("qwen2.5-coder-1.5b", "runs/stage1-chosen-1.5b", 40.0, False)
    state = json.loads((SWEEPS / "stage1/sweep_state.json").read_text())
    recorded = state["variants"][state["chosen"]["variant"]]["train_config"]
    same = {k for k in recorded if k not in ("output_dir", "model_name", "max_cost_usd", "resume")}
    def plain(v):  # the loaded config holds sequences as tuples
        return list(v) if isinstance(v, (list, tuple)) else v
    assert {k: plain(cfg.get(k)) for k in same} == {k: recorded[k] for k in same}


def test_a_replay_recipe_without_its_prepare_folder_exits_2_naming_the_file(recipe_config, tmp_path, capsys):
    state = SWEEPS / "stage2/sweep_state.json"
    with pytest.raises(SystemExit) as exit_info:
        recipe_config.main([str(state), str(tmp_path / "r.json"), "--output-dir", "runs/s2"])
    assert exit_info.value.code == 2
    assert f"{state}: replay4-lr1e-4 trains on a replay mix (ratio 4)" in capsys.readouterr().err
    bad = tmp_path / "sweep_state.json"
    bad.write_text('{"variants": {}}')
    with pytest.raises(SystemExit) as exit_info:
        recipe_config.main([str(bad), str(tmp_path / "r.json")])
    assert exit_info.value.code == 2 and f"{bad}: no chosen variant" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
