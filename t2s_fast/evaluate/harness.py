"""`evaluate(cfg)`: prompts -> resumable generation (one engine, all adapters) -> execution scoring -> reports.

The steps are separate functions so benchmarks and tests can call one of them:
`build_prompts`, `generate_predictions`, `score_predictions`, `evaluate`.
"""

from __future__ import annotations

import logging
import platform
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from t2s_fast.errors import T2SError
from t2s_fast.evaluate.config import EvalConfig
from t2s_fast.evaluate.predictions import PredictionStore, adapter_fingerprint, prediction_key, text_sha
from t2s_fast.evaluate.questions import Question, QuestionSet, load_heldout, load_jsonl, load_spider1
from t2s_fast.generate.base import GenRequest, GenSettings, RepetitionGuard, order_for_backend, select_backend
from t2s_fast.generate.extract import extract

log = logging.getLogger(__name__)

NOT_EXECUTABLE = "not_executable"  # error kind for questions whose SQL cannot be run here


def load_questions(cfg: EvalConfig) -> QuestionSet:
    if cfg.suite == "spider1":
        return load_spider1(cfg.spider_dir, cfg.split, dbs=cfg.dbs, limit=cfg.limit)
    if cfg.suite == "jsonl":
        return load_jsonl(cfg.questions, cfg.db_root, dbs=cfg.dbs, limit=cfg.limit)
    if cfg.suite == "heldout":
        return load_heldout(cfg.questions, cfg.db_root, cfg.spider_dir, dbs=cfg.dbs, limit=cfg.limit)
    from t2s_fast.evaluate.spider2 import load_spider2_lite

    return load_spider2_lite(cfg.spider_dir, dbs=cfg.dbs, limit=cfg.limit, sample_values=cfg.sample_values,
                             db_root=cfg.db_root, max_prompt_tokens=cfg.max_model_len - cfg.max_new_tokens)


def question_messages(q: Question, schema_cache: dict, sample_values: int, question_values=None) -> list[dict]:
    """The chat messages for a question, from the one prompt builder (or the prepared messages as given).
    ``question_values``: a ``t2s_fast.schema_values.QuestionValueMatcher`` (--question-values), or None."""
    from t2s_fast.prompt import build_messages
    from t2s_fast.schema import read_sqlite_schema, render_schema

    if q.messages:
        return [m for m in q.messages if m["role"] != "assistant"]
    schema = q.schema_text
    if schema is None:
        key = (q.db_id, str(q.db_path))
        if ("schema",) + key not in schema_cache:
            schema_cache[("schema",) + key] = read_sqlite_schema(q.db_path, db_id=q.db_id, sample_values=sample_values)
        matches = question_values.match(q.db_path, q.question) if question_values is not None else {}
        if matches:  # per question
            schema = render_schema(schema_cache[("schema",) + key], sample_values=sample_values > 0,
                                   question_values=matches)
        else:
            if key not in schema_cache:
                schema_cache[key] = render_schema(schema_cache[("schema",) + key], sample_values=sample_values > 0)
            schema = schema_cache[key]
    return build_messages(dialect=q.dialect, db_id=q.db_id, schema=schema, question=q.question,
                          external_knowledge=q.external_knowledge)


def build_prompts(questions: list[Question], tokenizer, *, sample_values: int = 3,
                  question_values: int = 0) -> dict[str, str]:
    """{question id: rendered prompt text} (Qwen3 chat template, thinking disabled)."""
    from t2s_fast.prompt import render_prompt
    from t2s_fast.schema_values import make_matcher

    cache: dict = {}
    matcher = make_matcher(question_values)
    return {q.qid: render_prompt(tokenizer, question_messages(q, cache, sample_values, matcher)) for q in questions}


def resolve_base_model(cfg: EvalConfig) -> str:
    """The folder (or hub id, or config.json) the engines load for --base-model: a packaged alias or a `.gguf`
    file is converted once to a cached safetensors folder (`t2s_fast.models.resolve_model`)."""
    from t2s_fast import distributed
    from t2s_fast.models import is_gguf_source, resolve_model

    if not is_gguf_source(cfg.base_model):
        return cfg.base_model
    dtype = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}.get(cfg.dtype or "")
    if not distributed.is_distributed():  # no process group to join: joining one would initialise CUDA here,
        return resolve_model(cfg.base_model, dtype=dtype).path  # and vLLM's forked engine core then fails
    with distributed.main_process_first():
        return resolve_model(cfg.base_model, dtype=dtype).path


def load_tokenizer(cfg: EvalConfig, model_path: str | None = None):
    from transformers import AutoTokenizer

    from t2s_fast.models import find_tokenizer_dir

    tok_dir = find_tokenizer_dir(model_path or cfg.base_model, cfg.tokenizer)
    try:
        return tok_dir, AutoTokenizer.from_pretrained(tok_dir)
    except OSError as exc:
        raise T2SError(f"tokenizer {tok_dir}: cannot load it ({exc}); pass --tokenizer PATH") from None


def run_settings(cfg: EvalConfig, backend: str, tokenizer_dir: str) -> dict:
    """What the predictions depend on (compared on resume)."""
    return {
        "base_model": str(cfg.base_model),
        "tokenizer": str(tokenizer_dir),
        "backend": backend,
        "suite": cfg.suite,
        "generation": {"max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature,
                       "n_samples": cfg.n_samples, "seed": cfg.seed,
                       # only when on, so runs made before the guard existed (always off) still resume
                       **({"repetition_guard": asdict(gen_settings(cfg).repetition_guard)}
                          if cfg.repetition_guard else {})},
        "prompt": {"sample_values": cfg.sample_values,
                   **({"question_values": cfg.question_values} if cfg.question_values else {})},
        "dtype": cfg.dtype,
        "adapters": {name: adapter_fingerprint(path) for name, path in cfg.adapters.items()},
    }


def gen_settings(cfg: EvalConfig) -> GenSettings:
    return GenSettings(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed,
                       repetition_guard=RepetitionGuard() if cfg.repetition_guard else None)


def _request_seed(key: str) -> int:
    return int(text_sha(key)[:8], 16) % (2**31 - 1)


def plan_requests(cfg: EvalConfig, questions: list[Question], prompts: dict[str, str]) -> list[GenRequest]:
    """Every (adapter, question, sample) request in a fixed order: longest prompt first (a batch that does
    not fit shows up at once), ties by question id. The order only depends on the inputs, so a resumed run
    forms exactly the batches an uninterrupted run would."""
    order = sorted(questions, key=lambda q: (-len(prompts[q.qid]), q.qid))
    requests = []
    for q in order:
        for adapter in cfg.adapter_names:
            for s in range(cfg.n_samples):
                key = prediction_key(adapter, q.qid, s)
                requests.append(GenRequest(key=key, adapter=adapter, prompt=prompts[q.qid], seed=_request_seed(key)))
    return requests


def open_generator(cfg: EvalConfig, backend: str, tokenizer_dir: str, model_path: str | None = None):
    """The engine of this run: every adapter loaded once (``model_path``: the resolved --base-model)."""
    from t2s_fast.generate.engines import make_generator

    return make_generator(backend, base_model=model_path or cfg.base_model, adapters=cfg.adapters,
                          tokenizer_dir=tokenizer_dir, batch_size=cfg.batch_size, dtype=cfg.dtype,
                          seed=cfg.seed, max_model_len=cfg.max_model_len,
                          gpu_memory_utilization=cfg.gpu_memory_utilization,
                          tensor_parallel_size=cfg.tensor_parallel_size,
                          data_parallel_size=cfg.data_parallel_size, enforce_eager=cfg.enforce_eager,
                          vllm_cache_dir=cfg.vllm_cache_dir, **_device_for_rank(backend))


def generate_predictions(cfg: EvalConfig, store: PredictionStore, requests: list[GenRequest], *, backend: str,
                         tokenizer_dir: str, generator=None, on_batch: Callable[[int, int], None] | None = None,
                         model_path: str | None = None, settings: GenSettings | None = None,
                         tag: dict | None = None) -> dict:
    """Generate what ``store`` lacks, appending each finished batch. Returns this session's throughput:
    {"requests", "tokens", "seconds", "tokens_per_s"}; no engine is loaded when nothing is missing.
    ``settings`` overrides the run's decoding (the repair pass); ``tag`` is added to every record and timing
    row written (e.g. {"repair": "resample"})."""
    pending = [r for r in requests if not store.has(r.key)]
    stats = {"requests": 0, "tokens": 0, "seconds": 0.0, "tokens_per_s": 0.0, "resumed": len(requests) - len(pending)}
    if not pending:
        return stats
    settings = settings or gen_settings(cfg)
    tag = tag or {}
    own_generator = generator is None
    if own_generator:
        generator = open_generator(cfg, backend, tokenizer_dir, model_path)
    pending = order_for_backend(generator, pending, cfg.adapter_names)  # HF: adapter by adapter
    step = generator.batch_size or len(pending)
    by_key = {r.key: r for r in pending}
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    try:
        with Progress(TextColumn("[bold]generate[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                      TimeElapsedColumn(), TimeRemainingColumn(), transient=False) as progress:
            task = progress.add_task("generate", total=len(pending), rate="")
            for batch_index, i in enumerate(range(0, len(pending), step)):
                chunk = pending[i:i + step]
                t0 = time.perf_counter()
                results = generator.generate(chunk, settings)
                seconds = time.perf_counter() - t0
                records = []
                for res in results:
                    adapter, qid, sample = res.key.split("|")
                    ext = extract(res.text)
                    records.append({"key": res.key, "adapter": adapter, "qid": qid, "sample": int(sample),
                                    "raw": res.text, "sql": ext.sql, "extraction": ext.method,
                                    "extraction_changed": ext.changed, "n_tokens": res.n_tokens, "finish": res.finish,
                                    "prompt_sha": text_sha(by_key[res.key].prompt), **tag})
                tokens = sum(r["n_tokens"] for r in records)
                store.append(records, {"batch": batch_index, "requests": len(records), "tokens": tokens,
                                       "seconds": round(seconds, 4), "backend": generator.name, **tag})
                stats["requests"] += len(records)
                stats["tokens"] += tokens
                stats["seconds"] += seconds
                progress.update(task, advance=len(records),
                                rate=f"{stats['tokens'] / max(stats['seconds'], 1e-9):,.0f} tok/s")
                if on_batch is not None:
                    on_batch(batch_index, stats["requests"])
    finally:
        if own_generator:
            generator.close()
    stats["tokens_per_s"] = stats["tokens"] / stats["seconds"] if stats["seconds"] else 0.0
    return stats


def _device_for_rank(backend: str) -> dict:
    """Under `accelerate launch`/torchrun each HF process generates on its own GPU."""
    from t2s_fast import distributed
    from t2s_fast.generate.base import cuda_available

    if backend == "hf" and distributed.is_distributed() and cuda_available():
        return {"device": f"cuda:{distributed.local_rank()}"}
    return {}


def _vote(samples: list[dict], results: list) -> tuple[dict, dict]:
    """Self-consistency: group the samples' execution results (Spider 1.0 comparison, order ignored) and keep
    the SQL of the largest group; invalid SQL (result None or an error) does not vote. Ties go to the earliest
    sample."""
    from t2s_fast.sql.compare import spider1_results_match

    groups: list[tuple[list, list[int]]] = []
    for idx, res in enumerate(results):
        if res is None or not res.ok:
            continue
        for rows, members in groups:
            if spider1_results_match(rows, res.rows or [], order_matters=False):
                members.append(idx)
                break
        else:
            groups.append((res.rows or [], [idx]))
    if not groups:
        return samples[0], {"valid": 0, "votes": 0, "groups": 0}
    best = max(groups, key=lambda g: (len(g[1]), -g[1][0]))
    return samples[best[1][0]], {"valid": sum(len(g[1]) for g in groups), "votes": len(best[1]), "groups": len(groups)}


def _execute_samples(cfg: EvalConfig, voting: list[tuple[Question, list[dict]]]) -> list[list]:
    """Every sample of every voting question through one executor pool (``--workers`` processes), each
    prepared exactly as the scorer prepares a prediction (official post-processing, DISTINCT handling), so
    the vote groups results by the rule the score then applies. A sample that does not prepare gets None."""
    from t2s_fast.sql.executor import run_jobs
    from t2s_fast.sql.scorer import ScoreConfig, prepare_pred

    score_cfg = ScoreConfig(db_root=Path(cfg.db_root or "."), workers=cfg.workers, timeout_s=cfg.timeout,
                            keep_distinct=cfg.keep_distinct)
    jobs, where = [], []
    for qi, (q, samples) in enumerate(voting):
        for si, sample in enumerate(samples):
            sql, _error = prepare_pred(sample.get("sql"), score_cfg)
            if sql is not None:
                where.append((qi, si))
                jobs.append((q.db_path, sql))
    results = [[None] * len(samples) for _, samples in voting]
    if jobs:
        for (qi, si), res in zip(where, run_jobs(jobs, workers=max(1, cfg.workers), timeout_s=cfg.timeout)):
            results[qi][si] = res
    return results


def choose_predictions(cfg: EvalConfig, questions: list[Question], store: PredictionStore) -> dict[tuple[str, str], dict]:
    """{(adapter, qid): the prediction to score} (the majority-vote sample with --n-samples > 1)."""
    chosen, voting, keys = {}, [], []
    for q in questions:
        for adapter in cfg.adapter_names:
            samples = [store.records[prediction_key(adapter, q.qid, s)] for s in range(cfg.n_samples)]
            if cfg.n_samples == 1 or q.db_path is None or q.not_executable:
                chosen[(adapter, q.qid)] = dict(samples[0])
            else:
                voting.append((q, samples))
                keys.append((adapter, q.qid))
    for key, (q, samples), results in zip(keys, voting, _execute_samples(cfg, voting) if voting else []):
        pick, vote = _vote(samples, results)
        chosen[key] = dict(pick, vote=vote)
    return chosen


def score_predictions(cfg: EvalConfig, questions: list[Question], chosen: dict[tuple[str, str], dict]) -> list[dict]:
    """One scored record per (adapter, question): exec_match, error_kind, hardness, and the prediction."""
    from t2s_fast.sql.scorer import ScoreConfig, score_records

    by_qid = {q.qid: q for q in questions}
    executable, others = [], []
    for (adapter, qid), pred in chosen.items():
        q = by_qid[qid]
        rec = {"adapter": adapter, "qid": qid, "db_id": q.db_id, "question": q.question, "gold": q.gold,
               "pred": pred["sql"], "raw": pred["raw"], "extraction": pred["extraction"],
               "extraction_changed": pred["extraction_changed"], "n_tokens": pred["n_tokens"],
               "finish": pred.get("finish", "")}
        if "vote" in pred:
            rec["vote"] = pred["vote"]
        custom = q.extra.get("scorer") is not None
        (others if custom or q.not_executable or q.db_path is None else executable).append((q, rec))
    scored = []
    # Score per database folder (the scorer looks databases up as <db_root>/<db_id>/<db_id>.sqlite).
    by_root = defaultdict(list)
    for q, rec in executable:
        by_root[q.db_path.parent.parent].append(rec)
    for root, recs in by_root.items():
        scfg = ScoreConfig(db_root=str(root), workers=cfg.workers, timeout_s=cfg.timeout, keep_distinct=cfg.keep_distinct)
        scored.extend(score_records(recs, scfg))
    for q, rec in others:
        if q.extra.get("scorer") is not None and not q.not_executable:
            scored.append(q.extra["scorer"](q, rec, cfg))
            continue
        scored.append(dict(rec, exec_match=None, error_kind=NOT_EXECUTABLE, error=q.not_executable or "no database",
                           hardness=q.extra.get("hardness", "n/a")))
    order = {(a, q.qid): i for i, (a, q) in enumerate((a, q) for q in questions for a in cfg.adapter_names)}
    scored.sort(key=lambda r: order[(r["adapter"], r["qid"])])
    return scored


def _device_info(backend: str) -> dict:
    info = {"backend": backend, "host": platform.node(), "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["device"] = torch.cuda.get_device_name(0)
        else:
            info["device"] = f"cpu ({platform.processor() or platform.machine()})"
    except ImportError:  # pragma: no cover
        pass
    for mod in ("transformers", "peft", "vllm"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - absent or broken optional engines are just not listed
            pass
    return info


def evaluate(cfg: EvalConfig, *, on_batch: Callable[[int, int], None] | None = None, generator=None) -> dict:
    """Run (or resume) an evaluation and write predictions, scored.jsonl and report.{json,md,html} to out_dir.

    ``on_batch(batch_index, n_done)`` is called after each batch is saved (progress hooks, tests).
    ``generator`` may be given to reuse an already-loaded engine (benchmarks).

    Under `accelerate launch` / `torchrun` (HF backend): rank r generates the missing requests r::world into
    its own predictions.rank<r>.jsonl; after a barrier rank 0 merges them into predictions.jsonl, scores and
    writes the reports, and returns the report; the other ranks return None.
    """
    from t2s_fast.evaluate.report import build_report, write_reports
    from t2s_fast.jsonl import write_jsonl

    started = time.perf_counter()
    out_dir = Path(cfg.out_dir)
    from t2s_fast import distributed

    backend = generator.name if generator is not None else select_backend(cfg.backend)
    sharded = distributed.is_distributed()
    if sharded:
        if backend == "vllm":
            raise T2SError("--backend vllm spreads over GPUs itself: run one process with --tensor-parallel-size "
                           "and/or --data-parallel-size instead of accelerate launch/torchrun")
        distributed.state()
    qset = load_questions(cfg)
    if not qset.questions:
        raise T2SError(f"{qset.source}: no question to evaluate (check --db/--limit; "
                       f"{len(qset.skipped)} skipped for missing databases)")
    model_path = resolve_base_model(cfg)
    tokenizer_dir, tokenizer = load_tokenizer(cfg, model_path)
    prompts = build_prompts(qset.questions, tokenizer, sample_values=cfg.sample_values,
                            question_values=cfg.question_values)
    with distributed.main_process_first():  # rank 0 checks/writes run_settings.json (and --force deletes)
        store = PredictionStore(out_dir, run_settings(cfg, backend, tokenizer_dir),
                                force=cfg.force and distributed.is_main(),
                                shard=distributed.rank() if sharded else None)
    requests = plan_requests(cfg, qset.questions, prompts)
    for r in requests:
        store.check_prompt(r.key, text_sha(r.prompt))
    mine, already = requests, sum(store.has(r.key) for r in requests)
    if sharded:
        distributed.barrier()  # everyone has read the same predictions before anyone appends
        # every rank sees the same missing set (same files, same order), so the slices never overlap
        mine = [r for r in requests if not store.has(r.key)][distributed.rank()::distributed.world_size()]
    engine = None  # with --repair, one engine serves both passes (loaded only when something is missing)
    if generator is None and cfg.repair != "none" and not sharded and any(not store.has(r.key) for r in mine):
        engine = generator = open_generator(cfg, backend, tokenizer_dir, model_path)
    try:
        gen_stats = generate_predictions(cfg, store, mine, backend=backend, tokenizer_dir=tokenizer_dir,
                                         generator=generator, on_batch=on_batch, model_path=model_path)
        if sharded:
            distributed.barrier()
            if not distributed.is_main():
                return None
            store.merge_shards()
            gen_stats["resumed"] = already  # rank 0's stats cover its own share; "resumed" is the whole run's
        t_score = time.perf_counter()
        scored = score_predictions(cfg, qset.questions, choose_predictions(cfg, qset.questions, store))
        score_seconds = time.perf_counter() - t_score
        repair = None
        if cfg.repair != "none":  # rank 0 alone under accelerate/torchrun
            from t2s_fast.evaluate.repair import repair_predictions

            scored, repair = repair_predictions(cfg, qset.questions, scored, store, tokenizer, prompts,
                                                backend=backend, tokenizer_dir=tokenizer_dir, generator=generator,
                                                model_path=model_path)
    finally:
        if engine is not None:
            engine.close()
    write_jsonl(out_dir / "scored.jsonl", scored)
    report = build_report(cfg, qset, scored, store, backend=backend)
    report["settings"]["question_values"] = cfg.question_values
    if repair is not None:
        report["repair"] = repair
    report["timing"] = _timing(cfg, store, gen_stats, score_seconds, time.perf_counter() - started, backend)
    if cfg.checkpoints:
        from t2s_fast.evaluate.checkpoints import checkpoint_summary

        report["checkpoints"] = checkpoint_summary(cfg, report)
    write_reports(out_dir, report)
    return report


def _timing(cfg: EvalConfig, store: PredictionStore, gen_stats: dict, score_seconds: float, wall: float,
            backend: str) -> dict:
    """Speed figures: everything here varies from run to run (kept apart from the accuracy figures)."""
    batches = [b for b in store.timings() if "repair" not in b]  # the repair pass has its own figures
    tokens = sum(b["tokens"] for b in batches)
    seconds = sum(b["seconds"] for b in batches)
    per_adapter = Counter()
    for rec in store.records.values():
        if "repair" not in rec:
            per_adapter[rec["adapter"]] += rec["n_tokens"]
    rate = tokens / seconds if seconds else 0.0
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": _device_info(backend),
        "generation_seconds": round(seconds, 3),
        "generated_tokens": tokens,
        "tokens_per_s": round(rate, 2),
        "batches": len(batches),
        "this_session": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in gen_stats.items()},
        "scoring_seconds": round(score_seconds, 3),
        "wall_seconds_this_session": round(wall, 3),
        # All adapters share one engine and its batches: each adapter's rate is the engine's rate.
        "per_adapter": {a: {"generated_tokens": per_adapter.get(a, 0), "tokens_per_s": round(rate, 2),
                            "generation_seconds_share": round(seconds * per_adapter.get(a, 0) / tokens, 3) if tokens else 0.0}
                        for a in cfg.adapter_names},
    }
