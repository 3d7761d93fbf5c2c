"""Stage 3's reward and prompt filter: what GRPO learns from is scored exactly as `eval` scores, cannot touch a
database, is cut by the executor's limits, and only prompts with reward variance are kept."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t2s_fast.errors import T2SError
from t2s_fast.rl.config import RLConfig
from t2s_fast.rl.prompts import filter_prompts, keep_by_pass_rate, load_training_rows, prompts_dir
from t2s_fast.rl.reward import ExecutionReward, reward_of

GOLD = "SELECT count(*) FROM singer"


@pytest.fixture()
def db_root(spider1_dir, tmp_path) -> Path:
    """A copy of one real Spider database in the <db_id>/<db_id>.sqlite layout (never the shared file)."""
    dst = tmp_path / "database" / "concert_singer" / "concert_singer.sqlite"
    dst.parent.mkdir(parents=True)
    shutil.copy2(spider1_dir / "database" / "concert_singer" / "concert_singer.sqlite", dst)
    return tmp_path / "database"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reward(db_root, completions, shape="arctic", timeout_s=5.0):
    fn = ExecutionReward(str(db_root), shape=shape, workers=2, timeout_s=timeout_s)
    return fn(prompts=[""] * len(completions), completions=completions, gold=[GOLD] * len(completions),
              db_id=["concert_singer"] * len(completions)), fn


def test_match_executes_and_fails_get_arctic_rewards(db_root):
    rewards, fn = _reward(db_root, [
        "```sql\nSELECT COUNT(*) FROM singer\n```",  # the gold's result, in a fenced answer
        "SELECT name FROM singer",  # executes, another result
        "SELECT nonsense FROM nowhere",  # fails
        "I cannot answer that.",  # no SQL at all
    ])
    assert rewards == [1.0, 0.1, 0.0, 0.0]
    stats = fn.take_stats()
    assert stats["match_rate"] == 0.25 and stats["fail_rate"] == 0.5 and stats["reward_s"] >= 0
    assert fn.take_stats() == {}  # taken once


def test_binary_shape_gives_nothing_for_sql_that_only_executes(db_root):
    rewards, _ = _reward(db_root, ["SELECT count(*) FROM singer", "SELECT name FROM singer"], shape="binary")
    assert rewards == [1.0, 0.0]


@pytest.mark.parametrize("sql", ["DROP TABLE singer", "DELETE FROM singer", "UPDATE singer SET Name = 'x'",
                                 "ATTACH DATABASE 'evil.sqlite' AS evil", "PRAGMA writable_schema = ON",
                                 "VACUUM", "INSERT INTO singer (Singer_ID, Name) VALUES (99, 'x')"])
def test_hostile_sql_scores_zero_and_leaves_the_database_byte_identical(db_root, sql):
    db = db_root / "concert_singer" / "concert_singer.sqlite"
    before, files = _sha(db), sorted(p.name for p in db.parent.iterdir())
    rewards, _ = _reward(db_root, [sql])
    assert rewards == [0.0]
    assert _sha(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == files


def test_only_the_first_statement_of_a_completion_runs(db_root):
    db = db_root / "concert_singer" / "concert_singer.sqlite"
    before = _sha(db)
    rewards, _ = _reward(db_root, ["SELECT 1; DROP TABLE singer"])
    assert rewards == [0.1]  # `SELECT 1` executed (eval extracts the same first statement); the DROP never ran
    assert _sha(db) == before


def test_a_query_that_hangs_is_cut_at_the_timeout_and_scores_zero(db_root):
    hang = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"
    t0 = time.time()
    rewards, _ = _reward(db_root, [hang, "SELECT count(*) FROM singer"], timeout_s=1.0)
    assert rewards == [0.0, 1.0]
    assert time.time() - t0 < 20


def test_a_huge_result_is_cut_and_never_matches(db_root):
    huge = "SELECT * FROM singer a, singer b, singer c, singer d, singer e, singer f"  # 6^6 x 42 columns
    rewards, _ = _reward(db_root, [huge])
    assert rewards[0] < 1.0


def test_reward_of_reads_the_scorer_verdict():
    assert reward_of({"exec_match": True, "error_kind": None}) == 1.0
    assert reward_of({"exec_match": False, "error_kind": None}) == 0.1
    assert reward_of({"exec_match": False, "error_kind": "timeout"}) == 0.0


# ------------------------------------------------------------------------------------------ the prompt filter
def test_the_filter_keeps_prompts_answered_right_sometimes():
    counts = [{"id": str(c), "correct": c} for c in range(9)]
    assert [r["correct"] for r in keep_by_pass_rate(counts, 1, 7)] == [1, 2, 3, 4, 5, 6, 7]
    assert [r["correct"] for r in keep_by_pass_rate(counts, 2, 6)] == [2, 3, 4, 5, 6]
    cfg = RLConfig(train_file="t", adapter_path="a", db_root="d", output_dir="o", filter_samples=16)
    assert cfg.max_correct == 15  # default: never all right


def _train_file(tmp_path, spider1_dir, dbs=("concert_singer", "pets_1"), n=3) -> Path:
    rows = json.loads((spider1_dir / "dev.json").read_text())
    out = []
    for db in dbs:
        for r in [r for r in rows if r["db_id"] == db][:n]:
            out.append({"id": f"{db}-{len(out)}", "db_id": db, "dialect": "sqlite", "question": r["question"],
                        "sql": r["query"], "messages": [{"role": "system", "content": "sql"},
                                                        {"role": "user", "content": r["question"]},
                                                        {"role": "assistant", "content": r["query"]}]})
    out.append({"id": "bq", "db_id": "x", "dialect": "bigquery", "question": "q", "sql": "SELECT 1", "messages": []})
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in out))
    return path


def test_training_rows_are_the_sqlite_prompts_whose_database_is_there(tmp_path, spider1_dir, db_root):
    cfg = RLConfig(train_file=str(_train_file(tmp_path, spider1_dir)), adapter_path="a", db_root=str(db_root),
                   output_dir=str(tmp_path / "rl"))
    rows = load_training_rows(cfg)
    assert [r["db_id"] for r in rows] == ["concert_singer"] * 3  # pets_1 is not under this root, bigquery skipped
    assert all(m["role"] != "assistant" for r in rows for m in r["messages"])  # the prompt only
    cfg.max_prompts = 2
    assert len(load_training_rows(cfg)) == 2


def test_a_reward_that_cannot_reach_the_databases_is_refused(tmp_path, spider1_dir):
    (tmp_path / "empty").mkdir()
    cfg = RLConfig(train_file=str(_train_file(tmp_path, spider1_dir)), adapter_path="a",
                   db_root=str(tmp_path / "empty"), output_dir=str(tmp_path / "rl"))
    with pytest.raises(T2SError, match="cannot reach the databases"):
        load_training_rows(cfg)


def _finished_pass(cfg: RLConfig, correct: list[int]) -> None:
    """A sampling pass as the child process leaves it (pass_counts.jsonl, then pass.json)."""
    from t2s_fast.jsonl import write_json, write_jsonl
    from t2s_fast.rl.prompts import settings_key

    rows = load_training_rows(cfg)
    prompts_dir(cfg).mkdir(parents=True)
    write_jsonl(prompts_dir(cfg) / "pass_counts.jsonl",
                [{**r, "correct": c, "samples": cfg.filter_samples} for r, c in zip(rows, correct)])
    write_json(prompts_dir(cfg) / "pass.json", {"settings_key": settings_key(cfg), "samples": 3 * len(rows)})


@pytest.fixture()
def adapter(tmp_path) -> Path:
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 8, "peft_type": "LORA"}))
    (d / "adapter_model.safetensors").write_bytes(b"weights")
    return d


def test_a_finished_pass_is_reused_and_other_thresholds_refilter_it(tmp_path, spider1_dir, db_root, adapter):
    cfg = RLConfig(train_file=str(_train_file(tmp_path, spider1_dir)), adapter_path=str(adapter),
                   db_root=str(db_root), output_dir=str(tmp_path / "rl"), filter_samples=3)
    _finished_pass(cfg, [0, 2, 3])
    kept, info = filter_prompts(cfg)  # no child process: the pass is there with these settings
    assert [k["correct"] for k in kept] == [2]
    assert (info["prompts"], info["kept"], info["never_right"], info["always_right"]) == (3, 1, 1, 1)
    assert json.loads((prompts_dir(cfg) / "filter.json").read_text())["kept"] == 1
    cfg.filter_max_correct = 3
    assert [k["correct"] for k in filter_prompts(cfg)[0]] == [2, 3]


def test_an_empty_filtered_set_is_refused_and_leaves_no_run(tmp_path, spider1_dir, db_root, adapter):
    cfg = RLConfig(train_file=str(_train_file(tmp_path, spider1_dir)), adapter_path=str(adapter),
                   db_root=str(db_root), output_dir=str(tmp_path / "rl"), filter_samples=3)
    _finished_pass(cfg, [0, 0, 3])
    with pytest.raises(T2SError, match="no prompt survived the filter"):
        filter_prompts(cfg)
    out = Path(cfg.output_dir)
    assert not (out / "run.json").exists() and not (out / "checkpoints").exists() and not (out / "adapter").exists()


class _FakeColocatedGeneration:
    """TRL's VLLMGeneration as the colocated sampler uses it: a weight sync, then token prompts in (one row per
    completion) and completion ids out; ``answer(prompt_text, k)`` is the k-th completion of a prompt."""

    def __init__(self, tokenizer, answer, fail=False):
        self.tokenizer, self.answer, self.fail = tokenizer, answer, fail
        self.temperature, self.syncs, self.calls = 1.0, 0, []

    def sync_weights(self):
        self.syncs += 1

    def generate(self, prompts, images, num_generations):
        self.calls.append({"temperature": self.temperature, "prompts": prompts, "n": num_generations})
        if self.fail:
            raise RuntimeError("engine died")
        end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        ids = [self.tokenizer(self.answer(self.tokenizer.decode(p), i % num_generations),
                              add_special_tokens=False)["input_ids"] + [end] for i, p in enumerate(prompts)]
        return prompts, ids, None, None


def test_the_colocated_sampler_gives_k_completions_per_prompt_in_order_at_the_filters_temperature(qwen3_tokenizer):
    from types import SimpleNamespace

    from t2s_fast.rl.engines import colocated_sampler

    gen = _FakeColocatedGeneration(qwen3_tokenizer, lambda prompt, k: f"SELECT {k} -- {prompt[-3:]}")
    sample = colocated_sampler(SimpleNamespace(vllm_generation=gen, processing_class=qwen3_tokenizer), 0.7)
    prompts = ["<|im_start|>user\nq one<|im_end|>\n<|im_start|>assistant\n", "plain two"]
    assert sample(prompts, 3) == [[f"SELECT {k} -- {prompts[0][-3:]}" for k in range(3)],
                                  [f"SELECT {k} -- two" for k in range(3)]]
    call = gen.calls[0]
    # each prompt tokenized as TRL tokenizes a text prompt, once per completion, in order
    ids = qwen3_tokenizer(text=prompts)["input_ids"]
    assert call["prompts"] == [ids[0]] * 3 + [ids[1]] * 3 and call["n"] == 3
    # the filter's temperature while it samples; the rollouts' own again afterwards
    assert call["temperature"] == 0.7 and gen.temperature == 1.0
    sample(prompts[:1], 2)
    assert gen.syncs == 1  # the starting adapter's weights go to the engine once
    gen.fail = True
    with pytest.raises(RuntimeError):
        sample(prompts, 2)
    assert gen.temperature == 1.0


def test_a_pass_through_a_running_engine_is_written_as_the_separate_pass_and_reused(tmp_path, spider1_dir,
                                                                                    db_root, adapter):
    from t2s_fast.rl.prompts import finished_pass, run_pass_with

    cfg = RLConfig(train_file=str(_train_file(tmp_path, spider1_dir)), adapter_path=str(adapter),
                   db_root=str(db_root), output_dir=str(tmp_path / "rl"), filter_samples=2, reward_workers=1)
    rows = load_training_rows(cfg)
    gold = {r["messages"][-1]["content"]: r["gold"] for r in rows}
    right = {q: n for q, n in zip(gold, (2, 1, 0))}  # right samples of each prompt

    def sample(prompts, k):
        return [[gold[p] if i < right[p] else "SELECT nonsense FROM nowhere" for i in range(k)] for p in prompts]

    info = run_pass_with(cfg, rows, sample, [r["messages"][-1]["content"] for r in rows], "colocated")
    assert info["generator"] == "colocated" and info["engine_start_s"] == 0 and info["samples"] == 6
    assert finished_pass(cfg) is not None  # a resumed run, or a run with other thresholds, reuses it
    kept, summary = filter_prompts(cfg)
    assert [k["correct"] for k in kept] == [1] and summary["pass_count_histogram"] == {"0": 1, "1": 1, "2": 1}


def test_colocated_filter_sampling_needs_the_trl_engine_with_vllm_on_a_gpu(caplog):
    from t2s_fast.rl.engines import on_gpu, samples_in_trainer

    if on_gpu():
        pytest.skip("checks the CPU fallback")
    cfg = RLConfig(train_file="t", adapter_path="a", db_root="d", output_dir="o")
    assert cfg.filter_engine == "colocated"  # the default: no engine start of its own where it can
    with caplog.at_level("INFO"):
        assert samples_in_trainer(cfg, "trl") is False
    assert "takes an engine of its own" in caplog.text
    separate = RLConfig(train_file="t", adapter_path="a", db_root="d", output_dir="o", filter_engine="separate")
    assert samples_in_trainer(separate, "trl") is False


# ------------------------------------------------------------------------------------------ config and CLI
@pytest.mark.parametrize("change, message", [
    ({"num_generations": 1}, "at least 2"),
    ({"filter_min_correct": 5, "filter_samples": 4}, "min <= max"),
    ({"prompts_per_step": 3, "num_generations": 4, "micro_batch_completions": 8}, "multiple of"),
    ({"max_steps": 0}, "nothing to train"),
    ({"engine": "fast"}, "--engine"),
    ({"reward": "shaped"}, "--reward"),
    ({"filter_engine": "shared"}, "--filter-engine"),
    ({"max_cost_usd": 0.0}, "--max-cost-usd"),
])
def test_bad_settings_are_refused(change, message):
    cfg = RLConfig(train_file="t", adapter_path="a", db_root="d", output_dir="o", **change)
    with pytest.raises(T2SError, match=message):
        cfg.validate()


def _rl_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "t2s_fast", "rl", *args], capture_output=True, text=True, cwd=cwd)


def test_a_missing_adapter_exits_2_and_writes_nothing(tmp_path, spider1_dir, db_root):
    out = tmp_path / "rl"
    proc = _rl_cli("--train-file", str(_train_file(tmp_path, spider1_dir)), "--adapter-path", str(tmp_path / "nope"),
                   "--db-root", str(db_root), "--output-dir", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "--adapter-path" in proc.stderr and "nope" in proc.stderr
    assert not out.exists()


def test_databases_out_of_reach_exit_2_and_write_nothing(tmp_path, spider1_dir, adapter):
    out = tmp_path / "rl"
    (tmp_path / "elsewhere").mkdir()
    proc = _rl_cli("--train-file", str(_train_file(tmp_path, spider1_dir)), "--adapter-path", str(adapter),
                   "--db-root", str(tmp_path / "elsewhere"), "--output-dir", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "cannot reach the databases" in proc.stderr
    assert not out.exists()


def test_a_config_file_key_that_is_no_setting_exits_2_naming_it(tmp_path):
    cfg = tmp_path / "rl.json"
    cfg.write_text(json.dumps({"train_file": "t", "adapter_path": "a", "db_root": "d", "output_dir": "o",
                               "num_generation": 8}))
    proc = _rl_cli("--config", str(cfg))
    assert proc.returncode == 2 and "num_generation" in proc.stderr and str(cfg) in proc.stderr


def test_filter_samples_0_keeps_every_prompt_without_a_pass(tmp_path, spider1_dir, db_root, adapter):
    cfg = RLConfig(train_file=str(_train_file(tmp_path, spider1_dir)), adapter_path=str(adapter),
                   db_root=str(db_root), output_dir=str(tmp_path / "rl"), filter_samples=0)
    kept, info = filter_prompts(cfg.validate())
    assert len(kept) == 3 and info["kept"] == 3 and not prompts_dir(cfg).exists()


def test_the_step_log_keeps_trls_per_token_sync_figures_and_the_progress_line_shows_them(tmp_path, capsys):
    """On a GPU, TRL's importance-sampling correction compares vLLM's log-probability of every sampled token with
    the training model's: the step log keeps that difference (the weight-sync check on every step) and the
    progress line shows it. A CPU run has no vLLM and no such figure."""
    from types import SimpleNamespace

    from t2s_fast.jsonl import read_jsonl
    from t2s_fast.rl.callbacks import RLProgress, RLStepLog, StepClock
    from t2s_fast.train.budget import RunMeter

    meter, log_path = RunMeter(gpu_hourly_usd=3.44), tmp_path / "train_log.jsonl"
    reward = SimpleNamespace(take_stats=lambda: {"match_rate": 0.5})
    step_log, progress = RLStepLog(meter, log_path, StepClock(), reward), RLProgress(meter)
    state = SimpleNamespace(global_step=1, epoch=0.1, max_steps=10)
    step_log.on_train_begin(None, state, None)
    meter.pending_tokens = 1000
    step_log.on_step_end(None, state, None)
    logs = {"loss": 0.01, "reward": 0.4, "frac_reward_zero_std": 0.25, "completions/mean_length": 40.0,
            "sampling/sampling_logp_difference/mean": 0.0123, "sampling/sampling_logp_difference/max": 0.9,
            "sampling/importance_sampling_ratio/mean": 1.001, "sampling/importance_sampling_ratio/min": 0.0}
    progress.on_log(None, state, None, logs=logs)
    step_log.on_log(None, state, None, logs=logs)
    (row,) = read_jsonl(log_path)
    assert row["sync_logp_diff_mean"] == 0.0123 and row["sync_logp_diff_max"] == 0.9
    assert row["importance_ratio_mean"] == 1.001 and row["importance_ratio_min"] == 0.0
    assert row["reward"] == 0.4 and row["match_rate"] == 0.5
    assert "sync dlogp 0.012" in capsys.readouterr().err

    state.global_step = 2
    step_log.on_step_end(None, state, None)
    cpu_logs = {"loss": 0.02, "reward": 0.5}  # no vLLM: no sync figure, and the line says nothing of it
    progress.on_log(None, state, None, logs=cpu_logs)
    step_log.on_log(None, state, None, logs=cpu_logs)
    assert "sync_logp_diff_mean" not in read_jsonl(log_path)[-1] and "sync" not in capsys.readouterr().err


def test_the_vllm_cache_dir_reaches_the_filter_engine_and_the_colocated_one(tmp_path, spider1_dir, db_root,
                                                                            tiny_qwen3_dir, monkeypatch):
    """--vllm-cache-dir goes to the filter pass's engine (as eval's does) and becomes VLLM_CACHE_ROOT before the
    in-process engine is built, so the second engine of a run reuses the first one's compiled graphs."""
    import t2s_fast.generate.engines as engines
    from t2s_fast.rl.engines import use_engine_cache
    from t2s_fast.rl.prompts import sample_pass_counts

    seen = {}

    def capture(backend, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("captured")

    monkeypatch.setattr(engines, "make_generator", capture)
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "not-this-one"))  # restored after the test
    cache = tmp_path / "vllm-cache"
    cfg = RLConfig(train_file=str(_train_file(tmp_path, spider1_dir)), adapter_path=str(tmp_path / "a"),
                   db_root=str(db_root), output_dir=str(tmp_path / "rl"), model_name=str(tiny_qwen3_dir),
                   vllm_cache_dir=str(cache))
    with pytest.raises(RuntimeError, match="captured"):
        sample_pass_counts(cfg, load_training_rows(cfg))
    assert seen["vllm_cache_dir"] == str(cache)
    use_engine_cache(cfg, "trl")  # on a CPU the trl engine generates with transformers: no vLLM to point
    assert not cache.exists()
    use_engine_cache(cfg, "unsloth")  # Unsloth's fast_inference always builds a vLLM engine
    assert Path(os.environ["VLLM_CACHE_ROOT"]) == cache.resolve() and cache.is_dir()


def test_the_unsloth_engine_is_imported_before_transformers_peft_and_trl(tmp_path, spider1_dir, db_root, adapter):
    """Unsloth patches transformers, peft and trl when it is imported first (otherwise it warns that it may run
    slower). A stand-in `unsloth` package records what `t2s-fast rl --engine unsloth` had imported by then."""
    fake = tmp_path / "fake" / "unsloth"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import json, os, sys\n"
        "json.dump({m: m in sys.modules for m in ('transformers', 'peft', 'trl')}, open(os.environ['SEEN'], 'w'))\n"
        "raise SystemExit(7)\n")
    seen = tmp_path / "seen.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")]),
           "SEEN": str(seen)}
    proc = subprocess.run([sys.executable, "-m", "t2s_fast", "rl", "--engine", "unsloth", "--filter-samples", "0",
                           "--train-file", str(_train_file(tmp_path, spider1_dir)), "--adapter-path", str(adapter),
                           "--db-root", str(db_root), "--output-dir", str(tmp_path / "rl"), "--max-steps", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 7, proc.stderr[-2000:]
    assert json.loads(seen.read_text()) == {"transformers": False, "peft": False, "trl": False}
