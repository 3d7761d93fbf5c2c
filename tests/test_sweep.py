"""`t2s-fast sweep` (t2s_fast/sweep/) and a recipe it chose as a train file.

- `t2s-fast sweep` and `eval --checkpoints` on a CPU with a tiny Qwen3 (HF backends): a sweep stopped while
  its second variant trains resumes without retraining the first, the second continuing from its checkpoint
  with only what is left of the cap; a cap spent by the first variant records the second as skipped; every
  adapter of a run is evaluated in one evaluation and the best is named; choosing on Spider dev is refused.
- The sweep's evaluation (sweep/evaluation.py) on the real engine path with a fake vllm underneath: every
  candidate on the held-out set, the choice, and the chosen one's final report on Spider dev (greedy, then maj@K)
  all go through ONE engine; 'good' adapters answer the gold SQL, so the choice and every EX are known.
- `parallel` in a sweep file: variants train side by side, each in its own process, under one dollar cap.
  The training function is a stand-in (sweep_helpers/fake_train.py: a sleep and a run.json), so what is checked
  is the sweep's own work: runs overlap, each sees its own GPU, each budget is its share of what is left, a
  SIGTERM stops every running run and starts no new one, and the re-run resumes the stopped runs.
- `t2s-fast sweep` with max_eval_loss (issue 14, stage 2 without forgetting): the best held-out EX among the
  candidates whose eval loss is at most a cap, a number or a variant's final eval loss. Training and evaluation
  are replaced by fakes that write what `train` writes (run.json, train_log.jsonl with the eval loss, adapter/)
  and return what `evaluate` returns, with known EX and eval losses, so the choice itself is what is tested.
- records/drivers/recipe_config.py: a committed sweep's chosen recipe becomes a `t2s-fast train --config` file that
  TrainConfig accepts, with the settings the chosen run recorded (how the session-5 GPU driver trained the choices)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_helpers.fake_train import COST, SIGNAL_SEED, fake_train
from test_generate import gold_by_question, write_adapter
from test_repair import GOLD, QUESTIONS, suite  # noqa: F401 - `suite` is a fixture

from t2s_fast.cli import main
from t2s_fast.configs import load_config
from t2s_fast.errors import T2SError
from t2s_fast.sweep.config import SweepConfig, expand_variants
from t2s_fast.sweep.evaluation import SweepEvaluation, evaluate_and_choose
from t2s_fast.sweep.report import build_summary, render_markdown
from t2s_fast.sweep.runner import SweepState, train_all
from t2s_fast.train.config import TrainConfig

# --- sweep ---
TRAIN_DBS = ("department_management", "farm")  # Spider training databases (not dev)


def _prepared_lines(spider1_dir: Path, dbs, per_db: int) -> list[dict]:
    from t2s_fast.prompt import build_messages
    from t2s_fast.schema import read_sqlite_schema, render_schema

    rows = json.loads((spider1_dir / "train_spider.json").read_text())
    out = []
    for db in dbs:
        schema = render_schema(read_sqlite_schema(spider1_dir / "database" / db / f"{db}.sqlite", db_id=db,
                                                  sample_values=0), sample_values=False)
        for r in [r for r in rows if r["db_id"] == db][:per_db]:
            out.append({"id": f"spider1-train_spider-{len(out)}", "source": "spider1", "db_id": db, "dialect": "sqlite",
                        "question": r["question"], "sql": r["query"],
                        "messages": build_messages(dialect="sqlite", db_id=db, schema=schema, question=r["question"],
                                                   sql=r["query"])})
    return out


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory, spider1_dir) -> dict:
    root = tmp_path_factory.mktemp("sweep-data")
    return {"train": _write_jsonl(root / "train.jsonl", _prepared_lines(spider1_dir, TRAIN_DBS, 4)),
            "heldout": _write_jsonl(root / "heldout.jsonl", _prepared_lines(spider1_dir, ("farm",), 2))}


def _config(tmp_path: Path, tiny_qwen3_dir, data, spider1_dir, **over) -> Path:
    cfg = {
        "out_dir": str(tmp_path / "sweep"),
        "max_cost_usd": 1e6,
        "train": {"model_name": str(tiny_qwen3_dir), "train_file": str(data["train"]), "backend": "hf",
                  "max_steps": 2, "save_steps": 1, "max_seq_length": 1024, "per_device_train_batch_size": 2,
                  "gradient_accumulation_steps": 1, "auto_setup": False, "warmup_ratio": 0.0,
                  "lr_scheduler_type": "constant", "learning_rate": 1e-2, "gpu_hourly_usd": 3600.0},  # $1 a second
        "variants": [{"name": "a"}, {"name": "b", "learning_rate": 1e-3}],
        "heldout": {"questions": str(data["heldout"]), "spider_dir": str(spider1_dir), "sample_values": 0},
        "eval": {"backend": "hf", "max_new_tokens": 4, "workers": 0},
        "final": None,
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(cfg))
    return path


def _state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


# The sweep CLI in a child process that sends itself SIGTERM once variant b has saved its step-2 checkpoint:
# a stop at a known point of the second run, whatever the machine's speed.
STOP_DURING_B = """
import os, signal, sys
from t2s_fast.train import callbacks
original = callbacks.StepLogCallback.on_save
def on_save(self, args, state, control, **kw):
    result = original(self, args, state, control, **kw)
    if os.sep + os.path.join("runs", "b") + os.sep in str(args.output_dir) and state.global_step == 2:
        os.kill(os.getpid(), signal.SIGTERM)
    return result
callbacks.StepLogCallback.on_save = on_save
from t2s_fast.cli import main
main(["sweep", "--config", sys.argv[1]])
"""


@pytest.mark.slow
def test_stopped_sweep_resumes_without_retraining_and_second_variant_gets_what_is_left(
        tmp_path, tiny_qwen3_dir, data, spider1_dir):
    from t2s_fast.sweep.config import load_sweep_config
    from t2s_fast.sweep.runner import sweep

    config = _config(tmp_path, tiny_qwen3_dir, data, spider1_dir,
                     variants=[{"name": "a"}, {"name": "b", "learning_rate": 1e-3, "max_steps": 4, "save_steps": 2}],
                     heldout={"limit": 1}, final={"spider_dir": str(spider1_dir), "limit": 1, "sample_values": 0})
    out = tmp_path / "sweep"
    state_file = out / "sweep_state.json"
    log = open(tmp_path / "sweep.out", "w")
    proc = subprocess.Popen([sys.executable, "-c", STOP_DURING_B, str(config)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    assert proc.wait(timeout=300) == 143, (tmp_path / "sweep.out").read_text()[-3000:]
    state = _state(state_file)
    assert state["variants"]["a"]["status"] == "done" and state["variants"]["b"]["status"] == "interrupted"
    a_run = (out / "runs" / "a" / "run.json").read_bytes()
    b_stopped = json.loads((out / "runs" / "b" / "run.json").read_text())
    assert b_stopped["stop_reason"] == "interrupted" and 2 <= b_stopped["global_step"] < 4

    summary = sweep(load_sweep_config(config))  # resume, in this process
    assert (out / "runs" / "a" / "run.json").read_bytes() == a_run  # a was not retrained
    b = json.loads((out / "runs" / "b" / "run.json").read_text())
    assert b["stop_reason"] == "completed" and b["global_step"] == 4
    assert b["resumed_from"].endswith(f"checkpoint-{b_stopped['global_step']}")  # continued, not restarted
    a_cost = json.loads(a_run)["cost_usd"]
    assert b["max_cost_usd"] == pytest.approx(1e6 - a_cost)  # the cap less what a spent
    rows = {r["variant"]: r for r in summary["rows"]}
    assert rows["a"]["status"] == rows["b"]["status"] == "done"
    assert rows["a"]["budget_usd"] == 1e6 and rows["b"]["cost_usd"] == b["cost_usd"]
    # both final adapters in one evaluation on the held-out set, which the report names
    heldout = json.loads((out / "eval" / "heldout" / "report.json").read_text())
    assert set(heldout["adapters"]) == {"a@final", "b@final"}
    assert summary["chosen_on"]["suite"] == "heldout" and str(data["heldout"]) in summary["chosen_on"]["source"]
    assert summary["chosen"]["name"] in {"a@final", "b@final"}
    # the chosen adapter alone on Spider dev, greedy
    assert list(summary["final"]) == ["greedy"]
    rep = json.loads((Path(summary["final"]["greedy"]["out_dir"]) / "report.json").read_text())
    assert rep["settings"]["suite"] == "spider1" and rep["settings"]["split"] == "dev"
    assert list(rep["adapters"]) == [summary["chosen"]["name"]] and rep["settings"]["decoding"] == "greedy"
    md = (out / "sweep.md").read_text()
    assert "Chosen on" in md and "heldout.jsonl" in md and (out / "ex_vs_cost.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def budget_sweep(tmp_path_factory, tiny_qwen3_dir, data, spider1_dir):
    """Cap $1000 at $1 a second; a run needs $999.90 left to start: a starts, b is skipped."""
    from t2s_fast.sweep.config import load_sweep_config
    from t2s_fast.sweep.runner import sweep

    tmp = tmp_path_factory.mktemp("budget")
    config = _config(tmp, tiny_qwen3_dir, data, spider1_dir, max_cost_usd=1000.0, min_run_usd=999.9,
                     checkpoints=True, heldout={"limit": 1})
    return tmp / "sweep", sweep(load_sweep_config(config))


@pytest.mark.slow
def test_a_spent_cap_skips_the_next_variant_and_checkpoints_are_candidates(budget_sweep):
    out, summary = budget_sweep
    rows = {r["variant"]: r for r in summary["rows"]}
    a = json.loads((out / "runs" / "a" / "run.json").read_text())
    assert a["max_cost_usd"] == 1000.0 and a["cost_usd"] > 0.1
    assert a["config"]["save_total_limit"] is None  # "checkpoints": true keeps every checkpoint
    assert rows["b"]["status"] == "skipped" and "min_run_usd" in rows["b"]["reason"]
    assert rows["b"]["budget_usd"] == pytest.approx(1000.0 - a["cost_usd"])
    assert not (out / "runs" / "b").exists()
    # checkpoint-2 holds the final adapter's weights: evaluated once, as a@final
    names = [c["name"] for c in summary["candidates"]]
    assert names == ["a@step-1", "a@final"]
    step1, final = summary["candidates"]
    assert step1["cost_usd"] < final["cost_usd"] == a["cost_usd"]
    assert summary["chosen"]["name"] in names
    assert "skipped" in (out / "sweep.md").read_text()


@pytest.mark.slow
def test_eval_checkpoints_scores_every_checkpoint_in_one_run(budget_sweep, data, spider1_dir, tmp_path, capsys):
    out, _ = budget_sweep
    run = out / "runs" / "a"
    main(["eval", "--checkpoints", str(run), "--suite", "heldout", "--questions", str(data["heldout"]),
          "--spider-dir", str(spider1_dir), "--limit", "1", "--max-new-tokens", "4", "--backend", "hf",
          "--workers", "0", "--sample-values", "0", "--out-dir", str(tmp_path / "ck")])
    report = json.loads((tmp_path / "ck" / "report.json").read_text())
    assert list(report["adapters"]) == ["step-1", "final"]  # base model from run.json; checkpoint-2 == final
    section = report["checkpoints"]
    log = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in section["rows"]] == [1, 2]
    assert section["rows"][0]["cost_usd"] == next(r["cost_usd"] for r in log if r["step"] == 1 and "loss" in r)
    assert section["best"] in {"step-1", "final"} and section["chosen_on"]["suite"] == "heldout"
    assert f"best checkpoint by EX on {data['heldout']}" in capsys.readouterr().out
    assert "## Checkpoints" in (tmp_path / "ck" / "report.md").read_text()
    assert "id='plot-checkpoints'" in (tmp_path / "ck" / "report.html").read_text()


def _fake_run(folder: Path) -> Path:
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


@pytest.mark.slow
def test_choosing_on_spider_dev_is_refused(tmp_path, capsys, spider1_dir, data, tiny_qwen3_dir):
    from t2s_fast.evaluate.selection import SPIDER_DEV_DB_IDS, spider_dev_reason

    dev = json.loads((spider1_dir / "dev.json").read_text())
    assert SPIDER_DEV_DB_IDS == {q["db_id"] for q in dev}
    run = _fake_run(tmp_path / "run")
    # eval --checkpoints on Spider dev: the suite, or a questions file on a dev database or with dev ids
    dev_lines = _write_jsonl(tmp_path / "dev_like.jsonl", [{"db_id": "farm", "question": "q", "sql": "SELECT 1"},
                                                           {"db_id": "concert_singer", "question": "q",
                                                            "sql": "SELECT 1"}])
    dev_ids = _write_jsonl(tmp_path / "dev_ids.jsonl", [{"id": "dev-0007", "db_id": "farm", "question": "q"}])
    for extra, needle in ((["--spider-dir", str(spider1_dir)], "--suite spider1 --split dev"),
                          (["--suite", "heldout", "--questions", str(dev_lines)], "dev_like.jsonl:2"),
                          (["--suite", "jsonl", "--questions", str(dev_ids)], "dev-0007")):
        with pytest.raises(SystemExit) as exc:
            main(["eval", "--checkpoints", str(run), "--base-model", "m", "--out-dir", str(tmp_path / "o"), *extra])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "refuses Spider dev" in err and needle in err, err
    assert spider_dev_reason(suite="heldout", questions=str(data["heldout"])) is None  # training databases pass
    # a sweep whose held-out set is Spider dev stops before training anything
    for heldout in ({"suite": "spider1", "questions": None, "spider_dir": str(spider1_dir)},
                    {"questions": str(dev_lines)}):
        config = _config(tmp_path, tiny_qwen3_dir, data, spider1_dir, heldout=heldout)
        with pytest.raises(SystemExit) as exc:
            main(["sweep", "--config", str(config)])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "refuses Spider dev" in err and "heldout" in err, err
        assert not (tmp_path / "sweep" / "runs").exists()


def test_final_report_is_greedy_then_majority_vote_when_asked(tmp_path, spider1_dir):
    from t2s_fast.sweep.config import SweepConfig
    from t2s_fast.sweep.plan import final_configs

    cfg = SweepConfig(out_dir=str(tmp_path), max_cost_usd=5, heldout={"questions": "q"}, train={"model_name": "m"},
                      final={"spider_dir": str(spider1_dir), "n_samples": 8, "temperature": 0.7})
    adapter = _fake_run(tmp_path / "run") / "adapter"
    (greedy_label, greedy), (maj_label, maj) = final_configs(cfg, {"v@final": str(adapter)})
    assert (greedy_label, greedy.n_samples, greedy.temperature) == ("greedy", 1, 0.0)
    assert (maj_label, maj.n_samples, maj.temperature) == ("maj@8", 8, 0.7)
    for e in (greedy, maj):
        assert (e.suite, e.split, e.base_model, list(e.adapters), e.include_base) == ("spider1", "dev", "m",
                                                                                      ["v@final"], False)
    assert Path(maj.out_dir) == tmp_path / "final" / "maj8"
    cfg.final = None
    assert final_configs(cfg, {"v@final": str(adapter)}) == []


def test_sweep_evaluations_do_not_repair_unless_the_file_says_so(tmp_path):
    """The sweep chooses on greedy held-out EX: eval's default repair (auto: resample on these SQLite suites) is
    not its default; every shipped sweep file says repair none; a file may ask for a repair pass."""
    from t2s_fast.paths import REPO_ROOT
    from t2s_fast.sweep.config import SweepConfig, load_sweep_config
    from t2s_fast.sweep.plan import final_configs, heldout_config

    def repairs(cfg) -> list[str]:
        return [heldout_config(cfg, {}).repair] + [e.repair for _, e in final_configs(cfg, {})]

    shipped = sorted([*(REPO_ROOT / "configs" / "sweep").glob("*.json"),
                      *(REPO_ROOT / "records" / "configs" / "sweep").glob("*.json")])
    assert shipped
    for path in shipped:
        cfg = load_sweep_config(path)
        assert cfg.eval.get("repair") == "none", path
        assert set(repairs(cfg)) == {"none"}, path
    final = {"spider_dir": "s", "n_samples": 8, "temperature": 0.7}
    cfg = SweepConfig(out_dir=str(tmp_path), max_cost_usd=5, heldout={"questions": "q"}, train={"model_name": "m"},
                      final=final)
    assert repairs(cfg) == ["none", "none", "none"]  # no "repair" in the file
    cfg = SweepConfig(out_dir=str(tmp_path), max_cost_usd=5, heldout={"questions": "q"}, train={"model_name": "m"},
                      final=final, eval={"repair": "resample", "repair_k": 4})
    assert repairs(cfg) == ["resample"] * 3 and heldout_config(cfg, {}).repair_k == 4


def test_variants_from_a_list_and_a_grid(tmp_path):
    from t2s_fast.paths import REPO_ROOT
    from t2s_fast.sweep.config import SweepConfig, expand_variants, load_sweep_config

    examples = sorted([*(REPO_ROOT / "configs" / "sweep").glob("*.json"),
                       *(REPO_ROOT / "records" / "configs" / "sweep").glob("*.json")])
    assert examples
    for path in examples:  # the shipped examples stay valid (a cap by name names one of their variants)
        cfg = load_sweep_config(path)
        names = [v.name for v in expand_variants(cfg)]
        assert len(names) >= 4
        assert not isinstance(cfg.max_eval_loss, str) or cfg.max_eval_loss in names
    replay = load_sweep_config(REPO_ROOT / "records" / "configs" / "sweep" / "stage2-replay-from-runbook-0.5b.json")
    assert replay.max_eval_loss == "runbook"

    cfg = SweepConfig(out_dir=str(tmp_path), max_cost_usd=5, train={"train_file": "x"},
                      heldout={"questions": "q.jsonl"}, variants=[{"name": "small", "lora_r": 8, "lora_alpha": 16}, {}],
                      grid={"learning_rate": [1e-4, 2e-4]}).validate()
    got = [(v.name, v.overrides) for v in expand_variants(cfg)]
    assert got == [("small-lr0p0001", {"lora_r": 8, "lora_alpha": 16, "learning_rate": 1e-4}),
                   ("small-lr0p0002", {"lora_r": 8, "lora_alpha": 16, "learning_rate": 2e-4}),
                   ("lr0p0001", {"learning_rate": 1e-4}), ("lr0p0002", {"learning_rate": 2e-4})]
    with pytest.raises(T2SError, match="unknown or sweep-owned setting.*max_cost_usd"):
        expand_variants(SweepConfig(out_dir="o", max_cost_usd=5, heldout={"questions": "q"},
                                    variants=[{"max_cost_usd": 3}]))
    with pytest.raises(T2SError, match="used twice"):
        expand_variants(SweepConfig(out_dir="o", max_cost_usd=5, heldout={"questions": "q"},
                                    variants=[{"name": "x"}, {"name": "x", "lora_r": 4}]))
    with pytest.raises(T2SError, match="train.output_dir is set by the sweep"):
        SweepConfig(out_dir="o", max_cost_usd=5, heldout={"questions": "q"}, train={"output_dir": "r"}).validate()


def test_replay_variants_train_on_prepares_own_mix(tmp_path):
    """A replay_ratio variant gets the stage2_mixed files `prepare --stage2-replay-ratio` would write: the
    Spider 2.0 split plus ratio x as many stage-1 examples, mixed by prepare's own function and seed."""
    from t2s_fast.data.prepare import MIXED_TRAIN, S2_TRAIN, S2_VALID, STAGE1_TRAIN, STAGE1_VALID, mix_replay
    from t2s_fast.sweep.config import SweepConfig, Variant
    from t2s_fast.sweep.plan import train_config

    prep = tmp_path / "prepared"
    prep.mkdir()
    files = {name: [{"id": f"{name}-{i}", "db_id": "d", "question": "q", "sql": "SELECT 1"} for i in range(n)]
             for name, n in ((STAGE1_TRAIN, 40), (STAGE1_VALID, 10), (S2_TRAIN, 8), (S2_VALID, 4))}
    for name, rows in files.items():
        _write_jsonl(prep / name, rows)
    (prep / "prepare_stats.json").write_text(json.dumps({"config": {"seed": 7}}))
    adapter = _fake_run(tmp_path / "stage1") / "adapter"
    cfg = SweepConfig(out_dir=str(tmp_path / "sw"), max_cost_usd=5, heldout={"questions": "q"},
                      train={"adapter_path": str(adapter)}, stage2_prepared_dir=str(prep))
    tc = train_config(cfg, Variant("r05", {"replay_ratio": 0.5, "learning_rate": 5e-5}), budget=5.0, resume=False)
    mixed = [json.loads(x) for x in Path(tc.train_file).read_text().splitlines()]
    assert Path(tc.train_file).name == MIXED_TRAIN and tc.learning_rate == 5e-5 and tc.max_cost_usd == 5.0
    assert len(mixed) == 8 + 4 and sum(r["id"].startswith("stage2") for r in mixed) == 8
    expected, _, replay = mix_replay(files[S2_TRAIN], files[S2_VALID], files[STAGE1_TRAIN], files[STAGE1_VALID], 0.5, 7)
    assert mixed == expected and replay == {"ratio": 0.5, "train": 4, "valid": 2}
    with pytest.raises(T2SError, match="replay_ratio is a stage-2 setting"):
        train_config(SweepConfig(out_dir="o", max_cost_usd=5, heldout={"questions": "q"}),
                     Variant("x", {"replay_ratio": 1.0}), budget=1.0, resume=False)


def test_isolated_call_returns_and_raises_like_a_direct_call(tmp_path):
    from t2s_fast.jsonl import read_json
    from t2s_fast.sweep.isolate import call

    (tmp_path / "x.json").write_text('{"a": 1}')
    assert call(read_json, str(tmp_path / "x.json"), isolate=True) == {"a": 1}
    with pytest.raises(T2SError, match="file not found"):
        call(read_json, str(tmp_path / "missing.json"), isolate=True)


def test_resume_refuses_a_finished_variant_whose_settings_changed(tmp_path, tiny_qwen3_dir, data, spider1_dir):
    """A finished variant is never retrained, so editing its settings in the file must not pass silently."""
    from t2s_fast.sweep.config import expand_variants, load_sweep_config
    from t2s_fast.sweep.plan import train_config
    from t2s_fast.sweep.runner import sweep

    cfg = load_sweep_config(_config(tmp_path, tiny_qwen3_dir, data, spider1_dir))
    a = expand_variants(cfg)[0]
    was = train_config(cfg, a, budget=None, resume=False).to_dict()
    state = {"version": 1, "eval_seconds": 0.0,
             "variants": {"a": {"status": "done", "cost_usd": 1.0, "train_config": {**was, "learning_rate": 5e-4}}}}
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep_state.json").write_text(json.dumps(state))
    with pytest.raises(T2SError, match="variant a was trained with other settings \\(learning_rate changed\\)"):
        sweep(cfg)
    assert not (tmp_path / "sweep" / "runs").exists()


def test_isolated_run_gets_the_sweeps_sigterm_and_reports_it(tmp_path):
    """SIGTERM to the sweep reaches the run in its own process (a training run then stops at a checkpoint);
    a run that dies of it is reported as interrupted, and the sweep's own handler is put back."""
    import threading
    import time

    from t2s_fast.sweep.isolate import Interrupted, call

    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    t0 = time.time()
    with pytest.raises(Interrupted, match="signal 15"):
        call(time.sleep, 60, isolate=True)
    timer.cancel()
    assert time.time() - t0 < 30 and signal.getsignal(signal.SIGTERM) == before


def _state_of(pid: int) -> str | None:
    """A process's state letter (R, S, Z, ...), None once it is gone; a zombie is dead (nobody reaps it here)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("how", ["isolated call", "launched ranks"])
def test_a_stage_process_dies_with_a_run_killed_by_sigkill(tmp_path, how):
    """A run killed with SIGKILL (kill -9, the OOM killer) takes its stage's processes with it: a run started
    again must not find the old stage still training beside it."""
    import time

    body = {"isolated call": "from t2s_fast.sweep.isolate import call; import time; "
                             "call(time.sleep, 120, isolate=True)",
            "launched ranks": "from t2s_fast.sweep.isolate import launch_ranks; "
                              "launch_ranks(['-c', 'import time; time.sleep(120)'], 2)"}[how]
    root = Path(__file__).resolve().parent.parent
    parent = subprocess.Popen([sys.executable, "-c", body], cwd=root, start_new_session=True)
    deadline, children = time.time() + 60, []
    while time.time() < deadline and len(children) < (1 if how == "isolated call" else 2):
        out = subprocess.run(["pgrep", "-P", str(parent.pid), "-f", "spawn_main|time.sleep"], capture_output=True,
                             text=True).stdout
        children = [int(x) for x in out.split()]
        time.sleep(0.2)
    assert children and all(_state_of(c) not in (None, "Z") for c in children)
    parent.kill()
    parent.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(_state_of(c) not in (None, "Z") for c in children):
        time.sleep(0.2)
    assert all(_state_of(c) in (None, "Z") for c in children), [_state_of(c) for c in children]


def test_launched_ranks_get_their_rank_and_a_failed_rank_ends_the_others(tmp_path):
    from t2s_fast.sweep.isolate import launch_ranks

    write = ("import os, sys; e = os.environ; open(os.path.join(sys.argv[1], 'rank' + e['RANK']), 'w').write("
             "' '.join(e[k] for k in ('LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')))")
    import time

    assert launch_ranks(["-c", write, str(tmp_path)], 2) == [0, 0]
    r0, r1 = ((tmp_path / f"rank{r}").read_text().split() for r in (0, 1))
    assert r0[0] == "0" and r1[0] == "1" and r0[1:] == r1[1:] and r0[1:3] == ["2", "127.0.0.1"]
    t0 = time.time()  # rank 1 fails at once; rank 0 would wait 60 s (a collective that never comes)
    fail = "import os, sys, time; sys.exit(3) if os.environ['RANK'] == '1' else time.sleep(60)"
    assert launch_ranks(["-c", fail], 2, grace_s=1.0) == [-signal.SIGTERM, 3] and time.time() - t0 < 30


# --- sweep_evaluation ---
def _finished_run(folder: Path, r: int) -> str:
    """What the evaluation reads of a training run: its adapter and its per-step dollars."""
    (folder).mkdir(parents=True)
    (folder / "train_log.jsonl").write_text(json.dumps({"step": 2, "loss": 1.0, "cost_usd": 0.01}) + "\n")
    return write_adapter(folder / "adapter", r=r)


@pytest.mark.slow
def test_heldout_choice_and_final_share_one_vllm_engine(suite, tmp_path, fake_vllm, spider1_dir, qwen3_tokenizer_dir):
    golds = {**gold_by_question(spider1_dir), **{QUESTIONS[q]: GOLD[q] for q in QUESTIONS}}

    def respond(prompt: str, lora) -> str:
        question = re.search(r"Question: (.*?)<\|im_end\|>", prompt, re.S).group(1).strip()
        good = lora is not None and lora.lora_name.startswith("good")
        return f"```sql\n{golds[question]}\n```" if good else "SELECT 1"

    fake_vllm.RESPONDER = respond
    qfile, root = suite
    cfg = SweepConfig(out_dir=str(tmp_path / "sweep"), max_cost_usd=1.0, source="sweep.json",
                      train={"model_name": str(qwen3_tokenizer_dir)}, variants=[{"name": "bad"}, {"name": "good"}],
                      heldout={"suite": "jsonl", "questions": str(qfile), "db_root": str(root)},
                      eval={"backend": "vllm", "workers": 0},
                      final={"spider_dir": str(spider1_dir), "dbs": ["concert_singer"], "limit": 3, "n_samples": 2,
                             "temperature": 0.7}).validate()
    adapters = {f"{n}@final": _finished_run(tmp_path / "sweep" / "runs" / n, r) for n, r in (("bad", 8), ("good", 4))}
    result = evaluate_and_choose(SweepEvaluation(cfg, expand_variants(cfg), adapters))
    assert len(fake_vllm.CALLS["engines"]) == 1  # held-out, greedy final and maj@2 final: one engine
    assert [(c["name"], c["ex"]) for c in result["candidates"]] == [("bad@final", 0.0), ("good@final", 1.0)]
    assert result["chosen"]["name"] == "good@final" and result["heldout"]["suite"] == "jsonl"
    assert [(k, f["suite"], f["split"], f["ex"], f["n"]) for k, f in result["final"].items()] == [
        ("greedy", "spider1", "dev", 1.0, 3), ("maj@2", "spider1", "dev", 1.0, 3)]
    # the chosen one against the baseline (the first variant), question by question, held-out and final
    paired = result["paired"]
    assert (paired["baseline"], paired["chosen"]) == ("bad@final", "good@final")
    assert (paired["heldout"]["n"], paired["heldout"]["wrong_to_right"], paired["heldout"]["diff"]) == (4, 4, 1.0)
    assert paired["heldout"]["noise"] is False
    for label in ("greedy", "maj@2"):
        assert (paired["final"][label]["n"], paired["final"][label]["diff"]) == (3, 1.0)
        assert paired["final"][label]["file_a"].endswith("scored.jsonl.gz")
    from t2s_fast.sweep.report import _paired

    md = "\n".join(_paired({"paired": paired}))
    assert "## Chosen against the baseline (bad@final)" in md
    assert "| held-out | bad@final | good@final | 4 | 0.0% | 100.0% | +100.0 |" in md
    assert "| final maj@2 | bad@final | good@final | 3 |" in md


# --- sweep_parallel ---
def _cfg(tmp_path: Path, seconds: dict[str, float], signals: str = "", **over) -> SweepConfig:
    train_file = tmp_path / "train.jsonl"
    train_file.write_text('{"messages": []}\n')
    over = {"isolate": "process", **over}
    return SweepConfig(out_dir=str(tmp_path / "sweep"), max_cost_usd=10.0, min_run_usd=0.1,
                       train={"model_name": "tiny", "train_file": str(train_file), "backend": "hf"},
                       variants=[{"name": n, "learning_rate": s, **({"seed": SIGNAL_SEED} if n == signals else {})}
                                 for n, s in seconds.items()],
                       heldout={"questions": str(train_file)}, **over).validate()


def _ran(cfg: SweepConfig, name: str) -> dict:
    return json.loads((Path(cfg.out_dir) / "runs" / name / "fake.json").read_text())


@pytest.mark.slow
def test_runs_train_side_by_side_each_on_its_gpu_with_its_share_of_the_cap(tmp_path):
    # a is quick, b slow: c starts when a ends, in a's slot and on a's GPU, while b still trains
    cfg = _cfg(tmp_path, {"a": 0.2, "b": 10.0, "c": 0.2}, parallel=2, devices=[0, 1])
    state = SweepState(Path(cfg.out_dir))
    assert train_all(cfg, expand_variants(cfg), state, isolate=True, train_fn=fake_train)
    a, b, c = (_ran(cfg, n) for n in "abc")
    assert b["started"] < a["ended"] and c["started"] < b["ended"]  # side by side
    assert (a["device"], b["device"], c["device"]) == ("0", "1", "0")
    # a and b split the $10 cap; c gets what a left ($10 - a's $1) less b's $5 still reserved
    assert (a["budget"], b["budget"], c["budget"]) == (5.0, 5.0, 10.0 - COST - 5.0)
    assert [state.variants[n]["status"] for n in "abc"] == ["done"] * 3
    summary = build_summary(cfg, expand_variants(cfg), state, [], None, {})
    assert summary["training_usd"] == 3 * COST and summary["training_wall_seconds"] > 0
    assert "Trained 2 runs at a time on 2 GPU(s)" in render_markdown(summary)


def test_sigterm_stops_every_running_run_and_the_rerun_resumes_them(tmp_path):
    # b signals the sweep once started: a and b are stopped, c never starts
    cfg = _cfg(tmp_path, {"a": 20.0, "b": 20.0, "c": 0.1}, signals="b", parallel=2)
    state = SweepState(Path(cfg.out_dir))
    assert not train_all(cfg, expand_variants(cfg), state, isolate=True, train_fn=fake_train)
    saved = json.loads(state.path.read_text())["variants"]
    assert saved["a"]["status"] == saved["b"]["status"] == "running" and "c" not in saved
    assert not (Path(cfg.out_dir) / "runs" / "a" / "fake.json").exists()

    again = _cfg(tmp_path, {"a": 0.1, "b": 0.1, "c": 0.1}, parallel=2)  # same names, quick now
    state = SweepState(Path(again.out_dir))
    for name in ("a", "b"):  # changed only so the stand-in runs quickly and signals no more
        state.variants[name]["train_config"].update(learning_rate=0.1, seed=again.train.get("seed", 3407))
    assert train_all(again, expand_variants(again), state, isolate=True, train_fn=fake_train)
    assert [_ran(again, n)["resumed"] for n in "abc"] == [True, True, False]
    assert all(state.variants[n]["status"] == "done" for n in "abc")


@pytest.mark.parametrize("over, message", [
    ({"parallel": 0}, "parallel 0"),
    ({"parallel": 2, "isolate": "none"}, "isolate none"),
    ({"parallel": 2, "devices": ["gpu0"]}, "devices"),
    ({"parallel": 2, "devices": [-1]}, "devices"),
])
def test_bad_parallel_settings_are_refused(tmp_path, over, message):
    with pytest.raises(T2SError, match=message):
        _cfg(tmp_path, {"a": 0.1}, **over)


def test_devices_from_the_command_line_reach_the_runs(tmp_path, monkeypatch):
    """--devices 0,1 goes through the CLI's parsing and the sweep's own second check of the file."""
    from t2s_fast.cli import main

    cfg = _cfg(tmp_path, {"a": 0.1})
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"out_dir": cfg.out_dir, "max_cost_usd": 10.0, "train": cfg.train,
                                "variants": cfg.variants, "heldout": cfg.heldout, "isolate": "process"}))
    seen = {}
    monkeypatch.setattr("t2s_fast.sweep.runner.sweep", lambda c: seen.setdefault("cfg", c.validate()) and {})
    main(["sweep", "--config", str(path), "--parallel", "2", "--devices", "0,1"])
    assert seen["cfg"].devices == ["0", "1"] and seen["cfg"].parallel == 2
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--config", str(path), "--parallel", "2", "--devices", "0,x"])
    assert exc.value.code == 2


def test_a_failing_start_stops_the_runs_already_training(tmp_path):
    """Should starting the next run fail, the runs already training are stopped, never left behind the sweep."""
    import os
    import time

    from t2s_fast.sweep.parallel import run_pool
    from t2s_fast.sweep.plan import train_config

    cfg = _cfg(tmp_path, {"a": 30.0, "b": 0.1}, parallel=2)
    pid_file = Path(cfg.out_dir) / "runs" / "a" / "pid"

    def start(v, running, waiting):
        if v.name == "b":
            for _ in range(300):  # a's run is training (its process wrote its pid)
                if pid_file.is_file():
                    break
                time.sleep(0.1)
            raise RuntimeError("cannot start b")
        return fake_train, train_config(cfg, v, budget=1.0, resume=False)

    with pytest.raises(RuntimeError, match="cannot start b"):
        run_pool(expand_variants(cfg), slots=2, start=start, finish=lambda v, outcome: True)
    with pytest.raises(ProcessLookupError):  # a's process was stopped and reaped
        os.kill(int(pid_file.read_text()), 0)
    assert not (Path(cfg.out_dir) / "runs" / "a" / "fake.json").exists()


# --- sweep_rule ---
# variant -> (held-out EX, final eval loss): the top EX (a) has the worst eval loss
RESULTS = {"a": (0.8, 0.9), "b": (0.6, 0.5), "c": (0.7, 0.6)}


class FakeRuns:
    """Stands in for sweep.isolate.call (TrainConfig -> a finished run folder) and harness.evaluate (-> a report)."""

    def __init__(self):
        self.stop_at_final = False
        self.engines: set[int] = set()
        self.trained: list[str] = []
        self.evaluated: list[tuple[str, list[str]]] = []  # (suite, adapter names)

    def __call__(self, fn, cfg, *, isolate):
        from t2s_fast.train.config import TrainConfig

        return self.train(cfg) if isinstance(cfg, TrainConfig) else fn(cfg)  # the sweep's evaluation, here

    def harness_evaluate(self, ecfg, generator=None):
        assert generator is not None  # every run of the sweep's evaluation shares one engine
        self.engines.add(id(generator))
        return self.evaluate(ecfg)

    def train(self, tc) -> dict:
        out, name = Path(tc.output_dir), Path(tc.output_dir).name
        self.trained.append(name)
        (out / "adapter").mkdir(parents=True)
        (out / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
        (out / "adapter" / "adapter_model.safetensors").write_bytes(name.encode())
        cost, loss = 0.01 * len(self.trained), RESULTS[name][1]
        (out / "train_log.jsonl").write_text(json.dumps({"step": 2, "loss": 1.0, "cost_usd": cost}) + "\n"
                                             + json.dumps({"step": 2, "eval_loss": loss}) + "\n")
        info = {"stop_reason": "completed", "cost_usd": cost, "global_step": 2, "adapter_dir": str(out / "adapter"),
                "finished_at": "now", "config": tc.to_dict()}
        (out / "run.json").write_text(json.dumps(info))
        return info

    def evaluate(self, ecfg) -> dict:
        from t2s_fast.sweep.isolate import Interrupted

        self.evaluated.append((ecfg.suite, list(ecfg.adapters)))
        if ecfg.suite == "spider1" and self.stop_at_final:
            raise Interrupted("the lease ended")
        adapters = {n: {"ex": RESULTS[n.split("@")[0]][0], "correct": 0, "n": 10, "path": p}
                    for n, p in ecfg.adapters.items()}
        report = {"settings": {"suite": ecfg.suite, "split": ecfg.split, "source": str(ecfg.questions or "dev.json")},
                  "adapters": adapters}
        Path(ecfg.out_dir).mkdir(parents=True, exist_ok=True)
        (Path(ecfg.out_dir) / "report.json").write_text(json.dumps(report))  # as `evaluate` writes it
        return report


@pytest.fixture
def fake(monkeypatch) -> FakeRuns:
    runs = FakeRuns()
    monkeypatch.setattr("t2s_fast.sweep.runner.call", runs)
    monkeypatch.setattr("t2s_fast.evaluate.harness.evaluate", runs.harness_evaluate)
    return runs


def _rule_config(tmp_path: Path, **over) -> Path:
    (tmp_path / "train.jsonl").write_text('{"messages": []}\n')
    (tmp_path / "heldout.jsonl").write_text(json.dumps({"db_id": "farm", "question": "q", "sql": "SELECT 1"}) + "\n")
    (tmp_path / "spider").mkdir(exist_ok=True)
    cfg = {"out_dir": str(tmp_path / "sweep"), "max_cost_usd": 10.0, "isolate": "none",
           "train": {"model_name": "m", "train_file": str(tmp_path / "train.jsonl"),
                     "eval_file": str(tmp_path / "train.jsonl")},
           "variants": [{"name": n} for n in RESULTS],
           "heldout": {"questions": str(tmp_path / "heldout.jsonl")},
           "final": {"spider_dir": str(tmp_path / "spider")}, **over}
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(cfg))
    return path


def _run(path: Path, *flags: str) -> dict:
    main(["sweep", "--config", str(path), *flags])
    return json.loads((path.parent / "sweep" / "sweep.json").read_text())


def test_top_ex_over_the_cap_is_not_chosen_and_the_report_says_why(tmp_path, fake):
    summary = _run(_rule_config(tmp_path), "--max-eval-loss", "0.65")  # the flag: a number given as text
    assert summary["chosen"]["name"] == "c@final"  # a has the top EX (80%) but eval loss 0.9 > 0.65
    assert summary["max_eval_loss"] == 0.65 and summary["max_eval_loss_from"] is None
    assert "eval loss is at most 0.6500" in summary["rule"]
    assert {c["name"]: c["eligible"] for c in summary["candidates"]} == {"a@final": False, "b@final": True,
                                                                        "c@final": True}
    # the final report is the eligible choice's, beside the baseline (the first variant) to compare them
    assert fake.evaluated[-1] == ("spider1", ["c@final", "a@final"])
    md = (tmp_path / "sweep" / "sweep.md").read_text()
    assert "eval loss is at most 0.6500" in md and "0.9000 (over the cap: not eligible)" in md
    assert "Not eligible (eval loss over the cap 0.6500)" in md and "a@final (EX 80.0%, eval loss 0.9000)" in md
    state = json.loads((tmp_path / "sweep" / "sweep_state.json").read_text())
    assert state["rule"]["max_eval_loss"] == 0.65 and state["chosen"]["name"] == "c@final"


def test_a_variant_name_as_cap_is_that_variants_final_eval_loss(tmp_path, fake):
    summary = _run(_rule_config(tmp_path, max_eval_loss="b"))
    assert summary["max_eval_loss"] == RESULTS["b"][1] and summary["max_eval_loss_from"] == "b"
    assert summary["chosen"]["name"] == "b@final"  # b itself is eligible (equal), a and c are over
    assert "variant b's final eval loss" in summary["rule"]


def test_no_eligible_candidate_chooses_nothing_and_names_the_cap(tmp_path, fake):
    from t2s_fast.sweep.config import load_sweep_config
    from t2s_fast.sweep.runner import sweep

    with pytest.raises(T2SError, match=r"no candidate is eligible under max_eval_loss 0\.1000: the lowest eval "
                                       r"loss seen is 0\.5000; nothing is chosen"):
        sweep(load_sweep_config(_rule_config(tmp_path, max_eval_loss=0.1)))
    assert all(suite != "spider1" for suite, _ in fake.evaluated)  # nothing ran on Spider dev
    state = json.loads((tmp_path / "sweep" / "sweep_state.json").read_text())
    assert state["chosen"] is None and state["final"] == {}
    assert "Nothing chosen" in (tmp_path / "sweep" / "sweep.md").read_text()


def test_unknown_variant_or_bad_number_as_cap_is_refused_before_training(tmp_path, fake, capsys):
    for cap, needle in (("runbook", "'runbook' is neither a number nor a variant of this file (variants: a, b, c)"),
                        (-1, "max_eval_loss -1: give a positive number"), (True, "max_eval_loss True")):
        path = _rule_config(tmp_path, max_eval_loss=cap)
        with pytest.raises(SystemExit) as exc:
            main(["sweep", "--config", str(path)])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and str(path) in err and needle in err, err
    assert fake.trained == [] and not (tmp_path / "sweep" / "runs").exists()
    with pytest.raises(SystemExit) as exc:  # the dry run checks it too
        main(["sweep", "--config", str(_rule_config(tmp_path, max_eval_loss="runbook")), "--dry-run"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_rerun_with_a_new_cap_chooses_again_without_retraining(tmp_path, fake):
    path = _rule_config(tmp_path)
    assert _run(path)["chosen"]["name"] == "a@final"  # no cap: the top EX
    assert sorted(fake.trained) == ["a", "b", "c"] and fake.evaluated[-1] == ("spider1", ["a@final"])
    summary = _run(path, "--max-eval-loss", "c")
    assert sorted(fake.trained) == ["a", "b", "c"]  # nothing retrained
    assert summary["chosen"]["name"] == "c@final" and summary["max_eval_loss"] == RESULTS["c"][1]
    # the new choice's alone: the baseline is the variant max_eval_loss names, c itself
    assert fake.evaluated[-1] == ("spider1", ["c@final"])
    assert len(fake.engines) == 2  # one engine per run of the sweep: held-out and final share it
    state = json.loads((tmp_path / "sweep" / "sweep_state.json").read_text())
    assert state["chosen"]["name"] == "c@final" and state["rule"]["max_eval_loss_from"] == "c"
    assert _run(path)["chosen"]["name"] == "a@final"  # and back without the cap


def test_report_only_chooses_from_the_finished_heldout_evaluation_and_runs_nothing(tmp_path, fake, capsys):
    path = _rule_config(tmp_path)
    with pytest.raises(SystemExit) as exc:  # --report-only before any held-out evaluation: nothing to choose from
        main(["sweep", "--config", str(path), "--report-only"])
    assert exc.value.code == 2 and "no finished held-out evaluation" in capsys.readouterr().err
    fake.stop_at_final = True  # the GPU lease ends while the chosen adapter runs on Spider dev
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--config", str(path)])
    assert exc.value.code == 143
    done = (list(fake.trained), list(fake.evaluated))
    summary = _run(path, "--report-only", "--max-eval-loss", "c")
    assert (fake.trained, fake.evaluated) == done  # nothing trained or evaluated again
    assert summary["chosen"]["name"] == "c@final" and summary["final"] == {}
    assert [r["heldout_ex"] for r in summary["rows"]] == [RESULTS[n][0] for n in RESULTS]
    md = (tmp_path / "sweep" / "sweep.md").read_text()
    assert "**Chosen: c@final**" in md and "Spider dev: not run yet" in md
    assert (tmp_path / "sweep" / "ex_vs_cost.png").stat().st_size > 0
    assert "ex_and_loss_vs_step.png" in md and (tmp_path / "sweep" / "ex_and_loss_vs_step.png").stat().st_size > 0
    fake.stop_at_final = False  # the same command without --report-only runs only the final report
    assert _run(path, "--max-eval-loss", "c")["final"]["greedy"]["ex"] == RESULTS["c"][0]
    assert fake.trained == done[0] and fake.evaluated[-1] == ("spider1", ["c@final"])  # c is its own baseline


def test_an_engine_setting_in_final_is_refused_before_training(tmp_path, fake, capsys):
    """The final report runs through the held-out engine: a final-only engine setting would be ignored."""
    path = _rule_config(tmp_path, final={"spider_dir": str(tmp_path / "spider"), "gpu_memory_utilization": 0.5})
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--config", str(path)])
    assert exc.value.code == 2 and "final.gpu_memory_utilization is an engine setting" in capsys.readouterr().err
    assert fake.trained == []


# --- recipe_config ---
REPO = Path(__file__).parents[1]
SWEEPS = REPO / "records/reports/2026-11-29-h200-sweeps-qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def recipe_config():
    spec = importlib.util.spec_from_file_location("recipe_config", REPO / "records/drivers/recipe_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.records
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


@pytest.mark.records
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
