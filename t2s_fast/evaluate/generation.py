"""Generation for an evaluation run: the chat messages and prompts of each question, the decoding settings, the
ordered (adapter, question, sample) requests, the engine, and resumable generation into predictions.jsonl.

Shared by the harness (`t2s_fast.evaluate.harness`) and the repair pass (`t2s_fast.evaluate.repair`).
"""

from __future__ import annotations

import time
from typing import Callable

from t2s_fast.evaluate.config import EvalConfig
from t2s_fast.evaluate.predictions import PredictionStore, prediction_key, text_sha
from t2s_fast.evaluate.questions import Question
from t2s_fast.generate.base import GenRequest, GenSettings, RepetitionGuard, order_for_backend
from t2s_fast.generate.extract import extract


def question_messages(q: Question, schema_cache: dict, sample_values: int, question_values=None) -> list[dict]:
    """The chat messages for a question, from the one prompt builder and the one schema text (or the prepared
    messages as given). ``question_values``: a ``t2s_fast.schema_values.QuestionValueMatcher``
    (--question-values), or None."""
    from t2s_fast.data.lazy_schema import LazySchema
    from t2s_fast.data.schema_text import schema_text, whole_text
    from t2s_fast.prompt import build_messages
    from t2s_fast.schema import read_sqlite_schema

    if q.messages:
        return [m for m in q.messages if m["role"] != "assistant"]
    schema = q.schema_text
    if schema is None:
        key = ("schema", q.db_id, str(q.db_path))
        if key not in schema_cache:  # read once per database; its whole text is rendered once too
            schema_cache[key] = LazySchema.from_schema(read_sqlite_schema(q.db_path, db_id=q.db_id,
                                                                          sample_values=sample_values))
        if q.schema_level == "no_sample_values":  # as `prepare` wrote the line (question values go with samples)
            schema = whole_text(schema_cache[key], q.dialect, sample_values=False)
        else:
            matches = question_values.match(q.db_path, q.question) if question_values is not None else {}
            schema = schema_text(schema_cache[key], q.dialect, None, question_values=matches).text
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
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    try:
        with Progress(TextColumn("[bold]generate[/]"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]}"),
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
