"""`t2s-fast run`'s own logic in a blink, with stand-ins for training, evaluation, merge and RL
(tests/pipeline_helpers/stand_ins.py): the plan before anything, one cap shared by the stages, skipping what does
not fit, the cascade of a changed setting, the RL stage's wiring, resuming an interrupted stage, the shipped run
files. tests/test_pipeline.py runs the same on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from t2s_fast.pipeline.config import RunConfig
from t2s_fast.pipeline.plan import Device
from tests.pipeline_helpers import stand_ins

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "run"


def _cfg(tmp_path: Path, **over) -> RunConfig:
    spider = tmp_path / "spider"
    spider.mkdir(exist_ok=True)
    if not (spider / "dev.json").is_file():  # rewritten, it would be a changed input of prepare
        dev = [{"db_id": "concert_singer", "question": "q", "query": "SELECT 1"}] * 4
        (spider / "dev.json").write_text(json.dumps(dev))
    settings = {"out_dir": str(tmp_path / "run"), "max_cost_usd": 5.0, "model_name": "tiny",
                "prepare": {"spider_dir": str(spider)},
                "stage1": {"max_steps": 2, "backend": "hf"}, "stage2": {"max_steps": 1, "backend": "hf"},
                "eval": {"backend": "hf"}, "choose": {"backend": "hf", "limit": 4}}
    for key, value in over.items():
        settings[key] = {**settings[key], **value} if isinstance(settings.get(key), dict) else value
    return RunConfig(**settings, source=str(tmp_path / "run.yaml"))


def _run(cfg: RunConfig, lines: list | None = None) -> dict:
    from t2s_fast.pipeline.runner import run_pipeline

    echo = (lines.append if lines is not None else lambda msg: None)
    return run_pipeline(cfg, device=Device("cpu", "cpu"), isolate=False, echo=echo)


def _state(cfg: RunConfig) -> dict:
    return json.loads((Path(cfg.out_dir) / "run_state.json").read_text())


def _calls(calls, kind):
    return [arg for k, arg in calls if k == kind]


def test_the_plan_comes_first_and_each_training_stage_gets_what_is_left(tmp_path, monkeypatch):
    calls = stand_ins.install(monkeypatch)
    lines: list[str] = []
    cfg = _cfg(tmp_path)
    result = _run(cfg, lines)
    assert result["outcome"] == "done"
    assert lines[0].startswith("plan: cap $5") and "\n  reserve " in lines[0]  # printed before any stage
    assert [k for k, _ in calls] == ["prepare", "train", "train", "evaluate", "evaluate", "merge"]
    stage1, stage2 = _calls(calls, "train")
    state = _state(cfg)
    for tc, stage in ((stage1, "stage1"), (stage2, "stage2")):  # what was left when it started: its own budget
        assert tc.max_cost_usd == pytest.approx(state["stages"][stage]["budget_usd"])
    assert stage1.max_cost_usd < 5.0
    assert stage2.max_cost_usd <= 5.0 - stand_ins.TRAIN_COST  # stage 1's $0.25 is no longer left
    assert stage2.adapter_path == str(Path(cfg.out_dir) / "stage1" / "adapter")
    assert result["spent_usd"] >= 2 * stand_ins.TRAIN_COST  # the stages' own dollars count
    choose_ec, dev_ec = _calls(calls, "evaluate")
    assert choose_ec.suite == "heldout" and choose_ec.repair == "none"
    assert set(choose_ec.adapters) == {"stage1@step-1", "stage1@final", "stage2@step-1", "stage2@final"}
    # the stand-in held-out EX favours checkpoints: the first one wins (ties: cheaper), and is evaluated on dev
    assert set(dev_ec.adapters) == {"stage1", "stage2", "chosen"} and dev_ec.include_base and dev_ec.split == "dev"
    assert dev_ec.adapters["chosen"].endswith("stage1/checkpoints/checkpoint-1")
    assert _calls(calls, "merge")[0]["adapter_path"] == dev_ec.adapters["chosen"]
    report = json.loads(Path(result["report"]["json"]).read_text())
    assert report["chosen_adapter"]["name"] == "stage1@step-1" and report["merged_model"]


def test_a_stage_whose_projection_does_not_fit_is_skipped_and_the_report_says_so(tmp_path, monkeypatch):
    calls = stand_ins.install(monkeypatch)
    lines: list[str] = []
    cfg = _cfg(tmp_path, max_cost_usd=1.0, stage2={"max_steps": 5000})
    result = _run(cfg, lines)
    assert result["outcome"] == "over_budget"
    assert len(_calls(calls, "train")) == 1  # stage 1 only
    rec = _state(cfg)["stages"]["stage2"]
    assert rec["status"] == "skipped" and rec["skipped_for"] == "budget" and "does not fit" in rec["reason"]
    assert any(line.startswith("stage2: skipped: projected $") for line in lines)
    assert set(_calls(calls, "evaluate")[-1].adapters) == {"stage1", "chosen"}  # the choice: its checkpoint
    md = Path(result["report"]["md"]).read_text()
    assert "| stage2 | skipped |" in md and "does not fit" in md


def test_a_changed_setting_reruns_its_stage_and_every_later_one(tmp_path, monkeypatch):
    calls = stand_ins.install(monkeypatch)
    cfg = _cfg(tmp_path)
    _run(cfg)
    calls.clear()
    lines: list[str] = []
    _run(_cfg(tmp_path), lines)  # the same file again: nothing runs
    assert calls == [] and all("done in an earlier session" in ln for ln in lines if ln.startswith("stage"))
    _run(_cfg(tmp_path, choose={"limit": 2}), lines)
    assert [k for k, _ in calls] == ["evaluate", "evaluate", "merge"]  # choose changed: choose, eval, merge again
    assert any("choose: settings changed (limit)" in ln for ln in lines)
    calls.clear()
    _run(_cfg(tmp_path, choose={"limit": 2}, stage1={"learning_rate": 1e-3}), lines)
    assert [k for k, _ in calls] == ["train", "train", "evaluate", "evaluate", "merge"]
    assert (Path(cfg.out_dir) / "stage1.replaced-1" / "run.json").is_file()


def test_an_interrupted_training_stage_resumes_with_the_dollars_it_spent(tmp_path, monkeypatch):
    calls = stand_ins.install(monkeypatch)

    def interrupted_once(tc):
        info = stand_ins.fake_train(tc)
        if tc.output_dir.endswith("stage1") and not tc.resume:
            info["stop_reason"] = "interrupted"
        return info

    from t2s_fast.pipeline import stages

    monkeypatch.setattr(stages, "_train", interrupted_once)
    cfg = _cfg(tmp_path)
    assert _run(cfg)["outcome"] == "interrupted"
    state = _state(cfg)
    assert state["stages"]["stage1"]["status"] == "interrupted"
    assert state["stages"]["stage1"]["run_cost_usd"] == stand_ins.TRAIN_COST  # from its train_log.jsonl
    assert _run(cfg)["outcome"] == "done"
    first, again = _calls(calls, "train")[:2]
    assert not first.resume and again.resume and again.output_dir == first.output_dir
    # the resumed run's own guard counts the dollars its log already holds: its budget is raised by them
    assert again.max_cost_usd == pytest.approx(first.max_cost_usd, abs=0.05)


def test_the_rl_stage_continues_the_last_adapter_under_the_same_cap(tmp_path, monkeypatch):
    calls = stand_ins.install(monkeypatch, rl=True)
    cfg = _cfg(tmp_path, stages={"stage3": True}, stage3={"max_steps": 3})
    result = _run(cfg)
    assert result["outcome"] == "done"
    (rc,) = _calls(calls, "train_rl")
    out = Path(cfg.out_dir)
    assert rc.adapter_path == str(out / "stage2" / "adapter") and rc.output_dir == str(out / "stage3")
    assert rc.train_file == str(out / "prepared" / "stage1_train.jsonl") and rc.model_name == "tiny"
    assert 0 < rc.max_cost_usd < 5.0 and not rc.resume
    assert "stage3@final" in _calls(calls, "evaluate")[0].adapters and "stage3" in _calls(calls, "evaluate")[1].adapters
    report = json.loads(Path(result["report"]["json"]).read_text())
    assert report["training"]["stage3"]["curves"]["reward"][-1] == [3, pytest.approx(0.3)]
    assert "reward curves" in Path(result["report"]["html"]).read_text()


def test_the_rl_stage_refuses_an_unknown_key_and_explains_a_missing_module(tmp_path, monkeypatch):
    from t2s_fast.errors import T2SError

    stand_ins.install(monkeypatch, rl=True)
    with pytest.raises(T2SError, match=r"run.yaml: stage3: unknown key 'max_step' \(did you mean 'max_steps'\?\)"):
        _cfg(tmp_path, stages={"stage3": True}, stage3={"max_step": 3}).validate()
    monkeypatch.delitem(__import__("sys").modules, "t2s_fast.rl.config")
    monkeypatch.setitem(__import__("sys").modules, "t2s_fast.rl.config", None)  # not in this build
    with pytest.raises(T2SError, match="stage3 .RL. needs t2s_fast.rl"):
        _cfg(tmp_path, stages={"stage3": True}).validate()
    _cfg(tmp_path, stage3={"anything": 1}).validate()  # off: its section is not read


def test_a_stage_switched_off_is_not_run_and_the_rest_adapt(tmp_path, monkeypatch):
    calls = stand_ins.install(monkeypatch)
    cfg = _cfg(tmp_path, stages={"stage2": False, "choose": False, "merge": False})
    assert _run(cfg)["outcome"] == "done"
    assert [k for k, _ in calls] == ["prepare", "train", "evaluate"]
    assert set(_calls(calls, "evaluate")[0].adapters) == {"stage1"}
    assert _state(cfg)["stages"]["stage2"]["status"] == "off"


@pytest.mark.parametrize("name, cap", [("qwen2.5-coder-0.5b.yaml", 2), ("qwen3-8b.yaml", 100)])
def test_the_shipped_run_files_plan_within_their_cap_on_an_h200(tmp_path, monkeypatch, name, cap, spider1_dir,
                                                                 spider2_dir):
    from t2s_fast.pipeline.config import load_run_config
    from t2s_fast.pipeline.runner import run_pipeline

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "spider1").symlink_to(spider1_dir)
    (tmp_path / "data" / "spider2").symlink_to(spider2_dir)
    monkeypatch.chdir(tmp_path)
    cfg = load_run_config(CONFIGS / name)
    lines: list[str] = []
    result = run_pipeline(cfg, dry_run=True, device=Device("cuda", "NVIDIA H200"), echo=lines.append)
    plan = result["plan"]
    assert plan["max_cost_usd"] == cap and 0 < plan["total_usd"] < cap and plan["reserve_usd"] > 0
    assert all(plan["stages"][s]["usd"] for s in ("prepare", "stage1", "stage2", "choose", "eval", "merge"))
    assert not plan["stages"]["stage3"]["on"]
    assert cfg.stage2["learning_rate"] == 1e-4 and cfg.prepare["stage2_replay_ratio"] == 4
    assert not Path(cfg.out_dir).exists()  # a dry run starts nothing


def test_a_failed_stage_ends_the_run_as_failed_reports_it_and_runs_on_finish(tmp_path, monkeypatch):
    from t2s_fast.errors import T2SError
    from t2s_fast.pipeline import stages
    from t2s_fast.pipeline.runner import run_pipeline

    calls = stand_ins.install(monkeypatch)

    def broken(ec):
        raise T2SError("the held-out set has no database here")

    monkeypatch.setattr(stages, "_evaluate", broken)
    cfg = _cfg(tmp_path)
    marker = tmp_path / "outcome.txt"
    result = run_pipeline(cfg, device=Device("cpu", "cpu"), isolate=False, echo=lambda m: None,
                          on_finish=f"echo $T2S_RUN_OUTCOME > {marker}")
    assert result["outcome"] == "failed" and "no database here" in result["error"]
    assert marker.read_text().strip() == "failed"
    state = _state(cfg)
    assert state["stages"]["choose"]["status"] == "failed" and "eval" not in state["stages"]
    assert "no database here" in Path(result["report"]["md"]).read_text()  # the report says what happened
    monkeypatch.setattr(stages, "_evaluate", stand_ins.fake_evaluate)
    calls.clear()
    assert _run(cfg)["outcome"] == "done"
    assert [k for k, _ in calls] == ["evaluate", "evaluate", "merge"]  # from the failed stage on
