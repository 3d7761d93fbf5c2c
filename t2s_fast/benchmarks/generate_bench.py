"""`t2s-fast bench generate`: generated tokens/s and wall time for N Spider dev prompts x K adapters, for each
available generation backend (vLLM where installed with a GPU, transformers+PEFT always).

Each backend runs in its own process (vLLM and transformers must not share the GPU), through
`run_generation_benchmark` below (the evaluation harness's prompts, engine factory and request order), so both
see the same prompts in the same order, greedy, with the same max_new_tokens. Without adapters given, K random
LoRA adapters of the model's shape are written first (their speed is a real adapter's speed; their answers mean
nothing). This module is the one generation benchmark: the command, its per-backend worker and the timing.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.jsonl import write_json

log = logging.getLogger(__name__)


@dataclass
class BenchGenerateConfig:
    model_name: str = field(default="", metadata={"help": "Base model folder (or hub id) to generate with.",
                                                  "required": True})
    spider_dir: str = field(default="",
                            metadata={"help": "Spider 1.0 folder (dev.json + databases); default "
                                              "../shared/data/spider1."})
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer folder (default: the model's)."})
    adapters: tuple[str, ...] = field(default=(),
                                      metadata={"help": "NAME=PATH adapters (repeatable); none = --n-adapters random "
                                                        "ones.",
                                                           "flags": ("--adapter",)})
    include_base: bool = field(default=False,
                               metadata={"help": "Also answer every question with the base model (no adapter)."})
    n_adapters: int = field(default=2, metadata={"help": "K random LoRA adapters to create when none are given."})
    n_questions: int = field(default=200, metadata={"help": "N Spider dev questions (every adapter answers each)."})
    max_new_tokens: int = field(default=128, metadata={"help": "Generation cap per request."})
    backends: str = field(default="auto", metadata={"help": "Comma list of vllm,hf; auto = every available one."})
    batch_size: int | None = field(default=None, metadata={"help": "HF backend batch size (default: the engine's)."})
    out_dir: str = field(default="runs/bench", metadata={"help": "Where the result JSON goes."})
    work_dir: str | None = field(default=None,
                                 metadata={"help": "Adapters and per-backend outputs (default: a temp folder)."})
    tag: str | None = field(default=None, metadata={"help": "Suffix of the result file name."})
    timeout_s: float = field(default=1800.0, metadata={"help": "Kill a backend's run after this many seconds."})


def available_backends(spec: str) -> list[str]:
    from t2s_fast.generate.base import cuda_available, vllm_available

    if spec and spec != "auto":
        return [b.strip() for b in spec.split(",") if b.strip()]
    return (["vllm"] if vllm_available() and cuda_available() else []) + ["hf"]


def bench_generate(cfg: BenchGenerateConfig) -> dict:
    from t2s_fast import paths
    from t2s_fast.benchmarks import results
    from t2s_fast.benchmarks.subproc import run_child
    from t2s_fast.evaluate.names import parse_adapter_specs

    if not cfg.model_name:
        raise T2SError("--model-name is required")
    spider_dir = cfg.spider_dir or str(paths.SPIDER1_DIR)
    if not (Path(spider_dir) / "dev.json").is_file():
        raise T2SError(f"--spider-dir {spider_dir}: no dev.json there")
    work = Path(cfg.work_dir or tempfile.mkdtemp(prefix="t2s-bench-generate-"))
    adapters = parse_adapter_specs(list(cfg.adapters)) if cfg.adapters else _random_adapters(cfg, work)
    rows = []
    for backend in available_backends(cfg.backends):
        out_json = work / f"{backend}.json"
        spec = {"backend": backend, "base_model": cfg.model_name, "adapters": adapters, "spider_dir": spider_dir,
                "tokenizer": cfg.tokenizer, "n_questions": cfg.n_questions, "include_base": cfg.include_base,
                "max_new_tokens": cfg.max_new_tokens,
                "batch_size": cfg.batch_size, "out_json": str(out_json)}
        res = run_child([sys.executable, "-m", "t2s_fast.benchmarks.generate_bench", json.dumps(spec)],
                        work / f"{backend}.log", timeout_s=cfg.timeout_s)
        if res.ok and out_json.is_file():
            r = json.loads(out_json.read_text())
            rows.append({"backend": backend, "status": "ok", "generated_tokens_per_s": r["tokens_per_s"],
                         "wall_s": r["generation_seconds"], "model_load_s": r["model_load_seconds"],
                         "requests": r["requests"], "questions": r["questions"], "adapters": len(adapters),
                         "generated_tokens": r["generated_tokens"], "requests_per_s": r["requests_per_s"],
                         "peak_gpu_memory_gib": r.get("peak_gpu_memory_gib"), "batch_size": r.get("batch_size"),
                         "engine_versions": r.get("versions")})
        else:
            rows.append({"backend": backend, "status": "oom" if res.oom else "failed", "generated_tokens_per_s": None,
                         "wall_s": round(res.wall_s, 1), "error_tail": res.tail(20)})
            log.error("generate bench %s failed; log %s", backend, res.log_path)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out_dir", "work_dir")}
    settings["adapters_resolved"] = adapters
    result = results.make_result("generate", settings=settings, rows=rows,
                                 notes=["greedy decoding; tokens/s = generated tokens / generation wall time "
                                        "(model loading excluded, reported separately)"])
    result["path"] = str(results.write_result(result, cfg.out_dir, cfg.tag))
    return result


def _random_adapters(cfg: BenchGenerateConfig, work: Path) -> dict[str, str]:
    from t2s_fast.generate.random_adapters import make_random_lora_adapter

    out = {}
    for k in range(cfg.n_adapters):
        out[f"random{k}"] = str(make_random_lora_adapter(cfg.model_name, work / f"adapter-{k}", seed=k))
    return out


# ---------------------------------------------------------------------------------------------- one backend
def spider_dev_requests(spider_dir: str, tokenizer, adapters: list[str], *, n_questions: int,
                        sample_values: int = 3):
    from t2s_fast.evaluate.generation import build_prompts
    from t2s_fast.evaluate.questions import load_spider1
    from t2s_fast.generate.base import GenRequest

    qset = load_spider1(spider_dir, "dev", dbs=[], limit=None)
    questions = qset.questions[:n_questions]
    prompts = build_prompts(questions, tokenizer, sample_values=sample_values)
    order = sorted(questions, key=lambda q: (-len(prompts[q.qid]), q.qid))
    return [GenRequest(key=f"{a}|{q.qid}|0", adapter=a,
                       prompt=prompts[q.qid]) for q in order for a in adapters], questions


def run_generation_benchmark(*, backend: str, base_model: str, adapters: dict[str, str], spider_dir: str,
                             tokenizer: str | None = None, n_questions: int = 200, include_base: bool = False,
                             max_new_tokens: int = 128, batch_size: int | None = None, out_json: str | None = None,
                             **engine_kwargs) -> dict:
    import torch
    from transformers import AutoTokenizer

    from t2s_fast.generate.base import BASE_ADAPTER, GenSettings, order_for_backend
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
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30,
                                     2) if torch.cuda.is_available() else None,
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


def measure_generation(generator, requests: list, settings=None) -> dict:
    """Run ``requests`` through ``generator`` in its preferred chunks; return results and throughput.

    {"results": [...], "tokens": generated tokens, "seconds": wall time, "tokens_per_s": ...,
     "requests": n, "requests_per_s": ...}
    """
    from t2s_fast.generate.base import GenSettings

    settings = settings or GenSettings()
    step = generator.batch_size or max(1, len(requests))
    results = []
    start = time.perf_counter()
    for i in range(0, len(requests), step):
        results.extend(generator.generate(requests[i:i + step], settings))
    seconds = time.perf_counter() - start
    tokens = sum(r.n_tokens for r in results)
    return {"results": results, "tokens": tokens, "seconds": seconds, "requests": len(results),
            "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
            "requests_per_s": len(results) / seconds if seconds > 0 else 0.0}


def _worker(spec_json: str) -> None:
    spec = json.loads(spec_json)
    run_generation_benchmark(**spec)


if __name__ == "__main__":
    _worker(sys.argv[1])
