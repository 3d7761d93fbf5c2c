"""`t2s-fast run` and `t2s-fast status` (t2s_fast/pipeline/).

- `t2s-fast run`'s own logic in a blink, with stand-ins for training, evaluation, merge and RL
  (tests/pipeline_helpers/stand_ins.py): the plan before anything, one cap shared by the stages, skipping what does
  not fit, the cascade of a changed setting, the RL stage's wiring, resuming an interrupted stage, the shipped run
  files. The tests below them run the same on the tiny model.
- `t2s-fast run` and `t2s-fast status` on a CPU with the tiny Qwen3 (real tokenizer, random weights) and a small
  real Spider folder (three training databases, four dev questions): the whole runbook under a cap, kills at every
  stage boundary and a SIGTERM in the middle of stage 1 then the same command, a cap too small for stage 2, a
  changed stage-2 setting, and bad run files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t2s_fast.pipeline.config import RunConfig
from t2s_fast.pipeline.plan import Device
from tests.pipeline_helpers import stand_ins
from tests.pipeline_helpers.fixtures import run_file, write_mini_spider

# --- pipeline_logic ---
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


def test_the_rl_stage_can_start_from_stage_1_named_as_such(tmp_path, monkeypatch):
    calls = stand_ins.install(monkeypatch, rl=True)
    cfg = _cfg(tmp_path, stages={"stage3": True}, stage3={"max_steps": 3, "adapter_path": "stage1"})
    assert _run(cfg)["outcome"] == "done"
    (rc,) = _calls(calls, "train_rl")
    assert rc.adapter_path == str(Path(cfg.out_dir) / "stage1" / "adapter")


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


VARIANTS = {"greedy": {"repair": "none"}, "maj8": {"repair": "none", "n_samples": 8, "temperature": 0.8}}


def test_eval_variants_evaluate_the_same_models_into_their_own_folders_and_reports(tmp_path, monkeypatch):
    calls = stand_ins.install(monkeypatch)
    lines: list[str] = []
    (tmp_path / "plain").mkdir()
    plain = _run(_cfg(tmp_path / "plain"), lines)
    cfg = _cfg(tmp_path, eval_variants=VARIANTS)
    result = _run(cfg, lines)
    assert result["outcome"] == "done"
    dev, greedy, maj8 = _calls(calls, "evaluate")[-3:]  # after the choice: the eval's own, then each variant's
    assert dev.out_dir == str(Path(cfg.out_dir) / "eval") and dev.repair == "resample"  # eval's default
    assert greedy.out_dir == str(Path(cfg.out_dir) / "eval" / "greedy") and greedy.repair == "none"
    assert (maj8.n_samples, maj8.temperature, maj8.repair) == (8, 0.8, "none")
    assert dev.adapters == greedy.adapters == maj8.adapters and greedy.include_base and greedy.split == "dev"
    # priced as one engine start and each decoding's answers: more than the eval's own alone, not 3 starts
    plans = [json.loads((Path(c.out_dir) / "run_state.json").read_text())["first_plan"]["stages"]["eval"]
             for c in (_cfg(tmp_path / "plain"), cfg)]
    assert plans[1]["seconds"] > plans[0]["seconds"] and plans[1]["basis"].count(" s (") == 1
    result_eval = _state(cfg)["stages"]["eval"]["result"]
    assert list(result_eval["variants"]) == ["greedy", "maj8"]
    assert result_eval["variants"]["maj8"]["decoding"] == "majority vote of 8 samples at T=0.8, repair none"
    assert result_eval["decoding"] == "greedy, repair resample (K=8)"
    md = Path(result["report"]["md"]).read_text()
    assert "### eval: greedy, repair resample (K=8)" in md and "### maj8: majority vote of 8 samples" in md
    assert "### " not in Path(plain["report"]["md"]).read_text()  # one decoding: no sub-headings
    # a changed variant re-runs the eval stage (and what follows), not the training or the choice
    calls.clear()
    _run(_cfg(tmp_path, eval_variants={"greedy": {"repair": "none"}}), lines)
    assert [k for k, _ in calls] == ["evaluate", "evaluate", "merge"]
    assert any(ln.startswith("eval: settings changed (variants)") for ln in lines), lines


def test_eval_variants_share_one_engine_opened_only_when_something_is_missing(tmp_path, monkeypatch):
    from t2s_fast.evaluate import lazy_engine
    from t2s_fast.pipeline import stages

    opened, seen = [], []

    class Engine:
        name = "hf"

        def __init__(self, cfg):
            self.cfg, self.opened = cfg, False

        def generate(self, requests, settings):
            if not self.opened:
                opened.append(self.cfg.out_dir)
                self.opened = True

        def close(self):
            seen.append("closed")

    def evaluate(ec, generator=None):
        seen.append(generator)
        if "greedy" in ec.out_dir:  # the eval's own run is finished; the variants have answers to make
            generator.generate([], None)
        return {}

    monkeypatch.setattr(lazy_engine, "LazyEngine", Engine)
    monkeypatch.setattr(stages, "_evaluate", evaluate)
    cfg = _cfg(tmp_path, eval_variants=VARIANTS)
    ecs = [stages.dev_config(_ctx(cfg), {}, v) for v in (None, "greedy", "maj8")]
    stages._evaluate_all(ecs)
    assert len(opened) == 1 and seen[0] is seen[1] is seen[2] and seen[3] == "closed"
    seen.clear()
    stages._evaluate_all(ecs[:1])  # the eval's own alone: its own engine, as `t2s-fast eval` opens it
    assert seen == [None]


def _ctx(cfg: RunConfig, device: Device | None = None):
    from t2s_fast.pipeline.stages import Context
    from t2s_fast.pipeline.state import RunState

    return Context(cfg, RunState(Path(cfg.out_dir)), device or Device("cpu", "cpu"), isolate=False)


def test_with_two_gpus_stages_1_and_2_train_data_parallel_and_every_gpu_hour_is_metered(tmp_path, monkeypatch):
    from t2s_fast.pipeline import stages
    from t2s_fast.train.config import TrainConfig

    calls = stand_ins.install(monkeypatch, rl=True)
    launched = []

    def data_parallel(job):  # what the ranks would run: `t2s-fast train --config FILE` on each of N processes
        launched.append(job)
        return stand_ins.fake_train(TrainConfig(**json.loads(Path(job["config"]).read_text())))

    monkeypatch.setattr(stages, "_train_data_parallel", data_parallel)
    (tmp_path / "one").mkdir()
    one = _cfg(tmp_path / "one", stages={"stage3": True}, stage3={"max_steps": 3})  # the same on one GPU
    lines: list[str] = []
    _run(one, lines)
    cfg = _cfg(tmp_path, gpus=2, train_processes=2, stages={"stage3": True}, stage3={"max_steps": 3})
    result = _run(cfg, lines)
    assert result["outcome"] == "done" and [j["processes"] for j in launched] == [2, 2]
    stage1, stage2 = _calls(calls, "train")[-2:]
    # each stage keeps the one-GPU run's optimizer batch (2 x 16), shared by the processes
    assert stage1.global_batch_size == stage2.global_batch_size == 32 and launched[0]["config"].endswith(
        "stage1.launch.json")
    # a trainer meters its processes' hours: each process pays one GPU; RL runs in one process and pays both
    assert stage1.gpu_hourly_usd == pytest.approx(3.44) and _calls(calls, "train_rl")[-1].gpu_hourly_usd == \
        pytest.approx(6.88)
    plans = [json.loads((Path(c.out_dir) / "run_state.json").read_text())["first_plan"] for c in (one, cfg)]
    assert "x 2 processes" in plans[1]["stages"]["stage1"]["basis"]
    assert plans[1]["stages"]["stage1"]["seconds"] < plans[0]["stages"]["stage1"]["seconds"]
    assert plans[1]["stages"]["stage1"]["usd"] > plans[0]["stages"]["stage1"]["usd"] / 2  # every GPU's hour


def test_gpus_default_the_training_processes_and_vllm_engines_on_a_cuda_machine(tmp_path, monkeypatch):
    from t2s_fast.generate import base

    cfg = _cfg(tmp_path, gpus=2)
    cuda, cpu = _ctx(cfg, Device("cuda", "NVIDIA H200")), _ctx(cfg)
    assert (cuda.train_processes("stage1"), cuda.train_processes("stage3"), cpu.train_processes("stage1")) == (2, 1, 1)
    assert cpu.process_hourly_usd("stage1") == pytest.approx(6.88)  # one process, and the idle GPU bills too
    from t2s_fast.pipeline import stages

    monkeypatch.setattr(base, "select_backend", lambda name="auto": "vllm")
    assert stages.dev_config(cuda, {}).data_parallel_size == stages.choose_config(cuda, {}).data_parallel_size == 2
    assert stages.dev_config(cpu, {}).data_parallel_size == 1
    tp = _cfg(tmp_path, gpus=2, eval={"tensor_parallel_size": 2})  # the section's own spread wins
    assert stages.dev_config(_ctx(tp, Device("cuda", "NVIDIA H200")), {}).data_parallel_size == 1


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


def test_stage3_is_priced_from_the_measured_model_nearest_in_size_with_its_filter_pass():
    from types import SimpleNamespace

    from t2s_fast import paths
    from t2s_fast.pipeline.plan import RL_MEASURED, project_rl

    def plan(model, steps=100, prompts=16, train_prompts=None, **rl):
        rl = SimpleNamespace(max_steps=steps, prompts_per_step=prompts, num_generations=8, **rl)
        return project_rl(RunConfig(out_dir="x", max_cost_usd=100, model_name=str(model)), rl, train_prompts)

    # the 1.5B as measured on an H100: a filter pass in its own engine (1,200 prompts x 8: 174 s engine start,
    # 59.9 s sampling, 15.4 s scoring), then 128.9 s to start and 12.4 s a step
    one = plan("qwen2.5-coder-1.5b", steps=24, train_prompts=7670, max_prompts=1200, filter_samples=8)
    assert one.seconds == pytest.approx(174 + 59.9 + 15.4 + 128.9 + 24 * 12.436, abs=0.1)
    assert "2026-12-08-h100-rl-qwen2.5-coder-1.5b" in one.basis and "9,600 samples" in one.basis
    assert one.usd == pytest.approx(one.seconds / 3600 * 3.44, abs=1e-4)  # seconds are rounded to 0.1
    # sampling in the colocated engine saves the filter engine's start; no pass at all saves the pass
    colocated = plan("qwen2.5-coder-1.5b", steps=24, train_prompts=7670, max_prompts=1200, filter_samples=8,
                     filter_engine="colocated")
    assert one.seconds - colocated.seconds == pytest.approx(174, abs=0.1)
    assert plan("qwen2.5-coder-1.5b", steps=24, filter_samples=0).seconds == pytest.approx(128.9 + 24 * 12.436,
                                                                                           abs=0.1)
    # a step of 8 prompts x 8 completions is half a measured step; every prompt of the file is sampled
    half = plan("qwen2.5-coder-0.5b", steps=10, prompts=8, train_prompts=100, filter_samples=2)
    step, start, engine, gen, score, _ = RL_MEASURED["qwen2.5-coder-0.5b"]
    assert half.seconds == pytest.approx(engine + 200 * (gen + score) + start + 10 * step / 2, abs=0.1)
    eight = plan("Qwen/Qwen3-8B", filter_samples=0)  # the H200 measurement at the 8B shape: 85 s a step
    assert eight.seconds == pytest.approx(119 + 100 * 85) and "2026-12-07-h200-rl-qwen3-8b-shape" in eight.basis
    if paths.QWEN3_8B_CONFIG.is_file():  # an 8B-sized model not measured itself takes the 8B figure, and says so
        shape = plan(paths.QWEN3_8B_CONFIG, filter_samples=0)
        assert shape.seconds == eight.seconds and "measured on Qwen/Qwen3-8B, not on" in shape.basis
    assert "unknown" in plan("Qwen/Qwen3-8B", steps=-1).basis


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


# --- pipeline ---
ROOT = Path(__file__).resolve().parent.parent
INTERRUPT = Path(__file__).parent / "pipeline_helpers" / "interrupt.py"


def _main(args: list[str]) -> int:
    from t2s_fast.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def _state_at(out: Path) -> dict:
    return json.loads((out / "run_state.json").read_text())


# ---------------------------------------------------------------------------------------------- bad run files
@pytest.mark.parametrize("change, names", [
    ({"stage2": {"lerning_rate": 1e-4}}, ["stage2", "'lerning_rate'", "did you mean 'learning_rate'"]),
    ({"stage1": {"max_steps": "two"}}, ["stage1", "'max_steps'", "an integer"]),
    ({"max_cost_usd": "lots"}, ["'max_cost_usd'", "a number"]),
    ({"prepare": {"spider_dir": "/no/such/spider"}}, ["prepare.spider_dir", "/no/such/spider", "no such folder"]),
    ({"stage1": {"output_dir": "elsewhere"}}, ["stage1.output_dir", "set by the run"]),
    ({"stages": {"stage9": True}}, ["stages.stage9"]),
    ({"eval_variants": {"maj8": {"n_sample": 8}}}, ["eval_variants.maj8", "'n_sample'", "did you mean 'n_samples'"]),
    ({"eval_variants": {"lean": {"gpu_memory_utilization": 0.3}}},
     ["eval_variants.lean.gpu_memory_utilization", "one engine"]),
    ({"eval_variants": {"other": {"include_base": False}}}, ["eval_variants.other.include_base", "one engine"]),
    ({"eval_variants": {"../up": {"repair": "none"}}}, ["eval_variants.../up", "folder"]),
    ({"eval_variants": {"greedy": {}}}, ["eval_variants.greedy", "keys this variant changes"]),
    ({"gpus": 2, "train_processes": 2, "stage1": {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                                                  "packing": False}},
     ["stage1", "2 training processes", "stage1.global_batch_size"]),
    ({"train_processes": 0}, ["train_processes", "at least 1"]),
])
def test_a_bad_run_file_exits_2_naming_the_file_and_the_key_and_starts_nothing(tmp_path, capsys, change, names):
    spider = tmp_path / "spider"
    spider.mkdir()
    out = tmp_path / "run"
    cfg = {"out_dir": str(out), "max_cost_usd": 1.0, "prepare": {"spider_dir": str(spider)}}
    for key, value in change.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    f = tmp_path / "run.json"
    f.write_text(json.dumps(cfg))
    assert _main(["run", "--config", str(f)]) == 2
    err = capsys.readouterr().err
    assert str(f) in err, err
    for name in names:
        assert name in err, err
    assert not out.exists()  # nothing started: no folder, no state, no plan run


def test_status_of_a_folder_that_is_no_run_exits_2(tmp_path, capsys):
    assert _main(["status", str(tmp_path)]) == 2
    assert "run_state.json" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- the tiny runs
@pytest.fixture(scope="module")
def inputs(tmp_path_factory, spider1_dir, tiny_qwen3_dir, qwen3_tokenizer_dir):
    root = tmp_path_factory.mktemp("pipeline")
    return {"spider": write_mini_spider(spider1_dir, root / "spider"), "model": tiny_qwen3_dir,
            "tokenizer": qwen3_tokenizer_dir, "root": root}


def _run_file(inputs, name: str, **over) -> tuple[Path, Path]:
    out = inputs["root"] / name
    over.setdefault("stage1", {"max_steps": 4})  # room for a SIGTERM between two steps
    f = run_file(inputs["root"] / f"{name}.json", spider=inputs["spider"], model=inputs["model"],
                 tokenizer=inputs["tokenizer"], out=out, **over)
    return f, out


@pytest.fixture(scope="module")
def finished(inputs):
    """The whole runbook once, uninterrupted, with an on-finish command and a second decoding of Spider dev (two
    samples, voted); every engine opened is counted."""
    from t2s_fast.evaluate import generation, harness

    f, out = _run_file(inputs, "whole", eval_variants={"vote2": {"n_samples": 2, "temperature": 0.8}})
    marker = inputs["root"] / "finished.txt"
    opened = []

    def counted(cfg, *args, **kw):
        opened.append(cfg.out_dir)
        return open_generator(cfg, *args, **kw)

    open_generator = generation.open_generator
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(generation, "open_generator", counted)
        mp.setattr(harness, "open_generator", counted)
        rc = _main(["run", "--config", str(f), "--on-finish",
                    f"echo \"$T2S_RUN_OUTCOME $T2S_RUN_DIR\" > {marker}"])
    report = json.loads((out / "report.json").read_text())
    return {"rc": rc, "out": out, "config": f, "marker": marker, "report": report, "state": _state_at(out),
            "engines": opened}


@pytest.mark.slow
def test_the_whole_runbook_runs_under_one_cap(finished, capsys):
    out, report = finished["out"], finished["report"]
    assert finished["rc"] == 0
    assert finished["marker"].read_text().split() == ["done", str(out)]  # --on-finish ran, told how it ended
    assert report["outcome"] == "done"
    status = {r["stage"]: r["status"] for r in report["stages"]}
    assert status == {"prepare": "done", "stage1": "done", "stage2": "done", "stage3": "off", "choose": "done",
                      "eval": "done", "merge": "done", "report": "done"}
    # one cap: the dollars of every stage (metered wall time) add up to at most what the run spent, under the cap
    assert 0 < sum(r["spent_usd"] for r in report["stages"]) <= report["spent_usd"] <= report["max_cost_usd"]
    assert all(r["planned_usd"] is not None for r in report["stages"] if r["status"] == "done")
    # the training stages got what was left of the cap as their own budget, and their own meters agree
    for stage in ("stage1", "stage2"):
        run = json.loads((out / stage / "run.json").read_text())
        assert run["config"]["max_cost_usd"] <= report["max_cost_usd"]
        assert 0 < run["cost_usd"] <= next(r["spent_usd"] for r in report["stages"] if r["stage"] == stage) + 1e-6
        assert report["training"][stage]["curves"]["loss"]
    assert run["config"]["adapter_path"] == str(out / "stage1" / "adapter")  # stage 2 continues stage 1
    # the choice: every checkpoint of both stages on held-out data; the dev eval: base, each stage, the choice
    names = {c["name"] for c in report["choose"]["candidates"]}
    assert {"stage1@step-1", "stage1@final", "stage2@final"} <= names
    assert report["choose"]["suite"] == "heldout" and "stage1_valid.jsonl" in report["choose"]["source"]
    chosen = report["chosen_adapter"]
    assert chosen["name"] in names and Path(chosen["path"]).is_dir()
    dev = report["eval"]
    assert {"__base__", "stage1", "stage2"} <= set(dev["adapters"]) and dev["split"] == "dev"
    assert all(a["n"] == 4 and "by_hardness" in a for a in dev["adapters"].values())
    assert Path(dev["files"]["per_question"]).is_file()
    # the second decoding: the same models, its own folder and per-question file, through the eval's engine
    vote = dev["variants"]["vote2"]
    assert set(vote["adapters"]) == set(dev["adapters"]) and vote["out_dir"] == str(out / "eval" / "vote2")
    assert Path(vote["files"]["per_question"]).is_file() and "majority vote of 2" in vote["decoding"]
    assert finished["engines"] == [str(out / "choose"), str(out / "eval")]  # one for the choice, one for dev
    # each stage's difference from the base on the same questions, with its paired interval
    assert all("vs_base" in a for n, a in dev["adapters"].items() if n != "__base__")
    assert "Δ vs base, pts [95% paired CI]" in (out / "report.md").read_text()
    assert "alt='EX per decoding'" in (out / "report.html").read_text()
    assert (Path(report["merged_model"]) / "config.json").is_file()
    assert report["versions"]["torch"] and report["device"]["kind"] == "cpu"
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "Dollars and minutes per stage" in html
    assert "| stage2 | done |" in (out / "report.md").read_text()
    assert (out / "run.log").stat().st_size > 0
    status = json.loads((out / "status.json").read_text())
    assert status["outcome"] == "done" and status["spent_usd"] == pytest.approx(report["spent_usd"], abs=0.01)
    assert _main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"run {out}: done" in text and "Spider dev EX" in text and "report.html" in text


def _subprocess(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


@pytest.mark.slow
def test_killed_at_every_stage_boundary_and_mid_stage_then_resumed_ends_with_the_same_report(inputs, finished,
                                                                                             capsys):
    f, out = _run_file(inputs, "killed")
    marker = inputs["root"] / "killed-finish.txt"
    run = ["run", "--config", str(f), "--on-finish", f"echo $T2S_RUN_OUTCOME >> {marker}"]
    sessions = 0

    def kill_before(stage: str) -> None:
        nonlocal sessions
        rc, text = _finish(_subprocess([str(INTERRUPT), "kill-before", stage, *run]))
        sessions += 1
        assert rc == -signal.SIGKILL, text
        assert _state_at(out)["stages"].get(stage, {}).get("status") in (None, "pending", "running"), text

    kill_before("stage1")  # after prepare
    assert _state_at(out)["stages"]["prepare"]["status"] == "done"
    # SIGTERM in the middle of stage 1: it finishes the step, saves a checkpoint, and the run stops (143). Stage 1
    # waits after its first step for the signal: its tiny steps could otherwise all end before the signal lands.
    proc = _subprocess([str(INTERRUPT), "hold-after-step", "stage1", "1", *run])
    log_file = out / "stage1" / "train_log.jsonl"
    deadline = time.time() + 300
    while not (log_file.is_file() and '"loss"' in log_file.read_text()) and time.time() < deadline:
        time.sleep(0.5)
    capsys.readouterr()
    assert _main(["status", str(out)]) == 0  # come back while it runs
    text = capsys.readouterr().out
    assert ": running" in text and "stage stage1: step " in text and "ETA" in text and "latest: loss " in text, text
    proc.send_signal(signal.SIGTERM)
    rc, text = _finish(proc)
    sessions += 1
    assert rc == 143, text
    state = _state_at(out)
    assert state["stages"]["stage1"]["status"] == "interrupted" and state["outcome"] == "interrupted"
    assert (out / "stage1" / "checkpoints").is_dir()
    spent_stage1_before = state["stages"]["stage1"]["seconds"]
    for stage in ("stage2", "choose", "eval", "merge", "report"):
        kill_before(stage)
    rc, text = _finish(_subprocess(["-m", "t2s_fast", *run]))
    sessions += 1
    assert rc == 0, text
    assert "stage1: done in an earlier session" in text and "prepare: done in an earlier session" in text
    state = _state_at(out)
    # the same command, after every kind of stop: resumed stage 1 from its checkpoint, every stage once
    run1 = json.loads((out / "stage1" / "run.json").read_text())
    assert run1["resumed_from"] and run1["global_step"] == 4 and run1["stop_reason"] == "completed"
    # attempts: each stage killed at its start ran once more; stage 1 also once more after the SIGTERM
    assert state["stages"]["stage1"]["sessions"] == 3 and state["stages"]["stage1"]["seconds"] > spent_stage1_before
    assert state["stages"]["prepare"]["sessions"] == 1
    assert all(state["stages"][s]["sessions"] == 2 for s in ("stage2", "choose", "eval", "merge"))
    assert json.loads((out / "stage2" / "run.json").read_text())["resumed_from"] is None  # trained once, whole
    # the dollars of every session are added up: none forgotten, a SIGKILLed one included
    assert len(state["sessions"]) == sessions and all(s["seconds"] > 0 for s in state["sessions"])
    report = json.loads((out / "report.json").read_text())
    rate = report["gpu_hourly_usd"] / 3600
    assert report["spent_usd"] == pytest.approx(sum(s["seconds"] for s in state["sessions"]) * rate, rel=0.05)
    assert report["spent_usd"] > finished["report"]["spent_usd"]  # 8 starts cost more than one
    # ... and the same report as the uninterrupted run
    same = finished["report"]

    def shape(r):
        return ({x["stage"]: x["status"] for x in r["stages"]}, sorted(c["name"] for c in r["choose"]["candidates"]),
                sorted(r["eval"]["adapters"]), {s: t["global_step"] for s, t in r["training"].items()},
                r["outcome"], r["chosen_adapter"]["name"])

    assert shape(report) == shape(same)
    assert set(same["eval"]["variants"]) == {"vote2"} and "variants" not in report["eval"]  # the one difference
    assert marker.read_text().split() == ["interrupted", "done"]  # a SIGKILL leaves no time for on-finish


@pytest.mark.slow
def test_two_training_processes_train_data_parallel_stop_on_sigterm_and_resume(inputs):
    # train_processes 2: stages 1 and 2 as two data-parallel ranks (gloo on the CPU), each keeping the one-process
    # optimizer batch; a SIGTERM to the run in stage 1 stops both ranks at a checkpoint; the same command resumes
    batch = {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 2}
    f, out = _run_file(inputs, "two-ranks", gpus=2, train_processes=2, stage1={"max_steps": 30, **batch},
                       stage2=batch, stages={"merge": False})
    run = ["-m", "t2s_fast", "run", "--config", str(f)]
    proc = _subprocess(run)
    log_file, deadline = out / "stage1" / "train_log.jsonl", time.time() + 300
    while not (log_file.is_file() and '"loss"' in log_file.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    rc, text = _finish(proc)
    assert rc == 143, text
    state = _state_at(out)
    assert state["stages"]["stage1"]["status"] == "interrupted" and (out / "stage1.launch.json").is_file()
    stopped = json.loads((out / "stage1" / "run.json").read_text())
    assert stopped["stop_reason"] == "interrupted" and stopped["global_step"] < 30 and stopped["world_size"] == 2
    rc, text = _finish(_subprocess(run))
    assert rc == 0, text
    for stage in ("stage1", "stage2"):
        info = json.loads((out / stage / "run.json").read_text())
        assert info["world_size"] == 2 and info["config"]["global_batch_size"] == 2, stage
        assert info["gpu_hourly_usd"] == pytest.approx(3.44)  # each rank pays one of the two GPUs
    assert info["global_step"] == 1 and json.loads((out / "stage1" / "run.json").read_text())["global_step"] == 30
    assert json.loads((out / "stage1" / "run.json").read_text())["resumed_from"].endswith(
        f"checkpoint-{stopped['global_step']}")
    report = json.loads((out / "report.json").read_text())
    assert report["outcome"] == "done" and report["gpus"] == 2
    assert {"stage1", "stage2"} <= set(report["eval"]["adapters"])


@pytest.mark.slow
def test_a_cap_too_small_for_stage2_skips_it_and_says_so(inputs):
    # stage 2 asks for far more steps than the cap pays for: its projection does not fit what is left
    f, out = _run_file(inputs, "small-cap", max_cost_usd=1.0, stage1={"max_steps": 1},
                       stage2={"max_steps": 100000}, stages={"choose": False, "merge": False})
    marker = inputs["root"] / "small-cap.txt"
    assert _main(["run", "--config", str(f), "--on-finish", f"echo $T2S_RUN_OUTCOME > {marker}"]) == 0
    state = _state_at(out)
    s2 = state["stages"]["stage2"]
    assert s2["status"] == "skipped" and s2["skipped_for"] == "budget"
    assert "does not fit" in s2["reason"] and "$1 cap" in s2["reason"]
    assert not (out / "stage2").exists()
    assert state["outcome"] == "over_budget" and marker.read_text().strip() == "over_budget"
    report = json.loads((out / "report.json").read_text())
    assert set(report["eval"]["adapters"]) == {"__base__", "stage1"}  # stage 1 is still evaluated
    assert "stage2 | skipped" in (out / "report.md").read_text() and "does not fit" in (out / "report.md").read_text()
    assert report["spent_usd"] <= 1.0


@pytest.mark.slow
def test_a_changed_stage2_setting_reruns_stage2_and_later_not_stage1(inputs, finished, capsys):
    out, cfg = finished["out"], json.loads(finished["config"].read_text())
    before = _state_at(out)
    cfg["stage2"]["learning_rate"] = 2e-4
    f = finished["config"].with_name("whole-changed.json")
    f.write_text(json.dumps(cfg))
    assert _main(["run", "--config", str(f)]) == 0
    err = capsys.readouterr().err
    assert "stage1: done in an earlier session" in err
    assert "stage2: settings changed (learning_rate)" in err and "every stage after it" in err
    after = _state_at(out)
    assert after["stages"]["stage1"] == before["stages"]["stage1"]  # not run again
    for stage in ("stage2", "choose", "eval", "merge"):
        assert after["stages"][stage]["status"] == "done"
        assert after["stages"][stage]["started_at"] >= before["stages"][stage]["finished_at"], stage
    assert json.loads((out / "stage2" / "run.json").read_text())["config"]["learning_rate"] == 2e-4
    assert (out / "stage2.replaced-1" / "run.json").is_file()  # the earlier stage 2 is kept, not deleted
    report = json.loads((out / "report.json").read_text())
    assert report["spent_usd"] > finished["report"]["spent_usd"]  # the first session's dollars still count


@pytest.mark.slow
def test_the_rl_stage_runs_for_real_from_stage_1_and_its_checkpoints_join_the_choice(inputs):
    """Stage 3 on the tiny model, not a stand-in: the filter pass, GRPO steps with the sandboxed reward on the run's
    own databases, checkpoints the held-out choice evaluates beside stage 1's, and Spider dev of each stage."""
    rl = {"adapter_path": "stage1", "max_steps": 2, "save_steps": 1, "filter_samples": 2, "filter_min_correct": 0,
          "filter_max_correct": 2, "num_generations": 2, "prompts_per_step": 2, "micro_batch_completions": 2,
          "max_completion_length": 8, "reward_workers": 1, "max_prompts": 4}
    f, out = _run_file(inputs, "with-rl", stages={"stage2": False, "stage3": True}, stage1={"max_steps": 2},
                       stage3=rl)
    assert _main(["run", "--config", str(f)]) == 0
    report = json.loads((out / "report.json").read_text())
    status = {r["stage"]: r["status"] for r in report["stages"]}
    assert status["stage3"] == "done" and status["stage2"] == "off" and report["outcome"] == "done"
    run3 = json.loads((out / "stage3" / "run.json").read_text())
    assert run3["global_step"] == 2 and run3["config"]["adapter_path"] == str(out / "stage1" / "adapter")
    assert (out / "stage3" / "prompts" / "filter.json").is_file()
    assert all((out / "stage3" / "checkpoints" / f"checkpoint-{s}" / "t2s_checkpoint_complete").is_file()
               for s in (1, 2))
    # every checkpoint is a candidate unless its weights equal the final adapter's (a random model earns no reward,
    # so GRPO leaves its weights as they were: one evaluation of them is enough)
    candidates = {c["name"] for c in report["choose"]["candidates"]}
    assert "stage3@final" in candidates and "stage1@final" in candidates
    assert {"stage1", "stage3"} <= set(report["eval"]["adapters"])
    assert report["training"]["stage3"]["curves"]["reward"]
