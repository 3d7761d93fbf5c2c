"""`parallel` in a sweep file: variants train side by side, each in its own process, under one dollar cap.
The training function is a stand-in (sweep_helpers/fake_train.py: a sleep and a run.json), so what is checked
is the sweep's own work: runs overlap, each sees its own GPU, each budget is its share of what is left, a
SIGTERM stops every running run and starts no new one, and the re-run resumes the stopped runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sweep_helpers.fake_train import COST, SIGNAL_SEED, fake_train

from t2s_fast.errors import T2SError
from t2s_fast.sweep.config import SweepConfig, expand_variants
from t2s_fast.sweep.report import build_summary, render_markdown
from t2s_fast.sweep.runner import SweepState, train_all


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
