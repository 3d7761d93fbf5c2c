"""The multi-GPU report (t2s_fast.benchmarks.scaling) from a work folder, and bench/multi_gpu_scaling.sh's CPU
smoke mode end to end (2 gloo processes standing in for 2 GPUs, tests/fake_vllm for the engines)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from t2s_fast.benchmarks.scaling import build

REPO = Path(__file__).parents[1]


def _run(folder: Path, tok_s: float, losses: list[float], world: int, global_batch: int = 32):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({
        "world_size": world, "global_batch": global_batch, "global_step": len(losses), "trained_tokens_per_s": tok_s,
        "peak_gpu_memory_allocated_gib": 30.5, "stop_reason": "completed", "backend": "unsloth"}))
    lines = [{"step": i + 1, "loss": v} for i, v in enumerate(losses)] + [{"step": len(losses), "eval_loss": 0.1}]
    (folder / "train_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _scored(folder: Path, verdicts: dict, wall: float):
    folder.mkdir(parents=True)
    (folder / "scored.jsonl").write_text("".join(json.dumps({"adapter": "a", "qid": q, "exec_match": v}) + "\n"
                                                 for q, v in verdicts.items()))
    (folder / "wall_s.txt").write_text(f"{wall}\n")


def test_report_gives_efficiency_loss_agreement_resume_and_differing_verdicts(tmp_path):
    work = tmp_path / "work"
    _run(work / "train/qwen3-8b/gpus-1", 15000.0, [2.0, 1.5, 1.2, 1.1], 1)
    _run(work / "train/qwen3-8b/gpus-2", 27000.0, [2.0, 1.52, 1.18, 1.1], 2)
    _run(work / "train/qwen2.5-coder-0.5b/gpus-1", 70000.0, [1.0, 0.8], 1)
    (work / "resume").mkdir(parents=True)
    (work / "resume/run.json").write_text(json.dumps({"stop_reason": "completed", "global_step": 50, "world_size": 2,
                                                      "cost_usd": 0.5, "elapsed_s_total": 300.0}))
    (work / "resume/resume.log").write_text("== killed run: exit code 1, last step 25\nnoise\n== done\n")
    _scored(work / "eval/dp-1", {"q1": True, "q2": False, "q3": True}, 100.0)
    _scored(work / "eval/dp-2", {"q1": True, "q2": True, "q3": True}, 60.0)
    (work / "device.txt").write_text("NVIDIA H200, 143771 MiB\nNVIDIA H200, 143771 MiB\n")

    report = build(work, tmp_path / "report")

    big = next(m for m in report["training"] if m["label"] == "qwen3-8b")
    two = next(r for r in big["runs"] if r["gpus"] == 2)
    assert (two["speedup"], two["efficiency"]) == (1.8, 0.9)
    assert two["loss_vs_one_gpu"]["common_steps"] == 4 and two["loss_vs_one_gpu"]["max_abs_diff"] == 0.02
    assert report["resume"]["log_marks"] == ["== killed run: exit code 1, last step 25", "== done"]
    dp2 = report["eval"]["sizes"][1]
    assert dp2["same_verdicts"] is False and dp2["differing"] == ["a/q2"] and dp2["speedup"] == round(100 / 60, 3)
    text = (tmp_path / "report/README.md").read_text()
    assert "| 2 | 32 | 4 | 27,000 | 1.80× | 90% |" in text and "no: 1 differ" in text
    assert "NVIDIA H200" in text and (tmp_path / "report/loss_curves.png").stat().st_size > 0
    assert json.loads((tmp_path / "report/scaling.json").read_text()) == json.loads(json.dumps(report))


def test_missing_parts_are_reported_as_not_run(tmp_path):
    report = build(tmp_path, tmp_path / "report")
    assert report == {"device": None, "training": [], "resume": None, "eval": None}
    assert (tmp_path / "report/README.md").read_text().count("Not run.") == 3


@pytest.mark.slow
def test_driver_smoke_mode_runs_every_phase_on_the_cpu(tmp_path, spider1_dir, qwen3_tokenizer_dir):
    from t2s_fast.paths import QWEN3_8B_CONFIG
    from t2s_fast.prompt import build_messages
    from t2s_fast.schema import read_sqlite_schema, render_schema

    if not QWEN3_8B_CONFIG.exists() or shutil.which("bash") is None:
        pytest.skip("needs ../shared/assets and bash")
    db = "concert_singer"
    schema = render_schema(read_sqlite_schema(spider1_dir / "database" / db / f"{db}.sqlite", db_id=db,
                                              sample_values=0), sample_values=False)
    rows = [r for r in json.loads((spider1_dir / "dev.json").read_text()) if r["db_id"] == db][:16]
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "stage1_train.jsonl").write_text("".join(json.dumps({
        "id": f"{db}-{i}", "source": "spider1", "db_id": db, "dialect": "sqlite", "question": r["question"],
        "sql": r["query"], "messages": build_messages(dialect="sqlite", db_id=db, schema=schema,
                                                      question=r["question"], sql=r["query"])}) + "\n"
        for i, r in enumerate(rows)))
    env = {**os.environ, "T2S_SMOKE": "1", "PYTHON": sys.executable, "SPIDER_DIR": str(spider1_dir)}
    env.pop("WORLD_SIZE", None)
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(REPO / "bench/multi_gpu_scaling.sh"), "tiny", str(prepared), str(out)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report/scaling.json").read_text())
    runs = report["training"][0]["runs"]
    assert [r["gpus"] for r in runs] == [1, 2] and all(r["stop_reason"] == "completed" for r in runs)
    assert runs[1]["world_size"] == 2 and runs[1]["loss_vs_one_gpu"]["common_steps"] == 3
    assert report["resume"]["stop_reason"] == "completed" and report["resume"]["world_size"] == 2
    assert [s["data_parallel_size"] for s in report["eval"]["sizes"]] == [1, 2]
    assert report["eval"]["sizes"][1]["same_verdicts"]
