"""Data-parallel training on a CPU: two gloo processes under torchrun against one process with the same
global batch (the tiny Qwen3, real tokenizer). Same examples in every optimizer step, so the loss trajectory
must match; rank 0 alone writes the run folder; a distributed run resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

STEPS = 4


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, spider1_dir) -> Path:
    from t2s_fast.prompt import build_messages
    from t2s_fast.schema import read_sqlite_schema, render_schema

    rows = json.loads((spider1_dir / "dev.json").read_text())
    db = "concert_singer"
    schema = render_schema(read_sqlite_schema(spider1_dir / "database" / db / f"{db}.sqlite", db_id=db,
                                              sample_values=0), sample_values=False)
    out = [{"id": f"{db}-{i}", "source": "spider1", "db_id": db, "dialect": "sqlite", "question": r["question"],
            "sql": r["query"], "messages": build_messages(dialect="sqlite", db_id=db, schema=schema,
                                                          question=r["question"], sql=r["query"])}
           for i, r in enumerate([r for r in rows if r["db_id"] == db][:16])]
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in out))
    return path


def _args(model, data, out, *extra):
    # micro-batch 1 everywhere: no padding, so one process and two see bit-for-bit the same sequences
    return ["train", "--model-name", str(model), "--train-file", str(data), "--output-dir", str(out),
            "--backend", "hf", "--max-steps", str(STEPS), "--save-steps", "2", "--max-seq-length", "1024",
            "--per-device-train-batch-size", "1", "--global-batch-size", "4", "--learning-rate", "1e-2",
            "--warmup-ratio", "0", "--lr-scheduler-type", "constant", "--no-packing", "--no-auto-setup", *extra]


def _run(cmd, log: Path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("WORLD_SIZE", None)
    with log.open("a") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=400)
    assert proc.returncode == 0, log.read_text()[-4000:]


def _torchrun(nproc: int, args, log: Path):
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
          "-m", "t2s_fast", *args], log)


def _steps(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_qwen3_dir, prepared):
    root = tmp_path_factory.mktemp("ddp")
    single, ddp = root / "single", root / "ddp"
    _run([sys.executable, "-m", "t2s_fast", *_args(tiny_qwen3_dir, prepared, single)], root / "single.log")
    _torchrun(2, _args(tiny_qwen3_dir, prepared, ddp), root / "ddp.log")
    return single, ddp, root


def test_two_processes_follow_the_one_process_loss_trajectory(runs):
    single, ddp, _ = runs
    one, two = _steps(single), _steps(ddp)
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, STEPS + 1))
    # the same 4 examples form each optimizer step: same trained tokens, same losses
    assert [r["trained_tokens"] for r in one] == [r["trained_tokens"] for r in two]
    assert [r["loss_tokens"] for r in one] == [r["loss_tokens"] for r in two]
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=2e-3, abs=2e-3), (one, two)
    # and the model really trained (a wrong gradient scale would part the trajectories)
    assert one[-1]["loss"] < one[0]["loss"]
    info1, info2 = (json.loads((d / "run.json").read_text()) for d in (single, ddp))
    assert (info1["world_size"], info1["sft"]["gradient_accumulation_steps"], info1["global_batch"]) == (1, 4, 4)
    assert (info2["world_size"], info2["sft"]["gradient_accumulation_steps"], info2["global_batch"]) == (2, 2, 4)
    assert info2["tokens_trained"] == info1["tokens_trained"] == sum(r["trained_tokens"] for r in one)


def test_rank_zero_alone_writes_the_run_folder(runs):
    _, ddp, root = runs
    lines = (ddp / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == STEPS  # one line per step, not one per rank
    assert sorted(p.name for p in ddp.iterdir()) == ["adapter", "checkpoints", "loss.png", "run.json",
                                                     "train_log.jsonl"]
    ckpt = ddp / "checkpoints" / "checkpoint-2"
    # HF Trainer keeps each rank's RNG state for an exact resume; rank 0 marks the checkpoint complete
    assert (ckpt / "rng_state_0.pth").is_file() and (ckpt / "rng_state_1.pth").is_file()
    assert (ckpt / "t2s_checkpoint_complete").is_file()
    log = (root / "ddp.log").read_text()
    assert log.count("global batch = 1 per device x 2 accumulation x 2 process(es) = 4") == 1


def test_distributed_run_resumes_from_its_checkpoint(runs, tiny_qwen3_dir, prepared):
    _, ddp, root = runs
    resumed = root / "resumed"
    shutil.copytree(ddp, resumed)
    shutil.rmtree(resumed / "checkpoints" / f"checkpoint-{STEPS}")  # as if killed after checkpoint 2
    _torchrun(2, [*_args(tiny_qwen3_dir, prepared, resumed), "--resume"], root / "resume.log")
    info = json.loads((resumed / "run.json").read_text())
    assert info["resumed_from"].endswith("checkpoint-2") and info["global_step"] == STEPS
    first, again = _steps(ddp), _steps(resumed)
    assert [r["step"] for r in again] == list(range(1, STEPS + 1))
    for a, b in zip(first[2:], again[2:]):  # steps 3-4 redone from the checkpoint: the same losses
        assert b["loss"] == pytest.approx(a["loss"], rel=2e-3, abs=2e-3)
