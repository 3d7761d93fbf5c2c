"""`evaluate(cfg)`: prompts -> resumable generation (one engine, all adapters) -> execution scoring -> reports.

The steps are separate functions so benchmarks, the repair pass and tests can call one of them:
`build_prompts` and `generate_predictions` (`evaluate/generation.py`), `choose_predictions` and
`score_predictions` (`evaluate/scoring.py`), and `evaluate` here, which runs them all.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import time
from collections import Counter
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from t2s_fast.adapters import adapter_fingerprint
from t2s_fast.errors import T2SError
from t2s_fast.evaluate.config import EvalConfig
from t2s_fast.evaluate.generation import (
    build_prompts,
    gen_settings,
    generate_predictions,
    open_generator,
    plan_requests,
)
from t2s_fast.evaluate.predictions import PredictionStore, text_sha
from t2s_fast.evaluate.questions import QuestionSet, load_heldout, load_jsonl, load_spider1, load_spider2_lite
from t2s_fast.evaluate.scoring import choose_predictions, score_predictions
from t2s_fast.generate.base import select_backend

log = logging.getLogger(__name__)



def load_questions(cfg: EvalConfig) -> QuestionSet:
    if cfg.suite == "spider1":
        return load_spider1(cfg.spider_dir, cfg.split, dbs=cfg.dbs, limit=cfg.limit)
    if cfg.suite == "jsonl":
        return load_jsonl(cfg.questions, cfg.db_root, dbs=cfg.dbs, limit=cfg.limit)
    if cfg.suite == "heldout":
        return load_heldout(cfg.questions, cfg.db_root, cfg.spider_dir, dbs=cfg.dbs, limit=cfg.limit)
    return load_spider2_lite(cfg.spider_dir, dbs=cfg.dbs, limit=cfg.limit, sample_values=cfg.sample_values,
                             db_root=cfg.db_root, max_prompt_tokens=cfg.max_model_len - cfg.max_new_tokens)


def resolve_base_model(cfg: EvalConfig) -> str:
    """The folder (or hub id, or config.json) the engines load for --base-model: a packaged alias or a `.gguf`
    file is converted once to a cached safetensors folder (`t2s_fast.models.resolve_model`)."""
    from t2s_fast import distributed
    from t2s_fast.models import is_gguf_source, resolve_model

    if not is_gguf_source(cfg.base_model):  # nothing to convert: no need for the ranks to wait on each other
        return cfg.base_model
    # Without a process group, none is joined: joining one would initialise CUDA here, before vLLM starts its
    # engine core. cfg.dtype is already canonical (or None: the device's default).
    first = distributed.main_process_first() if distributed.is_distributed() else contextlib.nullcontext()
    with first:
        return resolve_model(cfg.base_model, dtype=cfg.dtype).path


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
    """Run (or resume) an evaluation and write predictions, scored.jsonl (and the same lines gzipped,
    scored.jsonl.gz: its per-question file) and report.{json,md,html} to out_dir.

    ``on_batch(batch_index, n_done)`` is called after each batch is saved (progress hooks, tests).
    ``generator`` may be given to reuse an already-loaded engine (benchmarks).

    Under `accelerate launch` / `torchrun` (HF backend): rank r generates the missing requests r::world into
    its own predictions.rank<r>.jsonl; after a barrier rank 0 merges them into predictions.jsonl, scores and
    writes the reports, and returns the report; the other ranks return None.
    """
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
    from t2s_fast.evaluate.paired import write_per_question

    write_per_question(out_dir, scored)  # the same lines gzipped: the per-question file a report commits
    timing = _timing(cfg, store, gen_stats, score_seconds, time.perf_counter() - started, backend)
    return _write_report(cfg, qset, scored, store, backend=backend, repair=repair, timing=timing)


def _write_report(cfg: EvalConfig, qset: QuestionSet, scored: list[dict], store: PredictionStore, *, backend: str,
                  repair: dict | None, timing: dict) -> dict:
    """The last step: report.{json,md,html} in out_dir (with the repair pass and the checkpoint choice)."""
    from t2s_fast.evaluate.report import build_report, write_reports

    report = build_report(cfg, qset, scored, store, backend=backend)
    report["settings"]["question_values"] = cfg.question_values
    if repair is not None:
        report["repair"] = repair
    report["timing"] = timing
    if cfg.checkpoints:
        from t2s_fast.evaluate.checkpoints import checkpoint_summary

        report["checkpoints"] = checkpoint_summary(cfg, report)
    write_reports(Path(cfg.out_dir), report)
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
                            "generation_seconds_share": round(seconds * per_adapter.get(a, 0) / tokens,
                                                              3) if tokens else 0.0}
                        for a in cfg.adapter_names},
    }
