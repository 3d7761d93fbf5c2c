"""`t2s-fast bench generate`: generated tokens/s and wall time for N Spider dev prompts x K adapters, for each
available generation backend (vLLM where installed with a GPU, transformers+PEFT always).

Each backend runs in its own process (vLLM and transformers must not share the GPU), through the evaluation
harness's own `t2s_fast.benchmarks.generate_run.run_generation_benchmark`, so both see the same prompts in the
same order, greedy, with the same max_new_tokens. Without adapters given, K random LoRA adapters of the
model's shape are written first (their speed is a real adapter's speed; their answers mean nothing).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from t2s_fast.errors import T2SError

log = logging.getLogger(__name__)


@dataclass
class BenchGenerateConfig:
    model_name: str = field(default="", metadata={"help": "Base model folder (or hub id) to generate with.",
                                                  "required": True})
    spider_dir: str = field(default="", metadata={"help": "Spider 1.0 folder (dev.json + databases); default ../shared/data/spider1."})
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer folder (default: the model's)."})
    adapters: tuple[str, ...] = field(default=(), metadata={"help": "NAME=PATH adapters (repeatable); none = --n-adapters random ones.",
                                                           "flags": ("--adapter",)})
    n_adapters: int = field(default=2, metadata={"help": "K random LoRA adapters to create when none are given."})
    n_questions: int = field(default=200, metadata={"help": "N Spider dev questions (every adapter answers each)."})
    max_new_tokens: int = field(default=128, metadata={"help": "Generation cap per request."})
    backends: str = field(default="auto", metadata={"help": "Comma list of vllm,hf; auto = every available one."})
    batch_size: int | None = field(default=None, metadata={"help": "HF backend batch size (default: the engine's)."})
    out_dir: str = field(default="bench/results", metadata={"help": "Where the result JSON goes."})
    work_dir: str | None = field(default=None, metadata={"help": "Adapters and per-backend outputs (default: a temp folder)."})
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
    from t2s_fast.evaluate.config import parse_adapter_specs

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
                "tokenizer": cfg.tokenizer, "n_questions": cfg.n_questions, "max_new_tokens": cfg.max_new_tokens,
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


def _worker(spec_json: str) -> None:
    from t2s_fast.benchmarks.generate_run import run_generation_benchmark

    spec = json.loads(spec_json)
    run_generation_benchmark(**spec)


if __name__ == "__main__":
    _worker(sys.argv[1])
