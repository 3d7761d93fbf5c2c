"""Generation throughput on Spider dev prompts: N questions x every adapter through one engine.

`bench/generate_hf_gpu.py` and `bench/generate_vllm.py` call `run_generation_benchmark` with their backend, so
both measure the same requests (same prompts, same order, greedy, same max_new_tokens).
"""

from __future__ import annotations

import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from t2s_fast.jsonl import write_json


def spider_dev_requests(spider_dir: str, tokenizer, adapters: list[str], *, n_questions: int,
                        sample_values: int = 3):
    from t2s_fast.evaluate.harness import build_prompts
    from t2s_fast.evaluate.questions import load_spider1
    from t2s_fast.generate.base import GenRequest

    qset = load_spider1(spider_dir, "dev", dbs=[], limit=None)
    questions = qset.questions[:n_questions]
    prompts = build_prompts(questions, tokenizer, sample_values=sample_values)
    order = sorted(questions, key=lambda q: (-len(prompts[q.qid]), q.qid))
    return [GenRequest(key=f"{a}|{q.qid}|0", adapter=a, prompt=prompts[q.qid]) for q in order for a in adapters], questions


def run_generation_benchmark(*, backend: str, base_model: str, adapters: dict[str, str], spider_dir: str,
                             tokenizer: str | None = None, n_questions: int = 200, include_base: bool = False,
                             max_new_tokens: int = 128, batch_size: int | None = None, out_json: str | None = None,
                             **engine_kwargs) -> dict:
    import torch
    from transformers import AutoTokenizer

    from t2s_fast.generate.base import BASE_ADAPTER, GenSettings, measure_generation, order_for_backend
    from t2s_fast.generate.engines import make_generator
    from t2s_fast.generate.extract import extract
    from t2s_fast.models import find_tokenizer_dir

    tok_dir = find_tokenizer_dir(base_model, tokenizer)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    names = ([BASE_ADAPTER] if include_base else []) + list(adapters)
    requests, questions = spider_dev_requests(spider_dir, tok, names, n_questions=n_questions)
    prompt_tokens = sum(len(tok(r.prompt, add_special_tokens=False)["input_ids"]) for r in requests)
    t0 = time.perf_counter()
    gen = make_generator(backend, base_model=base_model, adapters=adapters, tokenizer_dir=tok_dir,
                         batch_size=batch_size, **engine_kwargs)
    load_s = time.perf_counter() - t0
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    requests = order_for_backend(gen, requests, names)
    m = measure_generation(gen, requests, GenSettings(max_new_tokens=max_new_tokens))
    result = {
        "what": "generation throughput on Spider dev prompts, all adapters through one engine",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "backend": gen.name,
        "base_model": base_model,
        "random_init": base_model.endswith(".json"),
        "adapters": adapters,
        "include_base": include_base,
        "questions": len(questions),
        "requests": m["requests"],
        "batch_size": gen.batch_size,
        "max_new_tokens": max_new_tokens,
        "decoding": "greedy",
        "prompt_tokens": prompt_tokens,
        "generated_tokens": m["tokens"],
        "generation_seconds": round(m["seconds"], 3),
        "tokens_per_s": round(m["tokens_per_s"], 2),
        "requests_per_s": round(m["requests_per_s"], 3),
        "prompt_plus_generated_tokens_per_s": round((prompt_tokens + m["tokens"]) / m["seconds"], 2),
        "model_load_seconds": round(load_s, 3),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "extraction_changed": sum(extract(r.text).changed for r in m["results"]),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.machine()})",
        "versions": _versions(),
        "sample_outputs": [{"key": r.key, "text": r.text[:200]} for r in m["results"][:4]],
    }
    gen.close()
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        write_json(out_json, result)
    return result


def _versions() -> dict:
    from t2s_fast.runinfo import package_versions

    installed = package_versions(("torch", "transformers", "peft", "vllm"))
    # an engine that is not installed is simply not listed
    return {"python": platform.python_version(), **{k: v for k, v in installed.items() if v is not None}}
