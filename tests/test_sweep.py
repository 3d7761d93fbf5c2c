"""`t2s-fast sweep` and `eval --checkpoints` on a CPU with a tiny Qwen3 (HF backends): a sweep stopped while
its second variant trains resumes without retraining the first, the second continuing from its checkpoint
with only what is left of the cap; a cap spent by the first variant records the second as skipped; every
adapter of a run is evaluated in one evaluation and the best is named; choosing on Spider dev is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from t2s_fast.cli import main
from t2s_fast.errors import T2SError

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
