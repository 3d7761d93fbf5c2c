"""Stage 3 end to end on a CPU with a scaled-down Qwen3: the filter pass, TRL's GRPO loop (generation with
transformers, the execution reward, the optimizer step; log-probabilities from the full logits since CPU torch has
no triton), checkpoints that `eval --checkpoints` reads, the dollar meter, the budget stop, and resume after
SIGTERM and SIGKILL. A random model earns no reward, so what is checked is the machinery, not learning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DBS = ("concert_singer", "pets_1")
INTERRUPT = Path(__file__).parent / "pipeline_helpers" / "interrupt.py"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, spider1_dir) -> Path:
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


@pytest.fixture(scope="module")
def sft_adapter(tmp_path_factory, tiny_qwen3_dir, prepared) -> Path:
    from t2s_fast.train.config import TrainConfig
    from t2s_fast.train.trainer import train

    out = tmp_path_factory.mktemp("sft") / "stage1"
    train(TrainConfig(model_name=str(tiny_qwen3_dir), train_file=str(prepared), output_dir=str(out), backend="hf",
                      max_seq_length=1024, per_device_train_batch_size=2, gradient_accumulation_steps=1,
                      max_steps=1, auto_setup=False, packing=False))
    return out / "adapter"


def _settings(model, data, adapter, spider1_dir, out, **kw) -> dict:
    base = dict(model_name=str(model), train_file=str(data), adapter_path=str(adapter), db_root=str(spider1_dir),
                output_dir=str(out), filter_samples=2, filter_min_correct=0, filter_max_correct=2,
                num_generations=2, prompts_per_step=2, micro_batch_completions=2, max_completion_length=8,
                save_steps=1, reward_workers=1)
    base.update(kw)
    return base


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory, tiny_qwen3_dir, prepared, sft_adapter, spider1_dir):
    from t2s_fast.rl.config import RLConfig
    from t2s_fast.rl.trainer import train_rl

    out = tmp_path_factory.mktemp("rl") / "run"
    info = train_rl(RLConfig(**_settings(tiny_qwen3_dir, prepared, sft_adapter, spider1_dir, out, max_steps=2)))
    return out, info


def test_grpo_trains_from_the_sft_adapter_and_records_each_step(grpo_run):
    out, info = grpo_run
    assert info["stop_reason"] == "completed" and info["global_step"] == 2
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and (out / "rl_curves.png").is_file()
    filt = json.loads((out / "prompts" / "filter.json").read_text())
    assert filt["prompts"] == 8 and filt["kept"] == 8 and info["filter"]["kept"] == 8
    # the engine's start (about 2 minutes of a real filter pass's 2.4 on an H100) is timed apart from the sampling
    assert filt["engine_start_s"] >= 0 and filt["generation_s"] > 0 and filt["scoring_s"] >= 0
    rows = [r for r in _log(out) if r.get("reward") is not None]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        for key in ("loss", "reward", "frac_reward_zero_std", "completion_length", "generation_s", "reward_s",
                    "train_s", "match_rate", "cost_usd"):
            assert r[key] is not None, key
        assert r["generation_s"] > 0 and r["generation_s"] + r["reward_s"] <= r["step_time_s"] + 1e-6
        # every prompt and completion token trained on is counted; the loss is taken on the completions'
        assert 0 < r["loss_tokens"] < r["trained_tokens"] and r["train_tokens_per_s"] > 0
        # the micro-batches' positions, padding included, and the share of them that was padding
        assert r["batch_tokens"] >= r["trained_tokens"] and 0 <= r["padding_share"] < 1
    assert set(info["step_seconds_median"]) == {"total", "generation", "reward", "training"}
    assert info["train_tokens_per_s_median"] > 0
    assert info["cost_usd"] > rows[-1]["cost_usd"] > rows[0]["cost_usd"] > 0
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["adapter_path"] and run["stage"] == "rl" and run["engine"] == "trl"


def test_length_grouped_steps_run_through_trls_sampler_in_the_datasets_order(tmp_path, tiny_qwen3_dir, prepared,
                                                                            sft_adapter, spider1_dir):
    from t2s_fast.rl.config import RLConfig
    from t2s_fast.rl.trainer import train_rl

    out = tmp_path / "grouped"
    info = train_rl(RLConfig(**_settings(tiny_qwen3_dir, prepared, sft_adapter, spider1_dir, out, max_steps=2,
                                         length_grouped_steps=2)))
    assert info["stop_reason"] == "completed" and info["global_step"] == 2
    assert json.loads((out / "run.json").read_text())["config"]["length_grouped_steps"] == 2
    assert info["padding_share_median"] is not None


def test_a_filter_pass_in_the_trainers_engine_trains_on_the_kept_prompts_only(tmp_path, tiny_qwen3_dir, prepared,
                                                                              sft_adapter, spider1_dir, monkeypatch):
    """--filter-engine colocated: the trainer is built on every prompt, the pass samples through it (here a
    stand-in for the colocated vLLM engine, which a CPU has not), and training then takes the kept prompts."""
    from t2s_fast.errors import T2SError
    from t2s_fast.rl import engines
    from t2s_fast.rl.config import RLConfig
    from t2s_fast.rl.trainer import train_rl

    rows = [json.loads(line) for line in prepared.read_text().splitlines()]
    seen = []

    def sampler(trainer, temperature):
        seen.append(len(trainer.train_dataset))  # built on every prompt, before the pass

        def sample(prompts, k):  # right on concert_singer (every sample), wrong elsewhere
            gold = [next(r["sql"] for r in rows if r["question"] in p) for p in prompts]
            return [[g if "concert" in p else "SELECT 0" for _ in range(k)] for g, p in zip(gold, prompts)]
        return sample

    monkeypatch.setattr(engines, "samples_in_trainer", lambda cfg, engine: True)
    monkeypatch.setattr(engines, "colocated_sampler", sampler)
    out = tmp_path / "colocated"
    info = train_rl(RLConfig(**_settings(tiny_qwen3_dir, prepared, sft_adapter, spider1_dir, out, max_steps=2,
                                         filter_engine="colocated", filter_min_correct=1)))
    assert seen == [8] and info["stop_reason"] == "completed" and info["global_step"] == 2
    assert info["filter"]["kept"] == 4 and info["filter"]["generator"] == "colocated"
    # every step's prompts come from the kept ones, each with the pass rate the pass gave it
    assert [r["start_match_rate"] for r in _log(out) if r.get("reward") is not None] == [1.0, 1.0]

    # a pass that keeps nothing is refused after the trainer was built, and leaves no run behind but the pass
    monkeypatch.setattr(engines, "colocated_sampler", lambda trainer, temperature: lambda prompts, k: [["SELECT 0"] * k
                                                                                                      for _ in prompts])
    empty = tmp_path / "empty"
    with pytest.raises(T2SError, match="no prompt survived the filter"):
        train_rl(RLConfig(**_settings(tiny_qwen3_dir, prepared, sft_adapter, spider1_dir, empty, max_steps=2,
                                      filter_engine="colocated", filter_min_correct=1)))
    assert (empty / "prompts" / "pass.json").is_file()
    assert not any((empty / name).exists() for name in ("run.json", "adapter", "checkpoints", "train_log.jsonl"))


def test_checkpoints_are_what_eval_checkpoints_reads(grpo_run):
    from t2s_fast.adapters import ADAPTER_WEIGHTS, is_adapter_dir
    from t2s_fast.evaluate.checkpoints import checkpoint_adapters

    out, _ = grpo_run
    for step in (1, 2):
        ckpt = out / "checkpoints" / f"checkpoint-{step}"
        assert is_adapter_dir(ckpt) and (ckpt / ADAPTER_WEIGHTS[0]).is_file()
    # a random model earns no reward, so no step changed the weights: eval evaluates them once, as the final adapter
    assert checkpoint_adapters(out) == {"final": str(out / "adapter")}


def test_resume_continues_from_the_checkpoint_and_keeps_the_dollars(grpo_run, tmp_path, tiny_qwen3_dir, prepared,
                                                                    sft_adapter, spider1_dir):
    import shutil

    from t2s_fast.rl.config import RLConfig
    from t2s_fast.rl.trainer import train_rl

    src, first = grpo_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    info = train_rl(RLConfig(**_settings(tiny_qwen3_dir, prepared, sft_adapter, spider1_dir, out, max_steps=3,
                                         resume=True)))
    assert info["global_step"] == 3 and info["resumed_from"].endswith("checkpoint-2")
    assert info["cost_usd"] > first["cost_usd"]  # the first session's time still counts
    assert [r["step"] for r in _log(out) if r.get("reward") is not None] == [1, 2, 3]


def test_a_used_folder_without_resume_is_refused(grpo_run, tiny_qwen3_dir, prepared, sft_adapter, spider1_dir):
    from t2s_fast.errors import T2SError
    from t2s_fast.rl.config import RLConfig
    from t2s_fast.rl.trainer import train_rl

    out, _ = grpo_run
    with pytest.raises(T2SError, match="--resume"):
        train_rl(RLConfig(**_settings(tiny_qwen3_dir, prepared, sft_adapter, spider1_dir, out, max_steps=2)))


def test_the_budget_stops_the_run_with_what_it_trained_saved(tmp_path, tiny_qwen3_dir, prepared, sft_adapter,
                                                             spider1_dir, monkeypatch):
    from t2s_fast.rl.config import RLConfig
    from t2s_fast.rl.trainer import train_rl
    from t2s_fast.train.budget import RunMeter

    # The run's clock, made independent of this machine's load: 30 s before the first step, then 10 s a step.
    monkeypatch.setattr(RunMeter, "elapsed_s", lambda self: 30.0 + 10.0 * len(self.steps))
    cap = 60.0 * 3.44 / 3600  # 60 s at $3.44/h: room for the start and at most 3 steps, the run wants 20
    info = train_rl(RLConfig(**_settings(tiny_qwen3_dir, prepared, sft_adapter, spider1_dir, tmp_path / "run",
                                         max_steps=20, max_cost_usd=cap, filter_samples=0)))
    assert info["stop_reason"] == "budget" and 1 <= info["global_step"] <= 3
    assert info["cost_usd_at_stop"] <= cap  # stopped before the next step could pass the cap
    assert info["adapter_dir"] and (Path(info["adapter_dir"]) / "adapter_model.safetensors").is_file()


def _wait_for(path: Path, proc, timeout=300):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.5)


def test_sigterm_then_sigkill_then_the_same_command_finishes_the_run(tmp_path, tiny_qwen3_dir, prepared, sft_adapter,
                                                                     spider1_dir):
    out = tmp_path / "run"
    cfg = tmp_path / "rl.json"
    cfg.write_text(json.dumps(_settings(tiny_qwen3_dir, prepared, sft_adapter, spider1_dir, out, max_steps=4)))
    cmd = ["rl", "--config", str(cfg)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start(hold_at: int, *extra):  # the run waits after checkpoint `hold_at` for a signal: no race with its steps
        return subprocess.Popen([sys.executable, str(INTERRUPT), "hold-after-checkpoint", out.name, str(hold_at),
                                 *cmd, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    proc = start(1)
    _wait_for(out / "checkpoints" / "checkpoint-1" / "t2s_checkpoint_complete", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    stopped = json.loads((out / "run.json").read_text())
    assert stopped["stop_reason"] == "interrupted" and (out / "adapter").is_dir()
    assert stopped["global_step"] == 2  # the signal came after step 1: it trained step 2, saved, and stopped

    proc = start(3, "--resume")
    _wait_for(out / "checkpoints" / "checkpoint-3" / "t2s_checkpoint_complete", proc)
    proc.kill()  # SIGKILL: no run.json update, no adapter save
    proc.communicate(timeout=60)
    killed_cost = max(r["cost_usd"] for r in _log(out) if "cost_usd" in r)

    done = subprocess.run([sys.executable, "-m", "t2s_fast", *cmd, "--resume"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["stop_reason"] == "completed" and info["global_step"] == 4
    assert info["resumed_from"].endswith("checkpoint-3")
    assert info["cost_usd"] > killed_cost >= stopped["cost_usd"]  # no session's dollars forgotten
    assert [r["step"] for r in _log(out) if r.get("reward") is not None] == [1, 2, 3, 4]
