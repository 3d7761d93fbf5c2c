"""`t2s-fast train` (t2s_fast/train/): the train file, the trainer's pieces, end to end and data-parallel.

- End to end on a CPU with a scaled-down Qwen3 (real tokenizer): stage 1 -> stage 2 -> infer -> merge, the
  budget guard, and kill/resume. The HF backend runs here; Unsloth is the same pipeline behind another backend.
- Train-file validation and the loss mask as the real trainer pipeline produces it (real Qwen3 tokenizer).
- The run's trainer class is built from named pieces: the token count always, the labelled-positions loss only
  where TRL's fused kernel cannot run, and that choice is logged.
- Data-parallel training on a CPU: two gloo processes under torchrun against one process with the same
  global batch (the tiny Qwen3, real tokenizer). Same examples in every optimizer step, so the loss trajectory
  must match; rank 0 alone writes the run folder; a distributed run resumes from its checkpoint."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from t2s_fast.errors import T2SError
from t2s_fast.prompt import build_messages
from t2s_fast.train import loss
from t2s_fast.train.budget import RunMeter
from t2s_fast.train.callbacks import CountTokens, CpuDistributedResume, trainer_class

# --- train_e2e ---
DBS = ("concert_singer", "pets_1")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, spider1_dir) -> Path:
    """8 prepared-format lines from real Spider DBs (schema without sample values: short sequences)."""
    from t2s_fast.prompt import build_messages
    from t2s_fast.schema import read_sqlite_schema, render_schema

    rows = json.loads((spider1_dir / "dev.json").read_text())
    out = []
    for db in DBS:
        schema = render_schema(read_sqlite_schema(spider1_dir / "database" / db / f"{db}.sqlite", db_id=db,
                                                  sample_values=0), sample_values=False)
        for r in [r for r in rows if r["db_id"] == db][:4]:
            out.append({"id": f"{db}-{len(out)}", "source": "spider1", "db_id": db, "dialect": "sqlite",
                        "question": r["question"], "sql": r["query"],
                        "messages": build_messages(dialect="sqlite", db_id=db, schema=schema,
                                                   question=r["question"], sql=r["query"])})
    path = tmp_path_factory.mktemp("data") / "stage1_train.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in out))
    return path


def _cfg(model, data, out, **kw):
    from t2s_fast.train.config import TrainConfig

    base = dict(model_name=str(model), train_file=str(data), output_dir=str(out), backend="hf", max_seq_length=1024,
                per_device_train_batch_size=2, gradient_accumulation_steps=1, learning_rate=1e-2, warmup_ratio=0.0,
                lr_scheduler_type="constant", save_steps=1000, auto_setup=False, packing=False)
    base.update(kw)
    return TrainConfig(**base)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def stage1(tmp_path_factory, tiny_qwen3_dir, prepared):
    from t2s_fast.train.trainer import train

    out = tmp_path_factory.mktemp("runs") / "stage1"
    info = train(_cfg(tiny_qwen3_dir, prepared, out, max_steps=24, eval_file=str(prepared), eval_steps=12))
    return out, info


@pytest.mark.slow
def test_stage1_trains_and_writes_its_outputs(stage1):
    out, info = stage1
    rows = _log(out)
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 25))
    losses = [r["loss"] for r in steps]
    assert sum(losses[-4:]) / 4 < sum(losses[:2]) / 2 - 0.3, losses  # it learns the 8 queries
    assert all(r["trained_tokens"] > r["loss_tokens"] > 0 for r in steps)
    assert [r["step"] for r in rows if "eval_loss" in r] == [12, 24]
    assert info["stop_reason"] == "completed" and info["global_step"] == 24
    assert info["tokens_trained"] == sum(r["trained_tokens"] for r in steps)
    assert info["trained_tokens_per_s"] > 0 and info["cost_usd"] > 0
    assert info["config"]["learning_rate"] == 1e-2 and info["backend"] == "hf"
    assert info["versions"]["transformers"] and info["device"]["kind"] == "cpu"
    assert json.loads((out / "run.json").read_text())["global_step"] == 24
    assert (out / "loss.png").stat().st_size > 1000
    for f in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json"):
        assert (out / "adapter" / f).is_file()


@pytest.mark.slow
def test_stage2_continues_the_stage1_adapter(stage1, tiny_qwen3_dir, prepared, tmp_path):
    from t2s_fast.train.trainer import train

    s1_out, s1 = stage1
    out = tmp_path / "stage2"
    info = train(_cfg(tiny_qwen3_dir, prepared, out, max_steps=3, adapter_path=str(s1_out / "adapter")))
    assert info["global_step"] == 3 and info["model"]["adapter_path"] == str(s1_out / "adapter")
    # continuing the trained adapter: stage 2 starts where stage 1 ended, far below a fresh adapter's loss
    assert info["first_loss"] < s1["first_loss"] - 0.3
    cfg1 = json.loads((s1_out / "adapter" / "adapter_config.json").read_text())
    cfg2 = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert (cfg2["r"], sorted(cfg2["target_modules"])) == (cfg1["r"], sorted(cfg1["target_modules"]))


@pytest.mark.slow
def test_infer_prints_only_the_sql(stage1, spider1_dir, monkeypatch, capsys):
    from t2s_fast.cli import main
    from t2s_fast.infer import InferConfig, infer

    out, _ = stage1
    db = spider1_dir / "database" / "concert_singer" / "concert_singer.sqlite"
    cfg = InferConfig(model_path=str(out / "adapter"), question="How many singers do we have?", db=str(db),
                      db_id="concert_singer", max_new_tokens=12, sample_values=0)
    sql = infer(cfg)
    assert isinstance(sql, str)
    main(["infer", "--model-path", str(out / "adapter"), "--question", "How many singers do we have?", "--db", str(db),
          "--db-id", "concert_singer", "--max-new-tokens", "12", "--sample-values", "0"])
    assert capsys.readouterr().out == sql + "\n"  # greedy: the same SQL, and nothing else on stdout
    with pytest.raises(T2SError, match="exactly one of --schema-file"):
        infer(InferConfig(model_path=str(out / "adapter"), question="q", db_id="x"))


@pytest.mark.slow
def test_merge_matches_base_plus_adapter_and_refuses_a_mismatched_base(stage1, tiny_qwen3_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from t2s_fast.merge import merge
    from t2s_fast.models import materialize_random_init, scaled_down_config
    from t2s_fast.paths import QWEN3_8B_CONFIG

    out, _ = stage1
    merged_dir = merge(str(tiny_qwen3_dir), str(out / "adapter"), str(tmp_path / "merged"), dtype="fp32")
    assert (merged_dir / "config.json").is_file() and (merged_dir / "tokenizer_config.json").is_file()
    assert not (tmp_path / "merged.partial").exists()
    ids = torch.tensor([[151644, 872, 198, 4340, 1657, 1251]])
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_qwen3_dir, dtype=torch.float32),
                                    str(out / "adapter")).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen3_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        m, r, b = merged(ids).logits, ref(ids).logits, base(ids).logits
    assert torch.allclose(m, r, atol=1e-4)
    assert not torch.allclose(m, b, atol=1e-4)  # the adapter changed something

    cfg = tmp_path / "other" / "config.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps(scaled_down_config(QWEN3_8B_CONFIG, hidden_size=32, head_dim=8)))
    other = materialize_random_init(cfg, tmp_path / "other-model", tokenizer=tiny_qwen3_dir, dtype="float32")
    with pytest.raises(T2SError, match="does not fit this base model"):
        merge(str(other), str(out / "adapter"), str(tmp_path / "merged2"))
    assert not (tmp_path / "merged2").exists()


@pytest.mark.slow
def test_budget_guard_stops_cleanly_with_a_loadable_adapter(tiny_qwen3_dir, prepared, tmp_path):
    import time as _time

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from t2s_fast.train.trainer import prepare_run, run_training

    # $1 per second of wall time; the clock is started at the first step so model loading does not vary the test.
    out = tmp_path / "budget"
    run = prepare_run(_cfg(tiny_qwen3_dir, prepared, out, max_steps=500, save_steps=1000,
                           gpu_hourly_usd=3600.0, max_cost_usd=8.0))
    import matplotlib.pyplot  # noqa: F401  (the loss plot's first import would cost ~$1 of this test's budget)

    run.meter.t0 = _time.time()
    info = run_training(run)
    assert info["stop_reason"] == "budget"
    assert 1 <= info["global_step"] < 500
    assert info["cost_usd_at_stop"] <= 8.0
    assert info["cost_usd"] <= 8.0  # everything after the stop (checkpoint, adapter, plot, run.json) fits too
    assert (out / "checkpoints" / f"checkpoint-{info['global_step']}").is_dir()
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_qwen3_dir), str(out / "adapter"))


def _spawn(args, log_file):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "t2s_fast", "train", *args], stdout=log_file,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_for(pred, proc, timeout=240):
    t = time.time()
    while time.time() - t < timeout:
        if pred():
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early with {proc.returncode}")
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_resumed_from_the_last_steps_checkpoint_trains_no_step_more(tiny_qwen3_dir, prepared, tmp_path):
    """A stop during the last step leaves a checkpoint at max_steps: --resume from it keeps the run at max_steps
    (transformers' Trainer alone would train one step more) and still writes the adapter."""
    from t2s_fast.train.trainer import train

    out = tmp_path / "run"
    first = train(_cfg(tiny_qwen3_dir, prepared, out, max_steps=2, save_steps=1))
    assert first["global_step"] == 2 and (out / "checkpoints" / "checkpoint-2").is_dir()
    again = train(_cfg(tiny_qwen3_dir, prepared, out, max_steps=2, save_steps=1, resume=True))
    assert again["resumed_from"].endswith("checkpoint-2")
    assert again["global_step"] == 2 and again["stop_reason"] == "completed"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert [r["step"] for r in _log(out) if r.get("loss") is not None] == [1, 2]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_final_step(tiny_qwen3_dir, prepared, tmp_path):
    """SIGKILL after a checkpoint, --resume, SIGTERM (graceful: checkpoint + adapter, exit 143), --resume again:
    the run ends at the same final step as an uninterrupted one, each resume starting from a checkpoint."""
    out = tmp_path / "resume"
    target = 40  # far enough past step 5 that the SIGTERM always lands mid-run, even on a fast machine
    args = ["--model-name", str(tiny_qwen3_dir), "--train-file", str(prepared), "--output-dir", str(out),
            "--backend", "hf", "--max-steps", str(target), "--save-steps", "3", "--max-seq-length", "1024",
            "--per-device-train-batch-size", "2", "--gradient-accumulation-steps", "1", "--learning-rate", "1e-2",
            "--no-packing", "--no-auto-setup"]
    logf = open(tmp_path / "train.out", "w")
    ck3 = out / "checkpoints" / "checkpoint-3" / "t2s_checkpoint_complete"

    p = _spawn(args, logf)
    _wait_for(ck3.exists, p)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (out / "run.json").exists()

    p = _spawn([*args, "--resume"], logf)
    # The killed run may have logged steps past 5 before SIGKILL landed. The resumed run first cuts the log back
    # to its checkpoint (step 3), then trains on: wait for that cut, then for step 5, so the SIGTERM reaches
    # the resumed run mid-training rather than while it is still starting up.
    seen_cut = []

    def resumed_past_step_5():
        try:
            steps = [r["step"] for r in _log(out) if "loss" in r] if (out / "train_log.jsonl").exists() else []
        except json.JSONDecodeError:  # a line being written right now: look again
            return False
        if steps and max(steps) <= 3:
            seen_cut.append(True)
        return bool(seen_cut) and max(steps, default=0) >= 5

    _wait_for(resumed_past_step_5, p)
    os.kill(p.pid, signal.SIGTERM)
    assert p.wait(timeout=240) == 143, (tmp_path / "train.out").read_text()[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["stop_reason"] == "interrupted" and info["resumed_from"].endswith("checkpoint-3")
    stopped_at = info["global_step"]
    assert 5 <= stopped_at < target
    assert (out / "checkpoints" / f"checkpoint-{stopped_at}" / "t2s_checkpoint_complete").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()

    p = _spawn([*args, "--resume"], logf)
    assert p.wait(timeout=300) == 0, (tmp_path / "train.out").read_text()[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["stop_reason"] == "completed" and info["global_step"] == target
    assert info["resumed_from"].endswith(f"checkpoint-{stopped_at}")
    assert [r["step"] for r in _log(out) if "loss" in r] == list(range(1, target + 1))
    assert info["tokens_trained_total"] == sum(r["trained_tokens"] for r in _log(out) if "loss" in r)


@pytest.mark.slow
def test_global_batch_size_with_packing_counts_examples_not_rows(tiny_qwen3_dir, prepared, tmp_path):
    """--global-batch-size is in examples; with --packing a micro-batch is in packed rows, so the accumulation
    comes from the rows those examples fill, not from examples / rows (which made steps ~4x too large)."""
    from t2s_fast.train.autotune import packed_rows_for
    from t2s_fast.train.trainer import prepare_run

    run = prepare_run(_cfg(tiny_qwen3_dir, prepared, tmp_path / "gbs", packing=True, global_batch_size=32,
                           per_device_train_batch_size=2, max_steps=1))
    mean = run.train_data.mean_tokens
    rows = packed_rows_for(32, mean, 1024)
    assert rows < 32 / 2  # the bug would have given accumulation 16 here
    assert run.trainer.args.gradient_accumulation_steps == max(1, round(rows / 2))
    assert run.trainer.args.per_device_train_batch_size == 2


@pytest.mark.slow
def test_resume_without_a_checkpoint_keeps_the_money_spent_and_the_log(tiny_qwen3_dir, prepared, tmp_path):
    """A crash before the first checkpoint: --resume restarts at step 0, but the GPU time already paid still
    counts toward --max-cost-usd, and the earlier log is kept, not deleted."""
    from t2s_fast.train.trainer import prepare_run

    out = tmp_path / "early-crash"
    out.mkdir()
    (out / "train_log.jsonl").write_text(json.dumps({"step": 1, "loss": 3.0, "elapsed_s": 120.0}) + "\n")
    run = prepare_run(_cfg(tiny_qwen3_dir, prepared, out, resume=True, max_steps=1))
    assert run.meter.prior_elapsed_s == 120.0
    kept = list(out.glob("train_log.before-restart-*.jsonl"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["elapsed_s"] == 120.0
    assert not (out / "train_log.jsonl").exists()


@pytest.mark.slow
def test_budget_guard_reserves_the_evaluation_that_comes_next():
    """One step costs $1 and an evaluation $20 (measured): with $17 left, the guard goes on at a step whose
    successor is no eval step, and stops before the step that would trigger the evaluation."""
    from types import SimpleNamespace

    from transformers import TrainerControl

    from t2s_fast.train.budget import RunMeter
    from t2s_fast.train.callbacks import BudgetGuard

    meter = RunMeter(gpu_hourly_usd=3600.0, max_cost_usd=117.0)  # $1 per second
    meter.steps = [{"step_time_s": 1.0}]
    meter.last_eval_s = 20.0
    meter.last_save_s = 0.5
    meter.t0 = __import__("time").time() - 100.0  # $100 spent
    guard = BudgetGuard(meter)
    args = SimpleNamespace(eval_steps=10, eval_strategy="steps")
    control = TrainerControl()
    guard.on_step_end(args, SimpleNamespace(global_step=5), control)
    assert not control.should_training_stop  # 1.25 x (1 step + 2 saves of 1) + 2 = 5.75 < 17 left
    guard.on_step_end(args, SimpleNamespace(global_step=9), control)
    assert control.should_training_stop and meter.stop_reason == "budget"  # step 10 evaluates: 1.25 x 23 + 2 > 17


@pytest.mark.slow
def test_step_log_times_the_evaluation_for_the_budget_guard(tmp_path):
    import time as _time
    from types import SimpleNamespace

    from t2s_fast.train.budget import RunMeter
    from t2s_fast.train.callbacks import StepLogCallback

    meter = RunMeter(gpu_hourly_usd=3.44)
    step_log = StepLogCallback(meter, tmp_path / "train_log.jsonl")
    step_log._t_step_end = _time.time() - 5.0  # the step ended 5 s ago; the evaluation ends now
    step_log.on_evaluate(SimpleNamespace(), SimpleNamespace(global_step=10), None)
    assert 5.0 <= meter.last_eval_s < 6.0


# The runbook's stage-1 command (README "GPU runbook", with the batch flags issue 16 quotes), on the tiny model:
# only --model-name, the data paths, --max-steps and --max-seq-length differ.
def _runbook_stage1(model, data, out) -> list[str]:
    return ["train", "--model-name", str(model), "--train-file", str(data), "--eval-file", str(data),
            "--output-dir", str(out), "--max-cost-usd", "40", "--per-device-train-batch-size", "2",
            "--gradient-accumulation-steps", "16", "--max-steps", "1", "--max-seq-length", "1024"]


@pytest.mark.slow
@pytest.mark.parametrize("extra, packed", [((), True), (("--no-packing",), False)])
def test_runbook_stage1_command_trains_packed_unless_no_packing(tiny_qwen3_dir, prepared, tmp_path, extra, packed):
    """Pasted as written (no --packing), the runbook trains packed with the automatic setup splitting its
    2 x 16 = 32-example global batch; --no-packing trains padded batches of those 32 examples."""
    from t2s_fast.cli import main
    from t2s_fast.train.autotune import packed_rows_for

    out = tmp_path / "stage1"
    main([*_runbook_stage1(tiny_qwen3_dir, prepared, out), *extra])  # returns (no SystemExit) on success
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["packing"] is packed and info["sft"]["packing"] is packed
    assert info["sft"]["padding_free"] is packed
    assert info["config"]["auto_setup"] is True  # explicit batch flags no longer turn the automatic setup off
    assert not any("--no-auto-setup" in r for r in info["setup"]["reasons"])
    if packed:  # the 32 examples become about as many tokens' worth of packed rows of 1024
        rows = packed_rows_for(32, info["data"]["train"]["mean_tokens"], 1024)
        assert abs(info["global_batch"] - rows) <= 1 and info["global_batch"] < 32
    else:
        assert info["global_batch"] == 32
    assert info["global_step"] == 1 and info["stop_reason"] == "completed"


@pytest.mark.slow
def test_no_auto_setup_keeps_the_batch_flags_as_given(tiny_qwen3_dir, prepared, tmp_path, monkeypatch):
    from t2s_fast.cli import main
    from t2s_fast.train import trainer

    seen = {}

    def prepare_only(cfg):  # everything up to the ready trainer, no training
        seen["run"] = trainer.prepare_run(cfg)
        raise SystemExit(0)

    monkeypatch.setattr(trainer, "train", prepare_only)
    with pytest.raises(SystemExit):  # raised by prepare_only, after the CLI built the config
        main([*_runbook_stage1(tiny_qwen3_dir, prepared, tmp_path / "fixed"), "--no-auto-setup"])
    args = seen["run"].trainer.args
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (2, 16)
    assert seen["run"].cfg.packing and not seen["run"].cfg.auto_setup


# --- train_data ---
def _line(sql="SELECT count(*) FROM singer", question="How many singers are there?", db_id="concert_singer"):
    schema = 'CREATE TABLE "singer" ("Singer_ID" INTEGER PRIMARY KEY, "Name" TEXT);'
    return {"id": "x", "source": "spider1", "db_id": db_id, "dialect": "sqlite", "question": question, "sql": sql,
            "messages": build_messages(dialect="sqlite", db_id=db_id, schema=schema, question=question, sql=sql)}


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("content, expect", [
    (None, "train file not found"),
    (['{"messages": [}'], ":1: malformed JSON"),
    ([_line(), {"id": 1}], ":2: missing field(s) 'messages'"),
    ([_line(), "", {"messages": [{"role": "user", "content": "q"}]}], ":3: the last message must be the assistant"),
    ([{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "SELECT 1"}]}], "role 'robot'"),
])
def test_bad_train_file_names_file_and_line(tmp_path, qwen3_tokenizer, content, expect):
    from t2s_fast.train.data import load_tokenized

    path = tmp_path / "train.jsonl"
    if content is not None:
        _write(path, content)
    with pytest.raises(T2SError, match=expect.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")) as exc:
        load_tokenized(path, qwen3_tokenizer, 1024)
    assert str(path) in str(exc.value)


def test_too_long_examples_are_dropped_not_truncated(tmp_path, qwen3_tokenizer):
    from t2s_fast.train.data import load_tokenized

    long_sql = "SELECT " + ", ".join(f"col_{i}" for i in range(300)) + " FROM singer"
    data = load_tokenized(_write(tmp_path / "t.jsonl", [_line(), _line(sql=long_sql)]), qwen3_tokenizer, 400)
    assert (data.n_read, data.n_examples, data.n_dropped_too_long) == (2, 1, 1)
    assert max(data.lengths) <= 400
    with pytest.raises(T2SError, match="longer than --max-seq-length"):
        load_tokenized(_write(tmp_path / "t2.jsonl", [_line(sql=long_sql)]), qwen3_tokenizer, 400)


def test_cli_missing_train_file_exits_2(tmp_path, capsys):
    from t2s_fast.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--train-file", str(tmp_path / "nope.jsonl"), "--output-dir", str(tmp_path / "run"),
              "--model-name", str(tmp_path / "no-model"), "--backend", "hf"])
    assert exc.value.code == 2
    assert "nope.jsonl" in capsys.readouterr().err


def _labelled_spans(labels, position_ids=None):
    """Contiguous runs of labelled tokens (label != -100), split at packed-sequence starts."""
    spans, cur = [], []
    for i, lab in enumerate(labels):
        starts_new = position_ids is not None and position_ids[i] == 0
        if lab == -100 or starts_new:
            if cur:
                spans.append(cur)
            cur = []
        if lab != -100:
            cur.append(lab)
    if cur:
        spans.append(cur)
    return spans


@pytest.mark.parametrize("packing", [False, True])
@pytest.mark.slow
def test_loss_mask_covers_exactly_sql_and_im_end_in_trainer_batches(tmp_path, qwen3_tokenizer, tiny_qwen3_dir, packing):
    """The labels the trainer trains on (dataset preparation + collator of the real SFTTrainer) are -100
    everywhere except the assistant's SQL and the <|im_end|> that ends it."""
    from t2s_fast.train.config import TrainConfig
    from t2s_fast.train.trainer import prepare_run

    sqls = ["SELECT count(*) FROM singer", "SELECT name , country , age FROM singer ORDER BY age DESC",
            "SELECT avg(age) , min(age) , max(age) FROM singer WHERE country = 'France'",
            "SELECT T2.name FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id"]
    rows = [_line(sql=s, question=f"question {i}?") for i, s in enumerate(sqls)]
    cfg = TrainConfig(model_name=str(tiny_qwen3_dir), train_file=str(_write(tmp_path / "t.jsonl", rows)),
                      output_dir=str(tmp_path / "run"), max_steps=1, backend="hf", max_seq_length=1024,
                      per_device_train_batch_size=4 if not packing else 1, gradient_accumulation_steps=1,
                      packing=packing, auto_setup=False)
    run = prepare_run(cfg)
    im_end = qwen3_tokenizer.convert_tokens_to_ids("<|im_end|>")
    seen = []
    for batch in run.trainer.get_train_dataloader():
        for r in range(batch["labels"].shape[0]):
            labels = batch["labels"][r].tolist()
            pos = batch["position_ids"][r].tolist() if "position_ids" in batch else None
            if not packing:
                assert "attention_mask" in batch
            ids = batch["input_ids"][r].tolist()
            for span in _labelled_spans(labels, pos):
                assert span[-1] == im_end
                seen.append(qwen3_tokenizer.decode(span[:-1]))
            # every labelled token is the input token at that position (labels are not shifted or altered)
            assert all(lab == tok for lab, tok in zip(labels, ids) if lab != -100)
    assert sorted(seen) == sorted(sqls)
    if packing:
        assert "position_ids" in batch and "attention_mask" not in batch  # padding-free: no compute on padding


# --- trainer_pieces ---
class FakeTrainer:
    def training_step(self, model, inputs, *args, **kwargs):
        return "stepped"

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return "trl loss"


def test_without_the_fused_kernel_the_loss_piece_is_used_and_logged(monkeypatch, caplog):
    monkeypatch.setattr(loss, "trl_fused_loss_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="t2s_fast.train.loss"):
        cls = trainer_class(FakeTrainer, RunMeter(gpu_hourly_usd=1.0))
    assert cls.__mro__[1:4] == (loss.LabelledPositionsLoss, CountTokens, CpuDistributedResume)
    assert any("labelled positions only" in r.getMessage() for r in caplog.records)


def test_with_the_fused_kernel_trl_keeps_its_loss(monkeypatch, caplog):
    monkeypatch.setattr(loss, "trl_fused_loss_available", lambda: True)
    with caplog.at_level(logging.INFO, logger="t2s_fast.train.loss"):
        cls = trainer_class(FakeTrainer, RunMeter(gpu_hourly_usd=1.0))
    assert loss.LabelledPositionsLoss not in cls.__mro__
    assert cls().compute_loss(None, {}) == "trl loss"
    assert not caplog.records


def test_the_token_count_reaches_the_meter(monkeypatch):
    monkeypatch.setattr(loss, "trl_fused_loss_available", lambda: True)
    meter = RunMeter(gpu_hourly_usd=1.0)
    trainer = trainer_class(FakeTrainer, meter)()
    batch = {"input_ids": torch.ones(2, 4, dtype=torch.long),
             "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]),
             "labels": torch.tensor([[-100, 5, 6, -100], [-100, 7, -100, -100]])}
    assert trainer.training_step(None, batch) == "stepped"
    assert meter.take_pending() == (5, 3)


def test_the_projection_counts_earlier_sessions_apart_from_loading():
    from t2s_fast.train.trainer import spent_text

    assert spent_text(12.4, 0.0) == "12 s already spent loading"
    assert spent_text(312.0, 300.0) == "12 s already spent loading + 300 s of the earlier session(s)"


# --- train_distributed ---
STEPS = 4


@pytest.fixture(scope="module")
def prepared_one_db(tmp_path_factory, spider1_dir) -> Path:
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
def runs(tmp_path_factory, tiny_qwen3_dir, prepared_one_db):
    root = tmp_path_factory.mktemp("ddp")
    single, ddp = root / "single", root / "ddp"
    _run([sys.executable, "-m", "t2s_fast", *_args(tiny_qwen3_dir, prepared_one_db, single)], root / "single.log")
    _torchrun(2, _args(tiny_qwen3_dir, prepared_one_db, ddp), root / "ddp.log")
    return single, ddp, root


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_distributed_run_resumes_from_its_checkpoint(runs, tiny_qwen3_dir, prepared_one_db):
    _, ddp, root = runs
    resumed = root / "resumed"
    shutil.copytree(ddp, resumed)
    shutil.rmtree(resumed / "checkpoints" / f"checkpoint-{STEPS}")  # as if killed after checkpoint 2
    _torchrun(2, [*_args(tiny_qwen3_dir, prepared_one_db, resumed), "--resume"], root / "resume.log")
    info = json.loads((resumed / "run.json").read_text())
    assert info["resumed_from"].endswith("checkpoint-2") and info["global_step"] == STEPS
    first, again = _steps(ddp), _steps(resumed)
    assert [r["step"] for r in again] == list(range(1, STEPS + 1))
    for a, b in zip(first[2:], again[2:]):  # steps 3-4 redone from the checkpoint: the same losses
        assert b["loss"] == pytest.approx(a["loss"], rel=2e-3, abs=2e-3)
