"""Multi-GPU evaluation, on a CPU: the HF backend sharded over two gloo processes (torchrun) merges into the
same predictions.jsonl as one process, with no duplicate and no loss, and resumes from partial shards; the
vLLM backend passes --tensor-parallel-size to the engine and runs --data-parallel-size engines in pinned
processes (fake vllm)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _eval_args(model, spider1_dir, out):
    # batch size 1: no padding, so a question's greedy answer cannot depend on which rank got it; repair none:
    # the greedy pass is what is sharded (a repair pass runs on rank 0 alone)
    return ["eval", "--backend", "hf", "--base-model", str(model), "--spider-dir", str(spider1_dir),
            "--db", "concert_singer", "--limit", "6", "--max-new-tokens", "6", "--batch-size", "1",
            "--sample-values", "0", "--include-base", "--repair", "none", "--out-dir", str(out)]


def _run(cmd, log: Path, nproc: int = 1):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("WORLD_SIZE", None)
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               "-m", "t2s_fast", *cmd]
    else:
        cmd = [sys.executable, "-m", "t2s_fast", *cmd]
    with log.open("a") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=400)
    assert proc.returncode == 0, log.read_text()[-4000:]


def _preds(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_sharded_hf_eval_merges_like_one_process_and_resumes(tmp_path, tiny_qwen3_dir, spider1_dir):
    one, two, resumed = tmp_path / "one", tmp_path / "two", tmp_path / "resumed"
    _run(_eval_args(tiny_qwen3_dir, spider1_dir, one), tmp_path / "one.log")
    _run(_eval_args(tiny_qwen3_dir, spider1_dir, two), tmp_path / "two.log", nproc=2)
    p1, p2 = _preds(one), _preds(two)
    keys = [p["key"] for p in p2]
    assert len(keys) == len(set(keys)) == 6  # no duplicate, no loss
    assert {p["key"]: p["raw"] for p in p2} == {p["key"]: p["raw"] for p in p1}
    assert not list(two.glob("*.rank*.jsonl"))  # shards folded in and removed
    assert json.loads((two / "report.json").read_text())["adapters"].keys() == \
        json.loads((one / "report.json").read_text())["adapters"].keys()
    # two processes each generated some of the requests
    assert sorted({t["rank"] for t in map(json.loads, (two / "timings.jsonl").read_text().splitlines())}) == [0, 1]

    # cut off mid-way: one prediction merged, two left in rank 1's shard, the rest missing
    resumed.mkdir()
    shutil.copy(two / "run_settings.json", resumed / "run_settings.json")
    (resumed / "predictions.jsonl").write_text(json.dumps(p2[0]) + "\n")
    (resumed / "predictions.rank1.jsonl").write_text("".join(json.dumps(p) + "\n" for p in p2[1:3]))
    _run(_eval_args(tiny_qwen3_dir, spider1_dir, resumed), tmp_path / "resumed.log", nproc=2)
    p3 = _preds(resumed)
    assert sorted(p["key"] for p in p3) == sorted(keys)
    assert {p["key"]: p["raw"] for p in p3} == {p["key"]: p["raw"] for p in p2}
    assert not list(resumed.glob("*.rank*.jsonl"))
    report = json.loads((resumed / "report.json").read_text())
    assert report["timing"]["this_session"]["resumed"] == 3




@pytest.mark.slow
def test_vllm_tensor_parallel_size_reaches_the_engine(fake_vllm, qwen3_tokenizer_dir):
    from t2s_fast.generate.engines import make_generator

    make_generator("vllm", base_model="some/model", adapters={}, tokenizer_dir=str(qwen3_tokenizer_dir),
                   tensor_parallel_size=2)
    assert fake_vllm.CALLS["engines"][-1]["tensor_parallel_size"] == 2


@pytest.mark.slow
def test_vllm_data_parallel_engines_are_pinned_and_answer_in_order(fake_vllm, qwen3_tokenizer_dir, monkeypatch):
    from t2s_fast.errors import T2SError
    from t2s_fast.generate.base import GenRequest, GenSettings
    from t2s_fast.generate.engines import make_generator

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    gen = make_generator("vllm", base_model="some/model", adapters={}, tokenizer_dir=str(qwen3_tokenizer_dir),
                         tensor_parallel_size=2, data_parallel_size=2)
    try:
        assert [e["cuda_visible_devices"] for e in gen.engines] == ["4,5", "6,7"]
        assert len({e["pid"] for e in gen.engines}) == 2
        reqs = [GenRequest(key=f"__base__|q{i}|0", adapter="__base__", prompt=f"p{i}") for i in range(5)]
        out = gen.generate(reqs, GenSettings(max_new_tokens=8))
        assert [r.key for r in out] == [r.key for r in reqs]
    finally:
        gen.close()
    with pytest.raises(T2SError, match="needs 8 GPUs; 4 visible"):
        make_generator("vllm", base_model="m", adapters={}, tokenizer_dir=str(qwen3_tokenizer_dir),
                       tensor_parallel_size=4, data_parallel_size=2)
