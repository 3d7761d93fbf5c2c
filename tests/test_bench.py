"""Benchmarks (t2s_fast/benchmarks/ and bench/).

- Benchmark code on the CPU: FLOP counting, MFU, the result schema, the cost projection, the max-context
  search, the step-profile bucketing, and a tiny-model `bench train --backends hf` end to end.
- The multi-GPU report (t2s_fast.benchmarks.scaling) from a work folder, and bench/multi_gpu_scaling.sh's CPU
  smoke mode end to end (2 gloo processes standing in for 2 GPUs, tests/fake_vllm for the engines)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from t2s_fast.benchmarks import cost, results
from t2s_fast.benchmarks.max_context import search_max_context
from t2s_fast.benchmarks.profile_step import classify_kernel, summarize_events, union_length
from t2s_fast.benchmarks.scaling import build
from t2s_fast.benchmarks.train_bench import measure_log, parse_variants
from t2s_fast.errors import T2SError
from t2s_fast.jsonl import read_jsonl
from t2s_fast.train import flops

# --- bench ---
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 1000, "tie_word_embeddings": True}


def test_flops_match_a_hand_count_of_a_tiny_config():
    shape = flops.shape_from_config(TINY)
    # per layer: q 64x64, k 64x32, v 64x32, o 64x64, gate/up/down 3 x 64x128
    per_layer = 64 * 64 + 64 * 32 + 64 * 32 + 64 * 64 + 3 * 64 * 128
    assert per_layer == 36864
    n = 2 * per_layer + 1000 * 64  # tied: one embedding matrix (it is also the lm_head)
    assert shape.n_params == n
    assert flops.matmul_flops_per_token(shape) == 4 * n
    assert flops.matmul_flops_per_token(shape, full_finetune=True) == 6 * n
    # two examples of 3 and 1 tokens: keys attended 1+2+3 and 1 -> mean 7/4
    assert flops.mean_attended_context([3, 1]) == pytest.approx(7 / 4)
    assert flops.attention_flops_per_token(shape, 7 / 4) == pytest.approx(12 * 2 * 64 * 7 / 4)
    untied = flops.shape_from_config({**TINY, "tie_word_embeddings": False})
    assert untied.n_params == n + 1000 * 64


def test_qwen3_8b_mfu_matches_the_notes():
    shape = flops.shape_from_config({"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
                                     "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                                     "vocab_size": 151936, "tie_word_embeddings": False})
    fpt = flops.matmul_flops_per_token(shape)
    # the notes: 11,779 tok/s is about 49% MFU at 4N on a 785 TFLOP/s peak; 15,000 tok/s about 62%
    assert flops.mfu(11779, fpt, 785e12) == pytest.approx(0.49, abs=0.01)
    assert flops.mfu(15000, fpt, 785e12) == pytest.approx(0.62, abs=0.01)
    assert flops.tokens_per_s_at_mfu(1.0, fpt, 785e12) == pytest.approx(24000, rel=0.01)
    assert flops.mfu(100.0, fpt, None) is None


def test_peak_measurement_runs_on_cpu():
    from t2s_fast.benchmarks.peak import measure_matmul_peak

    r = measure_matmul_peak(n=128, iters=2, warmup=1, dtype="float32", device="cpu")
    assert r["peak_flops_per_s"] > 0 and r["n"] == 128 and r["iters"] == 2


def _result(**over):
    r = results.make_result("train", settings={"x": 1}, rows=[{
        "label": "hf", "backend": "hf", "status": "ok", "trained_tokens_per_s": 1.0, "optimizer_steps_per_s": 1.0,
        "mfu_4n": None, "peak_memory_allocated_gib": None, "peak_memory_reserved_gib": None}],
        command="t2s-fast bench train --backends hf", device={"kind": "cuda", "name": "NVIDIA H200", "count": 1})
    r.update(over)
    return r


def test_result_schema_and_file_name(tmp_path):
    r = _result()
    for key in results.REQUIRED_KEYS:
        assert key in r
    assert r["versions"]["transformers"] and r["command"].startswith("t2s-fast bench train")
    p1 = results.write_result(r, tmp_path, tag="packed")
    p2 = results.write_result(r, tmp_path, tag="packed")
    assert p1.name == f"{r['date'][:10]}-h200-train-packed.json"
    assert p2 != p1 and p1.is_file()  # never overwrites an earlier run
    assert [res["what"] for _, res in results.load_results(tmp_path)] == ["train", "train"]


def test_result_schema_rejects_missing_keys(tmp_path):
    bad = _result()
    del bad["command"]
    with pytest.raises(T2SError, match="command"):
        results.validate_result(bad)
    bad_row = _result(rows=[{"label": "hf"}])
    with pytest.raises(T2SError, match=r"rows\[0\]"):
        results.write_result(bad_row, tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, slug", [("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3", "h100"),
                                        ("NVIDIA A100-SXM4-80GB", "a100"), ("NVIDIA GeForce RTX 4090", "rtx-4090")])
def test_device_slug(name, slug):
    assert results.device_slug({"kind": "cuda", "name": name, "count": 1}) == slug
    assert results.device_slug({"kind": "cpu"}) == "cpu"


def test_cost_projection():
    p = cost.project(10_000, 18_000_000, gpu_hourly_usd=3.44, epochs=2)
    assert p == {"tokens": 36_000_000, "epochs": 2, "hours": 1.0, "usd": 3.44}
    stages = {"stage1": cost.StageData("stage1", "a", 10, 18_000_000, []),
              "stage2": cost.StageData("stage2", "b", 5, 9_000_000, [])}
    both = cost.project_stages(10_000, stages, gpu_hourly_usd=3.44)
    assert both["total"] == {"hours": 1.5, "usd": 5.16}
    assert cost.project(None, 10, gpu_hourly_usd=1.0)["hours"] is None


def test_measure_log_drops_warmup_and_eval_lines():
    rows = [{"step": 1, "trained_tokens": 100, "step_time_s": 10.0, "loss": 3.0},
            {"step": 2, "trained_tokens": 200, "step_time_s": 1.0, "loss": 2.5},
            {"step": 2, "eval_loss": 2.0},
            {"step": 3, "trained_tokens": 400, "step_time_s": 1.0, "loss": 2.0}]
    m = measure_log(rows, warmup_steps=1)
    assert m["measured_steps"] == 2 and m["trained_tokens_per_s"] == 300.0 and m["optimizer_steps_per_s"] == 1.0
    assert m["losses"] == [3.0, 2.5, 2.0]
    assert measure_log(rows, warmup_steps=5)["trained_tokens_per_s"] is None


def test_variants_parse():
    vs = parse_variants("unsloth,base=hf", ["auto=unsloth --gradient-checkpointing off --attention sdpa-no-cudnn"])
    assert [(v.label, v.backend) for v in vs] == [("unsloth", "unsloth"), ("base", "hf"), ("auto", "unsloth")]
    assert vs[2].args == ["--gradient-checkpointing", "off", "--attention", "sdpa-no-cudnn"]
    with pytest.raises(T2SError):
        parse_variants("hf,hf")
    with pytest.raises(T2SError):
        parse_variants("", ["x=vllm"])


class FakeGPU:
    """A probe that 'fits' up to a threshold and counts its calls."""

    def __init__(self, max_fit):
        self.max_fit, self.calls = max_fit, []

    def __call__(self, n):
        self.calls.append(n)
        return n <= self.max_fit


@pytest.mark.parametrize("true_max", [5000, 9000, 20000, 4096, 31000])
def test_max_context_doubles_then_bisects(true_max):
    fake = FakeGPU(true_max)
    r = search_max_context(fake, start=4096, limit=40960, resolution=1024)
    assert r.max_fit is not None and r.max_fit <= true_max < r.max_fit + 1024 + 1024
    assert r.first_fail is not None and r.first_fail > true_max
    doubling = [n for n in fake.calls if n & (n - 1) == 0]
    assert doubling[:2] == [4096, 8192] or true_max < 8192
    assert len(fake.calls) <= 2 + 5 + 5  # log2(limit/start) doublings + log2(bracket/resolution) bisections


def test_max_context_reports_the_limit_when_everything_fits():
    fake = FakeGPU(10**9)
    r = search_max_context(fake, start=16384, limit=40960, resolution=4096)
    assert r.at_limit and r.max_fit == 40960 and fake.calls == [16384, 32768, 40960]


def test_max_context_searches_down_when_the_start_does_not_fit():
    r = search_max_context(FakeGPU(3000), start=16384, limit=40960, resolution=1024)
    assert r.max_fit is not None and r.max_fit <= 3000 < r.max_fit + 2048 and not r.at_limit


@pytest.mark.slow
def test_max_context_result_file(tmp_path, qwen3_tokenizer_dir):
    from t2s_fast.benchmarks.max_context import run_max_context, synthetic_example
    from t2s_fast.prompt import tokenize_for_training

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "qwen3", "max_position_embeddings": 40960}))
    seen = {}

    def factory(settings, tok):
        seen[settings.backend] = settings.gradient_checkpointing
        ex = synthetic_example(tok, 2000)  # the probe's example is just under the probed length
        n = len(tokenize_for_training(tok, ex["messages"])["input_ids"])
        assert 1900 < n <= 2000
        return FakeGPU({"unsloth": 30000, "hf": 12000}[settings.backend])

    r = run_max_context(model_name=str(cfg), tokenizer=str(qwen3_tokenizer_dir), backends="unsloth,hf",
                        start=16384, resolution=4096, out_dir=str(tmp_path / "out"), work_dir=str(tmp_path / "w"),
                        probe_factory=factory)
    assert seen == {"unsloth": "unsloth", "hf": "plain"}  # each backend's least-memory checkpointing
    by = {row["backend"]: row for row in r["rows"]}
    assert 28672 <= by["unsloth"]["max_seq_length"] <= 30000 and by["hf"]["max_seq_length"] <= 12000
    assert json.loads(open(r["path"]).read())["what"] == "max-context"


def test_profile_bucketing():
    assert classify_kernel("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64") == "matmul"
    assert classify_kernel("nvjet_hsh_256x128_64x4_1x2_h_bz_coopA_NNT") == "matmul"
    assert classify_kernel("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128>>") == "attention"
    assert classify_kernel("cudnn_generated_fort_native_sdpa_sm90_flash_fprop") == "attention"
    assert classify_kernel("Memcpy DtoD (Device -> Device)") == "copies"
    fill = "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>"
    assert classify_kernel(fill) == "copies"
    assert classify_kernel("void kDequantizeBlockwise<__nv_bfloat16, 512, 64, 8, 2>") == "quantization"
    assert classify_kernel("_rms_layernorm_forward") == "elementwise"
    assert classify_kernel("void at::native::reduce_kernel<512, 1>") == "elementwise"
    assert union_length([(0, 10), (5, 15), (20, 30)]) == 25
    s = summarize_events([("gemm_a", 0, 400_000), ("flash_fwd", 400_000, 500_000), ("Memset", 450_000, 460_000)],
                         step_time_s=1.0, cpu_ops=[("aten::_cudnn_attention_forward", 0.3, 36)])
    assert s["buckets_s"]["matmul"] == 0.4 and s["buckets_s"]["attention"] == 0.1
    assert s["gpu_busy_s"] == 0.5 and s["idle_s"] == 0.5 and s["attention_host_calls"] == 36
    # The profiler mirrors its step range onto the GPU timeline; counted as a kernel it made every step look
    # ~100% busy and put the whole step into "other" (the defect in the first H200 profiles).
    with_range = summarize_events([("ProfilerStep#3", 0, 1_000_000), ("gemm_a", 0, 400_000)], step_time_s=1.0)
    assert with_range["gpu_busy_s"] == 0.4 and with_range["idle_s"] == 0.6
    assert with_range["buckets_s"]["other"] == 0.0


def test_readme_corrects_profiles_recorded_with_the_step_range_counted():
    from t2s_fast.benchmarks.readme import corrected_profile_row

    row = {"label": "x", "step_time_s": 2.0, "gpu_busy_pct": 100.0, "idle_s": 0.0,
           "buckets_s": {"matmul": 1.0, "attention": 0.2, "quantization": 0.0, "elementwise": 0.2, "copies": 0.1,
                         "other": 2.05},
           "top_kernels": [{"name": "ProfilerStep*", "bucket": "other", "total_s": 2.0, "count": 1}]}
    fixed = corrected_profile_row(row)
    assert fixed["buckets_s"]["other"] == pytest.approx(0.05)
    assert fixed["gpu_busy_pct"] == pytest.approx(77.5) and fixed["idle_s"] == pytest.approx(0.45)
    assert fixed["corrected"] is True
    clean = dict(row, top_kernels=[], buckets_s=dict(row["buckets_s"], other=0.05), gpu_busy_pct=77.5, idle_s=0.45)
    assert corrected_profile_row(clean)["corrected"] is False


def write_prepared(path, n=24):
    from t2s_fast.prompt import build_messages

    with path.open("w") as fh:
        for i in range(n):
            cols = ", ".join(f"c{j} INTEGER" for j in range(3 + i % 7))
            schema = f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, {cols});"
            q, sql = f"How many rows does t{i} have?", f"SELECT count(*) FROM t{i}"
            msgs = build_messages(dialect="sqlite", db_id=f"db{i}", schema=schema, question=q, sql=sql)
            fh.write(json.dumps({"id": f"ex{i}", "source": "spider1", "db_id": f"db{i}", "dialect": "sqlite",
                                 "question": q, "sql": sql, "messages": msgs}) + "\n")
    return path


@pytest.mark.slow
def test_bench_train_tiny_model_hf(tiny_qwen3_dir, tmp_path):
    """`t2s-fast bench train --backends hf` end to end on the CPU: two rows (sdpa and eager attention) each in
    a fresh process on identical batches -> the same first loss; a valid result file with every figure."""
    from click.testing import CliRunner

    from t2s_fast.benchmarks.cli import bench_group

    data = write_prepared(tmp_path / "stage1_train.jsonl")
    write_prepared(tmp_path / "stage2_mixed_train.jsonl", n=6)
    out = tmp_path / "results"
    res = CliRunner().invoke(bench_group, [
        "train", "--model-name", str(tiny_qwen3_dir), "--data", str(data), "--backends", "hf",
        "--variant", "hf-eager=hf --attention eager", "--max-seq-length", "512",
        "--per-device-train-batch-size", "2", "--gradient-accumulation-steps", "1", "--steps", "2",
        "--warmup-steps", "1", "--out-dir", str(out), "--work-dir", str(tmp_path / "work"), "--tag", "tiny"],
        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    path = res.output.strip().splitlines()[-1]
    result = results.validate_result(json.loads(open(path).read()))
    assert path.endswith("-train-tiny.json") and result["device"]["kind"] == "cpu"
    rows = {r["label"]: r for r in result["rows"]}
    assert set(rows) == {"hf", "hf-eager"}
    for r in rows.values():
        assert r["status"] == "ok", r.get("error_tail")
        assert r["measured_steps"] == 2 and r["trained_tokens_per_s"] > 0 and r["optimizer_steps_per_s"] > 0
        assert r["setup"]["micro_batch_size"] == 2
        assert r["projected"]["stage1"]["hours"] > 0 and r["projected"]["stage2"]["tokens"] > 0
        assert r["mfu_4n"] is None  # no GPU, no measured peak: no MFU claimed
    assert rows["hf"]["automatic_setup"] is False  # batch flags given
    assert rows["hf"]["first_loss"] == pytest.approx(rows["hf-eager"]["first_loss"], abs=1e-4)
    # (later losses are not compared: the HF backend does not seed its LoRA A init yet, see the bench report)
    assert result["ratios"][0]["label"] == "hf-eager" and result["ratios"][0]["tokens_per_s_ratio"] > 0
    assert result["stages"]["stage1"]["examples"] == 24
    assert result["flops"]["flops_per_token_4n"] == 4 * result["flops"]["n_params"]


def test_bench_train_bad_data_is_a_clear_error(tmp_path):
    from t2s_fast.benchmarks.train_bench import BenchTrainConfig, bench_train

    with pytest.raises(T2SError, match="file not found"):
        bench_train(BenchTrainConfig(model_name="x", data=str(tmp_path / "missing.jsonl")))


def _gpu_train_result(auto_tps, base_tps, auto_mem, base_mem):
    rows = []
    for label, backend, tps, mem in (("unsloth-auto", "unsloth", auto_tps, auto_mem), ("hf", "hf", base_tps, base_mem)):
        rows.append({"label": label, "backend": backend, "status": "ok", "trained_tokens_per_s": tps,
                     "automatic_setup": backend == "unsloth",
                     "optimizer_steps_per_s": 0.5, "mfu_4n": tps * 4 * 8.19e9 / 785e12, "mfu_4n_plus_attention": None,
                     "peak_memory_allocated_gib": mem, "peak_memory_reserved_gib": mem + 1,
                     "setup": {"gradient_checkpointing": "off", "micro_batch_size": 8, "gradient_accumulation_steps": 1,
                               "attention": "sdpa-no-cudnn"},
                     "projected": {"stage1": {"hours": 0.5, "usd": 1.72}}})
    r = results.make_result("train", settings={"packing": True, "max_seq_length": 3072, "steps": 3, "warmup_steps": 2},
                            rows=rows, command="t2s-fast bench train ...", device={"kind": "cuda",
                                                                                   "name": "NVIDIA H200", "count": 1},
                            flops={"flops_per_token_4n": 3.3e10, "attention_flops_per_token": 1e9,
                                   "mean_attended_context": 500},
                            peak={"peak_tflops": 785.0, "method": "m"},
                            ratios=[{"label": "unsloth-auto", "vs": "hf",
                                     "tokens_per_s_ratio": round(auto_tps / base_tps, 3),
                                     "peak_allocated_ratio": round(auto_mem / base_mem, 3),
                                     "peak_reserved_ratio": None}])
    return r


@pytest.mark.parametrize("auto_tps, auto_mem, aims_met", [(12500, 10.0, ("MET", "MET", "NOT MET")),
                                                         (9000, 107.0, ("NOT MET", "NOT MET", "NOT MET"))])
def test_readme_says_where_we_stand(tmp_path, auto_tps, auto_mem, aims_met):
    from t2s_fast.benchmarks.readme import BEGIN, END, render

    rd = tmp_path / "results"
    results.write_result(_gpu_train_result(auto_tps, 2300, auto_mem, 33.0), rd, tag="packed")
    (rd / "other-format.json").write_text('{"benchmark": "score_throughput"}')
    readme = tmp_path / "README.md"
    readme.write_text(f"# hand-written intro\n\n{BEGIN}\nold\n{END}\n\nhand-written outro\n")
    text = render(rd, readme, tmp_path / "throughput.png")
    assert text.startswith("# hand-written intro") and text.rstrip().endswith("hand-written outro")
    assert "\nold\n" not in text
    stand = text.split("### Where we stand")[1].split("###")[0]
    verdicts = [line.split("—")[1].split(".")[0].strip(" *") for line in stand.splitlines() if "Aim" in line]
    assert tuple(v.split(" (")[0] for v in verdicts) == aims_met
    assert f"{auto_tps:,}" in text and "other-format.json" in text
    assert (tmp_path / "throughput.png").stat().st_size > 1000


def test_readme_never_claims_a_shared_gpu_result(tmp_path):
    """A result recorded on a GPU shared with other jobs (shared_gpu) is shown with a warning, and neither the
    aims nor the plot use its speed: a faster shared row must not turn an aim to MET."""
    from t2s_fast.benchmarks.readme import render

    rd = tmp_path / "results"
    results.write_result(_gpu_train_result(9000, 2300, 107.0, 33.0), rd, tag="alone")
    shared = _gpu_train_result(20000, 2300, 10.0, 33.0)
    shared.update(shared_gpu=True, note_shared_gpu="ran beside a vLLM engine")
    results.write_result(shared, rd, tag="shared")
    text = render(rd, tmp_path / "README.md", tmp_path / "throughput.png")
    stand = text.split("### Where we stand")[1].split("###")[0]
    assert "MET" in stand and " — MET" not in stand and "20,000" not in stand
    assert "**Shared GPU: speed, memory and dollars here are not claims.** ran beside a vLLM engine" in text


@pytest.mark.slow
def test_bench_profile_one_step_tiny_model(tiny_qwen3_dir, tmp_path):
    """`t2s-fast bench profile` profiles exactly one optimizer step of a real `t2s-fast train` run (CPU op
    times here; kernel times on a GPU) and writes a result with every bucket."""
    from click.testing import CliRunner

    from t2s_fast.benchmarks.cli import bench_group
    from t2s_fast.benchmarks.profile_step import BUCKETS

    data = write_prepared(tmp_path / "train.jsonl", n=8)
    res = CliRunner().invoke(bench_group, [
        "profile", "--label", "tiny", "--warmup-steps", "1", "--out-dir", str(tmp_path / "out"), "--",
        "--model-name", str(tiny_qwen3_dir), "--train-file", str(data), "--output-dir", str(tmp_path / "run"),
        "--backend", "hf", "--max-seq-length", "512", "--per-device-train-batch-size", "2",
        "--gradient-accumulation-steps", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    row = results.validate_result(json.loads(open(res.output.strip().splitlines()[-1]).read()))["rows"][0]
    assert row["profiled_step"] == 2 and set(row["buckets_s"]) == set(BUCKETS)
    assert row["gpu_busy_s"] > 0 and row["step_time_s"] > 0  # on a CPU "busy" is summed op time: no bound
    assert row["buckets_s"]["matmul"] > 0 and row["top_kernels"]
    log = [json.loads(line) for line in open(tmp_path / "run" / "train_log.jsonl") if "step_time_s" in line]
    assert len(log) == 3  # warm-up + the profiled step + one more, so the window closes
    # the profiled step is one of this run's steps: it fits inside the run's measured wall time (no timing ratio:
    # step times of a tiny model on a shared CPU vary several-fold, and timings are for benchmarks, not tests)
    assert 0 < row["step_time_s"] <= log[-1]["elapsed_s"]


def test_bench_score_small(spider1_dir, tmp_path):
    from t2s_fast.benchmarks.score_bench import BenchScoreConfig, bench_score

    r = bench_score(BenchScoreConfig(spider_dir=str(spider1_dir), workers=(0, 1), repeats=1, limit=30,
                                     out_dir=str(tmp_path)))
    assert [row["workers"] for row in r["rows"]] == [0, 1]
    for row in r["rows"]:
        assert row["pairs"] == 30 and row["pairs_per_s"] > 0 and row["ex"] == 1.0  # gold vs gold matches
    assert results.load_results(tmp_path, "score")


@pytest.mark.slow
def test_bench_generate_hf_tiny_model(tiny_qwen3_dir, spider1_dir, tmp_path):
    from t2s_fast.benchmarks.generate_bench import BenchGenerateConfig, bench_generate

    r = bench_generate(BenchGenerateConfig(model_name=str(tiny_qwen3_dir), spider_dir=str(spider1_dir),
                                           n_adapters=2, n_questions=2, max_new_tokens=4, backends="hf",
                                           out_dir=str(tmp_path / "out"), work_dir=str(tmp_path / "w")))
    row = r["rows"][0]
    assert row["status"] == "ok", row.get("error_tail")
    assert row["requests"] == 4 and row["adapters"] == 2 and row["generated_tokens_per_s"] > 0


# --- multi_gpu_report ---
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
def _prepared_concert_singer(spider1_dir: Path, dest: Path, counts: dict[str, int]) -> Path:
    """Prepared files as `prepare` writes them, from consecutive concert_singer dev questions: {file name: how many}."""
    from t2s_fast.prompt import build_messages
    from t2s_fast.schema import read_sqlite_schema, render_schema

    db = "concert_singer"
    schema = render_schema(read_sqlite_schema(spider1_dir / "database" / db / f"{db}.sqlite", db_id=db,
                                              sample_values=0), sample_values=False)
    rows = iter(enumerate(r for r in json.loads((spider1_dir / "dev.json").read_text()) if r["db_id"] == db))
    dest.mkdir(parents=True)
    for name, count in counts.items():
        (dest / name).write_text("".join(json.dumps({
            "id": f"{db}-{i}", "source": "spider1", "db_id": db, "dialect": "sqlite", "question": r["question"],
            "sql": r["query"], "messages": build_messages(dialect="sqlite", db_id=db, schema=schema,
                                                          question=r["question"], sql=r["query"])}) + "\n"
            for i, r in (next(rows) for _ in range(count))))
    return dest


def test_driver_smoke_mode_runs_every_phase_on_the_cpu(tmp_path, spider1_dir, qwen3_tokenizer_dir):
    from t2s_fast.paths import QWEN3_8B_CONFIG

    if not QWEN3_8B_CONFIG.exists() or shutil.which("bash") is None:
        pytest.skip("needs ../shared/assets and bash")
    prepared = _prepared_concert_singer(spider1_dir, tmp_path / "prepared", {"stage1_train.jsonl": 16})
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


def _rl_report():
    import importlib.util

    spec = importlib.util.spec_from_file_location("rl_report", Path(__file__).resolve().parent.parent / "bench"
                                                  / "rl_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_weight_sync_check_tells_a_synced_engine_from_one_that_samples_another_model():
    sync_check = _rl_report().sync_check
    start = [0.25, 0.5, 0.625, 0.375, 0.5, 0.75, 0.25, 0.5, 0.375, 0.625]
    noise = [0.0625, -0.0625, 0.125, -0.125, 0.0, 0.0625, -0.0625, 0.0, 0.125, -0.125]  # sums to 0
    synced = sync_check([{"match_rate": s + e, "start_match_rate": s} for s, e in zip(start, noise)], 16)
    assert synced["steps"] == 10 and synced["prompts"] == 160 and synced["difference"] == 0
    assert synced["ci95"][0] < 0 < synced["ci95"][1]
    # the engine still sampling the base model: every step 20 points below the starting adapter's pass rate
    stale = sync_check([{"match_rate": s - 0.2 + e, "start_match_rate": s} for s, e in zip(start, noise)], 16)
    assert stale["difference"] == pytest.approx(-0.2) and stale["ci95"][1] < 0
    assert sync_check([{"match_rate": 0.5}], 16) is None  # no start rates (no filter pass): no check


def _keep(work: Path, out: Path, *batch: str, per_call: int = 3) -> str:
    out.mkdir(exist_ok=True)
    env = {**os.environ, "OUT": str(out), "KEEP_PIECES_PER_CALL": str(per_call),
           "KEEP_STORE": str(work.parent / "keep")}
    return subprocess.run(["bash", str(REPO / "bench/lease/payload.sh"), "keep", str(work), *batch], env=env,
                          check=True, capture_output=True, text=True, timeout=120).stdout


def test_lease_keep_brings_back_the_sft_start_filter_passes_and_grpo_checkpoints_in_pieces_that_rejoin(tmp_path):
    """`payload.sh keep` packs what a later lease starts from: the SFT adapter, every finished filter pass (one
    with pass.json), and each GRPO run's newest complete checkpoint whole (what --resume reads), its older
    checkpoints' adapters and its train log, in pieces of at most 15 MiB ($OUT's limit is 16), brought back a few
    per call, that join back into the same files."""
    if shutil.which("bash") is None or shutil.which("split") is None:
        pytest.skip("needs bash and split")
    work = tmp_path / "work"
    adapter = work / "sft" / "adapter"
    adapter.mkdir(parents=True)
    weights = os.urandom(20 * 2**20)  # incompressible: more than one piece
    (adapter / "adapter_model.safetensors").write_bytes(weights)
    for f in ("run.json", "train_log.jsonl"):
        (work / "sft" / f).write_text("{}\n")
    run = work / "rl-lr1e-5"
    (run / "prompts").mkdir(parents=True)
    (run / "prompts" / "pass.json").write_text('{"settings_key": "k"}')
    (work / "rl-lr4e-5" / "prompts").mkdir(parents=True)  # a pass that did not finish: left out
    (work / "rl-lr4e-5" / "prompts" / "settings.json").write_text("{}")
    (run / "train_log.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    optimizer = os.urandom(12 * 2**20)
    for step, complete in ((5, True), (10, True), (15, False)):  # 15 was being written when the lease ended
        c = run / "checkpoints" / f"checkpoint-{step}"
        c.mkdir(parents=True)
        (c / "adapter_model.safetensors").write_bytes(f"adapter {step}".encode())
        (c / "adapter_config.json").write_text("{}")
        (c / "optimizer.pt").write_bytes(optimizer if step == 10 else b"old optimizer")
        if complete:
            (c / "trainer_state.json").write_text("{}")
            (c / "t2s_checkpoint_complete").write_text("")
    (run / "adapter").mkdir()  # a finished run's final adapter is not what a resume reads
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"final")

    out = tmp_path / "out"
    first = _keep(work, out, per_call=1)
    assert "brought back pieces 0-0" in first and "keep " + str(work) + " 1" in first
    assert "keep " + str(work) + " 2" in _keep(work, out, "1", per_call=1)
    assert "all 3 pieces brought back" in _keep(work, out, "2", per_call=1)
    pieces = sorted(out.glob("start.tgz.*"))
    assert len(pieces) == 3 and all(p.stat().st_size <= 15 * 2**20 for p in pieces)
    joined = tmp_path / "start.tgz"
    joined.write_bytes(b"".join(p.read_bytes() for p in pieces))
    with tarfile.open(joined) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
        assert tar.extractfile("sft/adapter/adapter_model.safetensors").read() == weights
        assert tar.extractfile("rl-lr1e-5/checkpoints/checkpoint-10/optimizer.pt").read() == optimizer
    ckpt = "rl-lr1e-5/checkpoints/checkpoint-"
    assert names == {"sft/adapter/adapter_model.safetensors", "sft/run.json", "sft/train_log.jsonl",
                     "rl-lr1e-5/prompts/pass.json", "rl-lr1e-5/train_log.jsonl",
                     *(ckpt + "10/" + f for f in ("adapter_model.safetensors", "adapter_config.json",
                                                  "optimizer.pt", "trainer_state.json", "t2s_checkpoint_complete")),
                     *(ckpt + "5/" + f for f in ("adapter_model.safetensors", "adapter_config.json",
                                                 "trainer_state.json", "t2s_checkpoint_complete"))}

    # batch 0 packs afresh: a later call brings back what the run has finished since
    (run / "checkpoints" / "checkpoint-15" / "trainer_state.json").write_text("{}")
    again = tmp_path / "again"
    assert "all 2 pieces brought back" in _keep(work, again, per_call=2)
    joined.write_bytes(b"".join(p.read_bytes() for p in sorted(again.glob("start.tgz.*"))))
    with tarfile.open(joined) as tar:
        assert tar.extractfile(ckpt + "15/optimizer.pt").read() == b"old optimizer"
        assert ckpt + "10/optimizer.pt" not in tar.getnames()


def test_rl_report_summarizes_a_grpo_run_cut_before_it_wrote_run_json(tmp_path):
    """A lease taken back mid-run leaves a GRPO run with its train log and filter but no run.json: the report
    still gives its steps, seconds per step, dollars so far and rewards, and says it was cut."""
    run = tmp_path / "work" / "rl-lr4e-5"
    (run / "prompts").mkdir(parents=True)
    (run / "prompts" / "filter.json").write_text(json.dumps({"prompts": 40, "kept": 25, "never_right": 5,
                                                             "always_right": 10, "rule": "1 <= right of 8 <= 7"}))
    (run / "prompts" / "settings.json").write_text(json.dumps({"learning_rate": 4e-5, "prompts_per_step": 16}))
    rows = [{"step": i, "reward": 0.5 + i / 100, "frac_reward_zero_std": 0.125, "step_time_s": t, "generation_s": 1.0,
             "reward_s": 0.25, "train_s": t - 1.25, "elapsed_s": 60.0 + 14 * i, "cost_usd": 0.01 * i,
             "learning_rate": 4e-5, "match_rate": 0.5, "start_match_rate": 0.5, "sync_logp_diff_mean": 0.005}
            for i, t in ((1, 16.0), (2, 14.0), (3, 13.0))]
    torn = '{"step": 4, "rew'  # the line being appended when the machine went
    (run / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + torn)
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(REPO / "bench/rl_report.py"), str(tmp_path / "work"), str(out)], check=True,
                   capture_output=True, text=True, timeout=300)
    summary = json.loads((out / "report.json").read_text())["runs"]["rl-lr4e-5"]
    assert summary["global_step"] == 3 and summary["cost_usd"] == 0.03 and summary["step_seconds_median"]["total"] == 14
    assert summary["first_reward"] == 0.51 and summary["final_reward"] == 0.53 and summary["filter"]["kept"] == 25
    row = next(line for line in (out / "README.md").read_text().splitlines() if line.startswith("| rl-lr4e-5"))
    assert "cut: stopped before run.json was written" in row and "0.510 → 0.530" in row
    assert (out / "rl-lr4e-5" / "rl_curves.png").is_file() and (out / "seconds_per_step.png").is_file()
    text = (out / "README.md").read_text()
    assert "Prompt filter (rl-lr4e-5): 25 of 40 training prompts kept (1 <= right of 8 <= 7)" in text
    assert "## Spider dev" not in text  # no dev evaluation in this folder: no empty table


@pytest.mark.parametrize("kept, biased", [(40, False), (25, True)])
def test_the_sync_check_on_prompts_the_filter_chose_is_called_biased(tmp_path, kept, biased):
    """At learning rate 0 the step's share of right completions is compared with the filter pass's counts of the
    same prompts. Prompts kept *because of* those counts make them a biased estimate, and the report says so."""
    run = tmp_path / "work" / "rl-lr0"
    (run / "prompts").mkdir(parents=True)
    rule = "0 <= right of 8 <= 8" if kept == 40 else "1 <= right of 8 <= 7"
    (run / "prompts" / "filter.json").write_text(json.dumps({"prompts": 40, "kept": kept, "never_right": 5,
                                                             "always_right": 10, "rule": rule}))
    (run / "prompts" / "settings.json").write_text(json.dumps({"learning_rate": 0, "prompts_per_step": 16}))
    rows = [{"step": i, "reward": 0.5, "frac_reward_zero_std": 0.125, "step_time_s": 14.0, "generation_s": 1.0,
             "reward_s": 0.25, "train_s": 12.75, "elapsed_s": 60.0 + 14 * i, "cost_usd": 0.01 * i, "learning_rate": 0,
             "match_rate": 0.5 + (i % 2 - 0.5) / 10, "start_match_rate": 0.5} for i in range(1, 7)]
    (run / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(REPO / "bench/rl_report.py"), str(tmp_path / "work"), str(out)], check=True,
                   capture_output=True, text=True, timeout=300)
    text = (out / "README.md").read_text()
    assert "Weight-sync check (rl-lr0, learning rate 0, 96 prompts over 6 steps)" in text
    assert "no sign of a sync error" in text
    assert ("The check is biased" in text) == biased


@pytest.mark.slow
def test_rl_driver_weight_sync_form_runs_on_the_cpu_and_reports_the_check(tmp_path, spider1_dir, tiny_qwen3_dir):
    """The short lease the RL driver offers (SFT, one filter pass, GRPO at learning rate 0 and at a real rate,
    then stop) runs end to end in smoke mode, and its report gives the weight-sync check."""
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    prepared = _prepared_concert_singer(spider1_dir, tmp_path / "prepared",
                                        {"stage1_train.jsonl": 8, "stage1_valid.jsonl": 4})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "spider1").symlink_to(spider1_dir)
    # a lease ending an hour and RESERVE_S (600 s) from now: each GRPO run gets about an hour's dollars
    env = {**os.environ, "T2S_SMOKE": "1", "STOP_AFTER_RL": "1", "RL_LRS": "0 4e-5", "SFT_MAX_STEPS": "1",
           "RL_ARGS": "--filter-min-correct 0 --filter-max-correct 2",  # the pass: colocated by default
           "DEADLINE": str(int(time.time()) + 600 + 3600),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("WORLD_SIZE", None)
    work = tmp_path / "work"
    proc = subprocess.run(["bash", str(REPO / "bench/rl_real_model.sh"), str(tiny_qwen3_dir), str(tmp_path / "data"),
                           str(prepared), str(work)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and (work / "ALLDONE").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "end rl-lr0 rc=0" in proc.stdout and "end rl-lr4e-5 rc=0" in proc.stdout, proc.stdout[-3000:]
    assert not (work / "heldout").exists()  # stopped after the GRPO runs
    lr0 = json.loads((work / "rl-lr0" / "run.json").read_text())
    assert lr0["config"]["learning_rate"] == 0 and lr0["filter"]["rule"] == "0 <= right of 2 <= 2"
    assert 3.3 < lr0["max_cost_usd"] < 3.44  # the hour to the deadline, at $3.44/h
    # a CPU has no colocated vLLM engine: the pass took its own, and said so
    assert lr0["config"]["filter_engine"] == "colocated" and lr0["filter"]["generator"] != "colocated"
    assert "takes an engine of its own" in (work / "rl-lr0.log").read_text()
    out = tmp_path / "report"
    subprocess.run([sys.executable, str(REPO / "bench/rl_report.py"), str(work), str(out)], check=True,
                   capture_output=True, text=True, timeout=300)
    report = json.loads((out / "report.json").read_text())
    check = report["runs"]["rl-lr0"]["sync_check"]
    assert check["steps"] == 2 and check["prompts"] == 4 and "sync_check" not in report["runs"]["rl-lr4e-5"]
    assert "Weight-sync check (rl-lr0, learning rate 0" in (out / "README.md").read_text()


@pytest.mark.slow
def test_rl_driver_full_form_chooses_on_held_out_then_evaluates_the_choice_on_dev(tmp_path, spider1_dir,
                                                                                  tiny_qwen3_dir):
    """What a lease runs for a model's accuracy figures, in smoke mode: SFT, the filter, GRPO with a checkpoint
    each step, the SFT start and every checkpoint on held-out data in one engine (the final adapter left out: the
    last checkpoint holds the same step), the choice, then Spider dev greedy, with the repair default and maj@8."""
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    prepared = _prepared_concert_singer(spider1_dir, tmp_path / "prepared",
                                        {"stage1_train.jsonl": 8, "stage1_valid.jsonl": 4})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "spider1").symlink_to(spider1_dir)
    env = {**os.environ, "T2S_SMOKE": "1", "RL_LRS": "4e-5", "UNSLOTH_STEPS": "0", "SFT_MAX_STEPS": "1",
           "RL_ARGS": "--filter-min-correct 0 --filter-max-correct 2",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("WORLD_SIZE", None)
    work = tmp_path / "work"
    proc = subprocess.run(["bash", str(REPO / "bench/rl_real_model.sh"), str(tiny_qwen3_dir), str(tmp_path / "data"),
                           str(prepared), str(work)], env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0 and (work / "ALLDONE").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    heldout = json.loads((work / "heldout" / "report.json").read_text())["adapters"]
    assert set(heldout) == {"sft", "rl-lr4e-5-step-1", "rl-lr4e-5-step-2"}
    chosen, path = (work / "chosen.txt").read_text().split()
    assert chosen in heldout and Path(path).is_dir()
    best = max(heldout.values(), key=lambda a: a["ex"])["ex"]
    assert heldout[chosen]["ex"] == best and (chosen == "sft" or heldout["sft"]["ex"] < best)  # ties: the start
    for decoding in ("greedy", "repair", "maj8"):
        dev = json.loads((work / f"dev-{decoding}" / "report.json").read_text())
        assert set(dev["adapters"]) == {"sft", chosen}, decoding  # the choice under its own name
        assert (work / f"dev-{decoding}" / "scored.jsonl").is_file()
    # one engine for the held-out choice and the three dev evaluations; no evaluation in an engine of its own
    assert "engine opened once" in (work / "choose-and-dev.log").read_text()
    assert not (work / "heldout.log").exists() and not (work / "dev-greedy.log").exists()
    # vLLM's engine core is a spawned process that imports the script again as __mp_main__: it must run nothing
    # (on a GPU the script without its main guard failed there, and the lease fell back to four engines)
    import runpy

    before = sorted(p.name for p in work.iterdir())
    assert "main" in runpy.run_path(str(work / "choose_and_report.py"), run_name="__mp_main__")
    assert sorted(p.name for p in work.iterdir()) == before
    out = tmp_path / "report"
    subprocess.run([sys.executable, str(REPO / "bench/rl_report.py"), str(work), str(out)], check=True,
                   capture_output=True, text=True, timeout=300)
    assert set(json.loads((out / "report.json").read_text())["dev"]) == {"greedy", "repair", "maj8"}


@pytest.mark.slow
def test_rl_driver_goes_on_from_a_kept_start_without_redoing_sft_or_the_filter(tmp_path, spider1_dir, tiny_qwen3_dir):
    """A lease cut after a GRPO checkpoint: `payload.sh keep` brings back the SFT adapter, the filter pass and the
    checkpoint; a later lease unpacks them into the same work folder and the driver trains on from that checkpoint
    (a larger RL_STEPS), skipping SFT and the filter pass, with the first lease's dollars counted."""
    if shutil.which("bash") is None or shutil.which("split") is None:
        pytest.skip("needs bash and split")
    prepared = _prepared_concert_singer(spider1_dir, tmp_path / "prepared",
                                        {"stage1_train.jsonl": 8, "stage1_valid.jsonl": 4})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "spider1").symlink_to(spider1_dir)
    env = {**os.environ, "T2S_SMOKE": "1", "STOP_AFTER_RL": "1", "RL_LRS": "4e-5", "SFT_MAX_STEPS": "1",
           "RL_ARGS": "--filter-min-correct 0 --filter-max-correct 2",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("WORLD_SIZE", None)
    work = tmp_path / "work"
    driver = ["bash", str(REPO / "bench/rl_real_model.sh"), str(tiny_qwen3_dir), str(tmp_path / "data"),
              str(prepared), str(work)]

    def lease(steps: int) -> subprocess.CompletedProcess:
        proc = subprocess.run(driver, env={**env, "RL_STEPS": str(steps)}, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0 and "end rl-lr4e-5 rc=0" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    lease(1)
    run = work / "rl-lr4e-5"
    first = json.loads((run / "run.json").read_text())
    assert first["global_step"] == 1 and first["resumed_from"] is None
    sft_weights = (work / "sft" / "adapter" / "adapter_model.safetensors").read_bytes()
    pass_json = (run / "prompts" / "pass.json").read_text()
    ckpt_weights = (run / "checkpoints" / "checkpoint-1" / "adapter_model.safetensors").read_bytes()

    out = tmp_path / "out"
    assert "all" in _keep(work, out, per_call=8)
    shutil.rmtree(work)  # the next lease: a fresh machine, the kept start unpacked where the driver looks
    work.mkdir()
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in sorted(out.glob("start.tgz.*"))))) as tar:
        tar.extractall(work, filter="data")
    assert (run / "checkpoints" / "checkpoint-1" / "adapter_model.safetensors").read_bytes() == ckpt_weights

    lease(2)
    assert "t2s_fast train" not in (work / "commands.sh").read_text()  # SFT skipped
    assert (work / "sft" / "adapter" / "adapter_model.safetensors").read_bytes() == sft_weights
    assert "filter:" not in (work / "rl-lr4e-5.log").read_text()  # the kept pass reused
    assert (run / "prompts" / "pass.json").read_text() == pass_json
    second = json.loads((run / "run.json").read_text())
    assert second["global_step"] == 2 and second["resumed_from"].endswith("checkpoint-1")
    assert [r["step"] for r in read_jsonl(run / "train_log.jsonl")] == [1, 2]
    assert second["cost_usd"] > first["cost_usd"]  # the first lease's dollars carried over
