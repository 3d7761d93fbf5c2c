"""`t2s-fast sweep` with max_eval_loss (issue 14, stage 2 without forgetting): the best held-out EX among the
candidates whose eval loss is at most a cap, a number or a variant's final eval loss. Training and evaluation
are replaced by fakes that write what `train` writes (run.json, train_log.jsonl with the eval loss, adapter/)
and return what `evaluate` returns, with known EX and eval losses, so the choice itself is what is tested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from t2s_fast.cli import main
from t2s_fast.errors import T2SError

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


def _config(tmp_path: Path, **over) -> Path:
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
    summary = _run(_config(tmp_path), "--max-eval-loss", "0.65")  # the flag: a number given as text
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
    summary = _run(_config(tmp_path, max_eval_loss="b"))
    assert summary["max_eval_loss"] == RESULTS["b"][1] and summary["max_eval_loss_from"] == "b"
    assert summary["chosen"]["name"] == "b@final"  # b itself is eligible (equal), a and c are over
    assert "variant b's final eval loss" in summary["rule"]


def test_no_eligible_candidate_chooses_nothing_and_names_the_cap(tmp_path, fake):
    from t2s_fast.sweep.config import load_sweep_config
    from t2s_fast.sweep.runner import sweep

    with pytest.raises(T2SError, match=r"no candidate is eligible under max_eval_loss 0\.1000: the lowest eval "
                                       r"loss seen is 0\.5000; nothing is chosen"):
        sweep(load_sweep_config(_config(tmp_path, max_eval_loss=0.1)))
    assert all(suite != "spider1" for suite, _ in fake.evaluated)  # nothing ran on Spider dev
    state = json.loads((tmp_path / "sweep" / "sweep_state.json").read_text())
    assert state["chosen"] is None and state["final"] == {}
    assert "Nothing chosen" in (tmp_path / "sweep" / "sweep.md").read_text()


def test_unknown_variant_or_bad_number_as_cap_is_refused_before_training(tmp_path, fake, capsys):
    for cap, needle in (("runbook", "'runbook' is neither a number nor a variant of this file (variants: a, b, c)"),
                        (-1, "max_eval_loss -1: give a positive number"), (True, "max_eval_loss True")):
        path = _config(tmp_path, max_eval_loss=cap)
        with pytest.raises(SystemExit) as exc:
            main(["sweep", "--config", str(path)])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and str(path) in err and needle in err, err
    assert fake.trained == [] and not (tmp_path / "sweep" / "runs").exists()
    with pytest.raises(SystemExit) as exc:  # the dry run checks it too
        main(["sweep", "--config", str(_config(tmp_path, max_eval_loss="runbook")), "--dry-run"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_rerun_with_a_new_cap_chooses_again_without_retraining(tmp_path, fake):
    path = _config(tmp_path)
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
    path = _config(tmp_path)
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
    path = _config(tmp_path, final={"spider_dir": str(tmp_path / "spider"), "gpu_memory_utilization": 0.5})
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--config", str(path)])
    assert exc.value.code == 2 and "final.gpu_memory_utilization is an engine setting" in capsys.readouterr().err
    assert fake.trained == []
