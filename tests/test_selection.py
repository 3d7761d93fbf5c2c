"""Spider dev recognised by its content: a renamed copy of dev.json, as a spider1 split or a questions file, is
refused (exit 2) as a set to choose on, whatever it is called; the shipped fingerprint is dev's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from t2s_fast.cli import main
from t2s_fast.errors import T2SError


def _fake_run(folder: Path) -> Path:
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


@pytest.fixture
def renamed_dev(tmp_path, spider1_dir) -> Path:
    """A Spider folder whose valid.json is a copy of dev.json (and no dev.json)."""
    folder = tmp_path / "spider-copy"
    folder.mkdir()
    shutil.copy(spider1_dir / "dev.json", folder / "valid.json")
    return folder


def test_the_fingerprint_is_spider_dev(spider1_dir):
    from t2s_fast.evaluate.spider_dev import SPIDER_DEV_KEYS, is_spider_dev_question, question_key

    dev = json.loads((spider1_dir / "dev.json").read_text())
    assert SPIDER_DEV_KEYS == {question_key(q["db_id"], q["question"]) for q in dev}
    assert is_spider_dev_question("concert_singer", "  How many SINGERS do we have? ")
    train = json.loads((spider1_dir / "train_spider.json").read_text())
    assert not any(is_spider_dev_question(q["db_id"], q["question"]) for q in train)


def test_a_renamed_copy_of_dev_is_refused_by_eval_checkpoints(tmp_path, capsys, renamed_dev):
    run = _fake_run(tmp_path / "run")
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--checkpoints", str(run), "--base-model", "m", "--out-dir", str(tmp_path / "o"),
              "--suite", "spider1", "--spider-dir", str(renamed_dev), "--split", "valid"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "refuses Spider dev" in err and "--split valid" in err, err
    assert not (tmp_path / "o").exists()


def test_a_renamed_copy_of_dev_is_refused_by_sweep_and_ablate(tmp_path, renamed_dev, spider1_dir):
    from t2s_fast.evaluate.ablation_config import AblationConfig, check_ablation
    from t2s_fast.sweep.config import SweepConfig
    from t2s_fast.sweep.plan import check_plan
    from t2s_fast.sweep.runner import expand_variants

    held = {"suite": "spider1", "spider_dir": str(renamed_dev), "split": "valid"}
    cfg = SweepConfig(out_dir=str(tmp_path / "sw"), max_cost_usd=1.0, train={"model_name": "m"},
                      variants=[{"name": "a"}], heldout=held, source="sweep.json").validate()
    with pytest.raises(T2SError, match=r"sweep \(sweep.json: heldout\) chooses .* refuses Spider dev .*--split valid"):
        check_plan(cfg, expand_variants(cfg))
    ab = AblationConfig(out_dir=str(tmp_path / "ab"), source="levers.json", arms=[{"name": "greedy", "group": "g"}],
                        eval={"base_model": "m", "include_base": True, "repair": "none", **held})
    with pytest.raises(T2SError, match="refuses Spider dev"):
        check_ablation(ab, check_files=False)


def test_a_prepared_copy_of_dev_under_another_name_is_refused_and_training_lines_pass(tmp_path, spider1_dir):
    from t2s_fast.evaluate.selection import spider_dev_reason

    dev = json.loads((spider1_dir / "dev.json").read_text())
    lines = [{"id": f"x-{i}", "db_id": q["db_id"], "question": q["question"], "sql": q["query"]} for i, q in
             enumerate(dev[:3])]
    path = tmp_path / "stage1_valid.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert "stage1_valid.jsonl:1" in spider_dev_reason(suite="heldout", questions=str(path))
    train = json.loads((spider1_dir / "train_spider.json").read_text())[:50]
    path.write_text("".join(json.dumps({"db_id": q["db_id"], "question": q["question"]}) + "\n" for q in train))
    assert spider_dev_reason(suite="heldout", questions=str(path)) is None
    shutil.copy(spider1_dir / "train_spider.json", tmp_path / "mine.json")  # a training split under another name
    assert spider_dev_reason(suite="spider1", split="mine", spider_dir=str(tmp_path)) is None
