"""The prompts GRPO learns from, and the filter pass that chooses them.

A group of completions whose rewards are all equal has no advantage to learn from: a prompt the starting adapter
always answers right, or never, wastes its step (a community 1.5B run with an outcome-only reward found 70% of
its groups so and gained nothing; ACE-SQL kept only prompts 2-14 of 16 rollouts got right). So one pass of the
starting adapter samples K completions per training prompt, scores them with the reward's executor, and keeps
the prompts answered right at least ``filter_min_correct`` and at most ``filter_max_correct`` times.

The prompt is the training prompt itself, rendered by the one prompt builder (`prompt.render_prompt`), the text
`eval` gives the model for the same line. The sampling pass writes ``prompts/pass_counts.jsonl`` (every prompt
with its count of right samples) and ``prompts/pass.json``; a finished pass with the same settings is reused, so
a resumed run does not pay twice, and other thresholds re-filter it at once. The rule's result goes to
``prompts/filtered.jsonl`` and its summary (counts, the histogram) to ``prompts/filter.json``.
By default the pass runs in its own process (`python -m t2s_fast.rl.prompts SETTINGS.json`) so that its vLLM
engine's GPU memory is free again before training starts its own. With --filter-engine colocated it samples in
the training process's colocated engine instead (`run_pass_with`, called by the trainer once it is built): one
engine start fewer, fewer sequences at once.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.jsonl import iter_numbered_jsonl, read_json, read_jsonl, write_json, write_jsonl
from t2s_fast.rl.config import RLConfig

FILTER_SETTINGS = ("train_file", "adapter_path", "model_name", "filter_samples", "filter_temperature",
                   "max_completion_length", "max_prompts", "seed", "reward", "reward_timeout_s")


def prompts_dir(cfg: RLConfig) -> Path:
    return Path(cfg.output_dir) / "prompts"


def load_training_rows(cfg: RLConfig) -> list[dict]:
    """The SQLite lines of the train file whose database is under --db-root: id, db_id, gold, messages (the
    prompt's part). Seeded sample of --max-prompts. Refuses a file without usable lines, and a --db-root where
    the reward reaches none of the file's databases."""
    from t2s_fast.sql.scorer import db_path_for, resolve_db_root

    path = Path(cfg.train_file)
    if not path.is_file():
        raise T2SError(f"--train-file {path}: no such file")
    root = Path(cfg.db_root)
    if not root.is_dir():
        raise T2SError(f"--db-root {root}: no such folder; the reward executes SQL on the training databases there")
    root = resolve_db_root(root)
    rows, missing = [], set()
    for lineno, rec in iter_numbered_jsonl(path, required=("db_id", "sql", "messages")):
        if str(rec.get("dialect") or "sqlite").lower() != "sqlite":
            continue
        if not db_path_for(root, rec["db_id"]).is_file():
            missing.add(rec["db_id"])
            continue
        prompt = [m for m in rec["messages"] if m.get("role") != "assistant"]
        rows.append({"id": str(rec.get("id") or f"line-{lineno:05d}"), "db_id": rec["db_id"], "gold": rec["sql"],
                     "messages": prompt})
    if not rows:
        why = (f"the reward cannot reach the databases: none of the {len(missing)} databases it names is under "
               f"{root} (<db_id>/<db_id>.sqlite)") if missing else "it has no SQLite question"
        raise T2SError(f"--train-file {path}: no prompt to learn from: {why}")
    if cfg.max_prompts is not None and len(rows) > cfg.max_prompts:
        rows = random.Random(cfg.seed).sample(rows, cfg.max_prompts)
    return rows


def keep_by_pass_rate(counts: list[dict], min_correct: int, max_correct: int) -> list[dict]:
    """The rows (each with ``correct`` of ``samples``) answered right sometimes: min <= correct <= max."""
    return [c for c in counts if min_correct <= c["correct"] <= max_correct]


def settings_key(cfg: RLConfig) -> str:
    from t2s_fast.adapters import weights_sha

    d = {k: getattr(cfg, k) for k in FILTER_SETTINGS}
    d["adapter_weights"] = weights_sha(cfg.adapter_path)
    d["train_file_sha"] = hashlib.sha256(Path(cfg.train_file).read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def finished_pass(cfg: RLConfig) -> dict | None:
    """pass.json of a finished sampling pass made with these settings, else None."""
    marker = prompts_dir(cfg) / "pass.json"
    if not marker.is_file() or not (prompts_dir(cfg) / "pass_counts.jsonl").is_file():
        return None
    info = read_json(marker)
    return info if info.get("settings_key") == settings_key(cfg) else None


def count_right(cfg: RLConfig, rows: list[dict], samples: dict[str, list[str]]) -> tuple[list[dict], float]:
    """Each row with its count of right samples (``samples``: row id -> its K completions as text), scored by the
    reward's executor; and the seconds that scoring took."""
    from t2s_fast.rl.reward import ExecutionReward

    ids = [r["id"] for r in rows for _ in samples[r["id"]]]
    by_row = {r["id"]: r for r in rows}
    reward = ExecutionReward(cfg.db_root, cfg.reward, cfg.reward_workers, cfg.reward_timeout_s)
    t0 = time.time()
    scored = reward.score([text for r in rows for text in samples[r["id"]]], [by_row[i]["gold"] for i in ids],
                          [by_row[i]["db_id"] for i in ids])
    correct = Counter()
    for i, s in zip(ids, scored):
        correct[i] += int(s["exec_match"])
    counts = [{**r, "correct": correct[r["id"]], "samples": len(samples[r["id"]])} for r in rows]
    return counts, round(time.time() - t0, 1)


def sample_pass_counts(cfg: RLConfig, rows: list[dict]) -> tuple[list[dict], dict]:
    """K samples of the starting adapter per prompt from an engine of its own, scored:
    [{id, db_id, gold, messages, correct, samples}] and the pass's timing."""
    from transformers import AutoTokenizer

    from t2s_fast.generate.base import GenRequest, GenSettings
    from t2s_fast.generate.engines import make_generator
    from t2s_fast.models import find_tokenizer_dir, resolve_model
    from t2s_fast.prompt import render_prompt

    model_path = resolve_model(cfg.model_name).path
    tokenizer_dir = find_tokenizer_dir(model_path, cfg.tokenizer)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    prompts = {r["id"]: render_prompt(tokenizer, r["messages"]) for r in rows}
    requests = [GenRequest(key=f"{r['id']}|{k}", adapter="start", prompt=prompts[r["id"]],
                           seed=cfg.seed * 1_000_003 + i * cfg.filter_samples + k)
                for i, r in enumerate(rows) for k in range(cfg.filter_samples)]
    settings = GenSettings(max_new_tokens=cfg.max_completion_length, temperature=cfg.filter_temperature,
                           seed=cfg.seed)
    t0 = time.time()
    generator = make_generator("auto", base_model=model_path, adapters={"start": cfg.adapter_path},
                               tokenizer_dir=tokenizer_dir, gpu_memory_utilization=0.85,
                               max_model_len=cfg.vllm_max_model_length, seed=cfg.seed,
                               vllm_cache_dir=cfg.vllm_cache_dir)
    t_ready = time.time()  # the engine's start (minutes on a GPU) is kept apart from the sampling itself
    try:
        results = []
        step = generator.batch_size or len(requests)
        for start in range(0, len(requests), step):
            results += generator.generate(requests[start:start + step], settings)
            print(f"filter: generated {len(results):,}/{len(requests):,} samples "
                  f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    finally:
        gen_s = time.time() - t_ready
        generator.close()
    samples = {r["id"]: [] for r in rows}
    for res in results:
        samples[res.key.rsplit("|", 1)[0]].append(res.text)
    counts, scoring_s = count_right(cfg, rows, samples)
    timing = {"engine_start_s": round(t_ready - t0, 1), "generation_s": round(gen_s, 1), "scoring_s": scoring_s,
              "samples": len(results), "generator": getattr(generator, "name", "?")}
    return counts, timing


def write_pass(cfg: RLConfig, counts: list[dict], timing: dict) -> dict:
    """pass_counts.jsonl (every prompt with its count of right samples), then pass.json (settings key, timing),
    whose presence marks a finished pass; returns pass.json's content."""
    out = prompts_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "pass_counts.jsonl", counts)
    info = {"settings_key": settings_key(cfg), "samples_per_prompt": cfg.filter_samples, **timing}
    write_json(out / "pass.json", info)  # last: its presence marks a finished pass
    return info


def run_filter_pass(cfg: RLConfig) -> dict:
    """The sampling pass with an engine of its own, in this process; returns pass.json's content."""
    rows = load_training_rows(cfg)
    counts, timing = sample_pass_counts(cfg, rows)
    return write_pass(cfg, counts, timing)


def run_pass_with(cfg: RLConfig, rows: list[dict], sample, prompts: list[str], name: str) -> dict:
    """The sampling pass through an engine that is already running (the training process's colocated one):
    ``sample(prompts, k)`` returns k completions (text) per prompt, in order; ``prompts`` are ``rows`` rendered
    by the one prompt builder. Writes the pass as `run_filter_pass` does; returns pass.json's content."""
    t0 = time.time()
    samples = {}
    chunk = 256  # prompts per call: progress, a bounded request list, and a short tail at its end
    for start in range(0, len(rows), chunk):
        texts = sample(prompts[start:start + chunk], cfg.filter_samples)
        for r, k_texts in zip(rows[start:start + chunk], texts):
            samples[r["id"]] = list(k_texts)
        print(f"filter: generated {len(samples) * cfg.filter_samples:,}/{len(rows) * cfg.filter_samples:,} "
              f"samples in the {name} engine ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    gen_s = round(time.time() - t0, 1)
    counts, scoring_s = count_right(cfg, rows, samples)
    return write_pass(cfg, counts, {"engine_start_s": 0.0, "generation_s": gen_s, "scoring_s": scoring_s,
                                    "samples": sum(len(v) for v in samples.values()), "generator": name})


def summarize_filter(cfg: RLConfig, counts: list[dict], kept: list[dict], pass_info: dict) -> dict:
    """filter.json: how many prompts there were, how many survive the rule, the histogram of right samples."""
    hist = Counter(c["correct"] for c in counts)
    k = cfg.filter_samples
    return {"prompts": len(counts), "kept": len(kept), "kept_share": round(len(kept) / max(1, len(counts)), 4),
            "never_right": hist.get(0, 0), "always_right": hist.get(k, 0),
            "pass_count_histogram": {str(i): hist.get(i, 0) for i in range(k + 1)},
            "rule": f"{cfg.filter_min_correct} <= right of {k} <= {cfg.max_correct}",
            "mean_pass_rate": round(sum(c["correct"] for c in counts) / max(1, len(counts) * k), 4),
            **{key: v for key, v in pass_info.items() if key != "settings_key"}}


def filter_prompts(cfg: RLConfig) -> tuple[list[dict], dict]:
    """The kept prompts and the pass's summary: a finished pass with these settings is reused; otherwise the pass
    runs in a child process (its engine's memory is freed when it exits). An empty result is refused."""
    if cfg.filter_samples == 0:
        rows = load_training_rows(cfg)
        return rows, {"prompts": len(rows), "kept": len(rows), "kept_share": 1.0, "never_right": 0,
                      "always_right": 0, "rule": "no filter pass (--filter-samples 0)"}
    info = finished_pass(cfg)
    if info is None:
        prompts_dir(cfg).mkdir(parents=True, exist_ok=True)
        settings = prompts_dir(cfg) / "settings.json"
        write_json(settings, cfg.to_dict())
        print(f"filter: {cfg.filter_samples} samples per training prompt from {cfg.adapter_path}", file=sys.stderr)
        proc = subprocess.run([sys.executable, "-m", "t2s_fast.rl.prompts", str(settings)])
        if proc.returncode == 2:
            raise T2SError(f"the prompt filter pass refused its input (its message is above); settings: {settings}")
        if proc.returncode != 0:
            raise RuntimeError(f"the prompt filter pass failed (exit {proc.returncode}); settings: {settings}")
        info = read_json(prompts_dir(cfg) / "pass.json")
    counts = read_jsonl(prompts_dir(cfg) / "pass_counts.jsonl")
    kept = keep_by_pass_rate(counts, cfg.filter_min_correct, cfg.max_correct)
    info = summarize_filter(cfg, counts, kept, info)
    write_jsonl(prompts_dir(cfg) / "filtered.jsonl", kept)
    write_json(prompts_dir(cfg) / "filter.json", info)
    if not kept:
        raise T2SError(f"no prompt survived the filter ({info['prompts']} prompts, {info['never_right']} never right, "
                       f"{info['always_right']} always right; rule {info['rule']}): widen --filter-min-correct / "
                       f"--filter-max-correct or raise --filter-samples ({prompts_dir(cfg) / 'filter.json'})")
    return kept, info


def main(argv: list[str]) -> int:
    from t2s_fast.configs import load_config

    try:
        cfg = RLConfig(**load_config(argv[0], RLConfig))
        info = run_filter_pass(cfg)
    except T2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"filter: {info['samples']:,} samples scored ({info.get('engine_start_s', 0)} s starting the engine, "
          f"{info['generation_s']} s generating, "
          f"{info['scoring_s']} s scoring)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
