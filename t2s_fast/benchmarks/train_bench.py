"""`t2s-fast bench train`: trained tokens/s, optimizer steps/s, MFU, peak memory and projected cost per
training backend, side by side on identical batches.

Each backend (or variant: a backend plus extra `t2s-fast train` flags) runs in a fresh `t2s-fast train`
process on the same sampled data file with the same seed, so both see the same batches through the same
SFTTrainer data path. The first --warmup-steps optimizer steps (CUDA/kernel warm-up, allocator growth,
compilation) are dropped; the figures come from the next --steps steps of the run's train_log.jsonl
(per-step non-padding tokens and wall time) and its run.json (peak memory, chosen setup).

The bf16 matmul peak for MFU is measured in the same run (peak.py, its own process, before the backends).
"""

from __future__ import annotations

import json
import logging
import random
import shlex
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from t2s_fast.configs import setting as _f
from t2s_fast.errors import T2SError

log = logging.getLogger(__name__)




@dataclass
class BenchTrainConfig:
    model_name: str = _f("", "Hub id, local model folder, or a config.json (random-init model of that shape).",
                         required=True)
    data: str = _f("", "Prepared stage-1 chat JSONL (`t2s-fast prepare`); a seeded sample of it is trained on.",
                    required=True)
    tokenizer: str | None = _f(None, "Tokenizer folder (default: the model's).")
    backends: str = _f("unsloth,hf", "Comma-separated backends, each optionally LABEL=BACKEND (e.g. unsloth,hf).")
    variants: tuple[str, ...] = _f((), "Extra rows: 'LABEL=BACKEND --train-flag value ...' (repeatable).",
                                   flags=("--variant",))
    max_seq_length: int = _f(3072, "--max-seq-length of every run.")
    per_device_train_batch_size: int | None = _f(2,
                                                 "Micro-batch (packed rows with --packing); 0 = let autotune choose.")
    gradient_accumulation_steps: int | None = _f(16, "Accumulation; 0 = let autotune choose.")
    steps: int = _f(4, "Measured optimizer steps (after the warm-up steps).")
    warmup_steps: int = _f(2, "Optimizer steps run first and not measured.")
    packing: bool = _f(False, "Packed, padding-free batches.")
    gradient_checkpointing: str = _f("auto", "auto|off|plain|unsloth, passed to every run (variants may override).")
    attention: str = _f("auto", "auto|sdpa|sdpa-no-cudnn|varlen|eager, passed to every run (variants may override).")
    max_examples: int = _f(2000, "Seeded random sample of the data file to train on (0 = all).")
    stage2_data: str | None = _f(None,
                                 "Stage-2 train JSONL for the cost projection (default: stage2_mixed_train.jsonl "
                                 "beside --data).")
    gpu_hourly_usd: float = _f(3.44, "Price of one GPU hour for the projected cost.")
    seed: int = _f(3407, "Seed of the data sample and of every run.")
    out_dir: str = _f("runs/bench", "Where the result JSON goes.")
    work_dir: str | None = _f(None, "Run folders and logs (default: a new temporary folder).")
    model_cache: str | None = _f(None, "Where a config.json model is materialized once for all runs (T2S_MODEL_CACHE).")
    tag: str | None = _f(None, "Suffix of the result file name (e.g. runbook-padded, packed).")
    peak_n: int = _f(8192, "Matrix size of the bf16 peak measurement (0 = skip; always skipped without a GPU).")
    timeout_s: float = _f(1800.0, "Kill a run after this many seconds.")

    def validate(self) -> "BenchTrainConfig":
        if not self.model_name:
            raise T2SError("--model-name is required")
        if not self.data or not Path(self.data).is_file():
            raise T2SError(f"--data {self.data or '(missing)'}: file not found (a `t2s-fast prepare` train JSONL)")
        if self.steps < 1 or self.warmup_steps < 0:
            raise T2SError("--steps must be at least 1 and --warmup-steps at least 0")
        if isinstance(self.variants, str):
            self.variants = (self.variants,)
        if not parse_variants(self.backends, self.variants):
            raise T2SError("nothing to run: give --backends and/or --variant")
        return self


@dataclass
class Variant:
    label: str
    backend: str
    args: list[str] = field(default_factory=list)


def parse_variants(backends: str, variants=()) -> list[Variant]:
    out = []
    for item in [b.strip() for b in (backends or "").split(",") if b.strip()]:
        label, _, backend = item.partition("=")
        out.append(Variant(label=label, backend=backend or label))
    for spec in variants or ():
        head, *rest = shlex.split(spec)
        label, _, backend = head.partition("=")
        if backend not in ("unsloth", "hf"):
            raise T2SError(f"--variant {spec!r}: start with LABEL=unsloth or LABEL=hf")
        out.append(Variant(label=label, backend=backend, args=rest))
    labels = [v.label for v in out]
    if len(set(labels)) != len(labels):
        raise T2SError(f"variant labels must be unique: {labels}")
    for v in out:
        if v.backend not in ("unsloth", "hf"):
            raise T2SError(f"backend {v.backend!r} of {v.label!r}: choose unsloth or hf")
    return out


# ---------------------------------------------------------------------------------------------- measuring
def measure_log(rows: list[dict], warmup_steps: int) -> dict:
    """Throughput over the optimizer steps after the warm-up, from train_log.jsonl rows."""
    steps = sorted((r for r in rows if "step_time_s" in r and "trained_tokens" in r), key=lambda r: r["step"])
    measured = steps[warmup_steps:]
    losses = [r.get("loss") for r in steps]
    if not measured:
        return {"measured_steps": 0, "trained_tokens_per_s": None, "optimizer_steps_per_s": None, "losses": losses}
    t = sum(r["step_time_s"] for r in measured)
    tokens = sum(r["trained_tokens"] for r in measured)
    return {"measured_steps": len(measured), "measured_time_s": round(t, 3), "measured_tokens": tokens,
            "tokens_per_step": round(tokens / len(measured), 1),
            "trained_tokens_per_s": round(tokens / t, 1) if t > 0 else None,
            "optimizer_steps_per_s": round(len(measured) / t, 4) if t > 0 else None,
            "step_times_s": [r["step_time_s"] for r in steps], "losses": losses}


def sample_data(src: Path, dest: Path, n: int, seed: int) -> int:
    """A seeded random sample of the lines of ``src`` (Spider's files are grouped by database, so the first
    lines would not be representative of the lengths)."""
    from t2s_fast.jsonl import iter_jsonl, write_jsonl

    records = list(iter_jsonl(src, required=("messages",)))
    if n and n < len(records):
        records = random.Random(seed).sample(records, n)
    write_jsonl(dest, records)
    return len(records)


def load_model_config(model_name: str) -> dict:
    p = Path(model_name)
    cfg_path = p if p.suffix == ".json" else p / "config.json"
    if cfg_path.is_file():
        return json.loads(cfg_path.read_text())
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(model_name).to_dict()
    except Exception as exc:  # noqa: BLE001 - any failure means we cannot count FLOPs
        raise T2SError(f"--model-name {model_name}: cannot read its config ({exc})") from None


def measure_peak_in_subprocess(n: int, log_path: Path) -> dict | None:
    import sys

    from t2s_fast.benchmarks.subproc import run_child

    res = run_child([sys.executable, "-m", "t2s_fast.benchmarks.peak", str(n)], log_path, timeout_s=300)
    if not res.ok:
        log.warning("peak measurement failed (exit %s): %s", res.returncode, res.tail(5))
        return None
    for line in reversed(log_path.read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def train_args(cfg: BenchTrainConfig, v: Variant, data: Path, out: Path) -> list[str]:
    args = ["train", "--model-name", cfg.model_name, "--train-file", str(data), "--output-dir", str(out),
            "--backend", v.backend, "--max-seq-length", str(cfg.max_seq_length),
            "--max-steps", str(cfg.warmup_steps + cfg.steps), "--seed", str(cfg.seed),
            "--packing" if cfg.packing else "--no-packing", "--gpu-hourly-usd", str(cfg.gpu_hourly_usd),
            "--save-steps", "100000", "--logging-steps", "1"]
    if cfg.tokenizer:
        args += ["--tokenizer", cfg.tokenizer]
    if cfg.per_device_train_batch_size:
        args += ["--per-device-train-batch-size", str(cfg.per_device_train_batch_size)]
    if cfg.gradient_accumulation_steps:
        args += ["--gradient-accumulation-steps", str(cfg.gradient_accumulation_steps)]
    given = set(v.args)
    batch_given = bool(cfg.per_device_train_batch_size or cfg.gradient_accumulation_steps) or \
        bool(given & {"--per-device-train-batch-size", "--gradient-accumulation-steps"})
    if batch_given and not given & {"--auto-setup", "--no-auto-setup"}:
        args.append("--no-auto-setup")  # a benchmark row's batch flags are the split it measures
    if cfg.gradient_checkpointing != "auto" and "--gradient-checkpointing" not in given:
        args += ["--gradient-checkpointing", cfg.gradient_checkpointing]
    if cfg.attention != "auto" and "--attention" not in given:
        args += ["--attention", cfg.attention]
    return args + list(v.args)


def _peak_key(run: dict, name: str):
    return run.get(f"peak_gpu_memory_{name}_gib")


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def bench_train(cfg: BenchTrainConfig) -> dict:
    """Run every variant, write the result JSON and return it (with its path under "path")."""
    from t2s_fast.benchmarks import results
    from t2s_fast.benchmarks.subproc import finish_child, start_child, t2s_command
    from t2s_fast.models import find_tokenizer_dir
    from t2s_fast.train import flops

    cfg.validate()
    variants = parse_variants(cfg.backends, cfg.variants)
    work = Path(cfg.work_dir or tempfile.mkdtemp(prefix="t2s-bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    device = results.describe_device()
    shape = flops.shape_from_config(load_model_config(cfg.model_name))
    tokenizer_dir = find_tokenizer_dir(cfg.model_name, cfg.tokenizer)

    data = work / "bench_data.jsonl"
    n_examples = sample_data(Path(cfg.data), data, cfg.max_examples, cfg.seed)
    log.info("benchmark data: %d examples sampled from %s -> %s", n_examples, cfg.data, data)

    peak = None
    if device["kind"] == "cuda" and cfg.peak_n:
        peak = measure_peak_in_subprocess(cfg.peak_n, work / "peak.log")
        if peak:
            log.info("measured bf16 matmul peak: %.1f TFLOP/s", peak["peak_tflops"])

    env = {"HF_HUB_OFFLINE": "1", "UNSLOTH_DISABLE_STATISTICS": "1",
           "T2S_MODEL_CACHE": cfg.model_cache or str(Path(tempfile.gettempdir()) / "t2s-model-cache")}
    rows, stages, sample_lengths = [], None, None
    for i, v in enumerate(variants):
        args = train_args(cfg, v, data, work / v.label)
        log.info("[%s] t2s-fast %s", v.label, shlex.join(args))
        proc, t0, fh = start_child(t2s_command(*args), work / f"{v.label}.log", env)
        if i == 0:  # tokenize on the CPU while the first run uses the GPU
            stages, sample_lengths = _data_stats(cfg, tokenizer_dir, data)
        res = finish_child(proc, t0, fh, work / f"{v.label}.log", cfg.timeout_s)
        rows.append(_variant_row(cfg, v, args, res, work / v.label, shape, sample_lengths, peak, stages))
    return _write_bench_result(cfg, variants, rows, device, shape, sample_lengths, stages, peak, n_examples)


def _variant_row(cfg: BenchTrainConfig, v: Variant, args: list[str], res, run_dir: Path, shape, sample_lengths,
                 peak, stages) -> dict:
    """One variant's row: its status, the steady-state figures of its log, MFU, memory and projected cost."""
    from t2s_fast.benchmarks import cost
    from t2s_fast.jsonl import read_json, read_jsonl
    from t2s_fast.train import flops

    row = {"label": v.label, "backend": v.backend, "train_args": args, "returncode": res.returncode,
           "wall_s": round(res.wall_s, 1), "log": str(res.log_path)}
    run = read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else {}
    log_rows = read_jsonl(run_dir / "train_log.jsonl", tolerate_torn_tail=True) \
        if (run_dir / "train_log.jsonl").is_file() else []
    m = measure_log(log_rows, cfg.warmup_steps)
    row["status"] = "ok" if res.ok and m["measured_steps"] else ("oom" if res.oom or run.get("stop_reason") == "oom"
                                                                  else "failed")
    if row["status"] != "ok":
        row["error_tail"] = res.tail(20)
        log.error("[%s] %s (exit %s); log: %s\n%s", v.label, row["status"], res.returncode, res.log_path,
                  row["error_tail"])
    row.update(m)
    tps = m.get("trained_tokens_per_s")
    fl = flops.flops_per_token(shape, sample_lengths)
    pk = peak["peak_flops_per_s"] if peak else None
    row.update({
        "mfu_4n": _round(flops.mfu(tps, fl["flops_per_token_4n"], pk)),
        "mfu_4n_plus_attention": _round(flops.mfu(tps, fl["flops_per_token_4n_plus_attention"], pk)),
        "peak_memory_allocated_gib": _peak_key(run, "allocated"),
        "peak_memory_reserved_gib": _peak_key(run, "reserved"),
        "setup": run.get("setup"), "sft": run.get("sft"), "first_loss": run.get("first_loss"),
        "automatic_setup": _automatic(run.get("config") or {}),
        "stop_reason": run.get("stop_reason"), "run_device": run.get("device"), "run_versions": run.get("versions"),
        "projected": cost.project_stages(tps, stages or {}, gpu_hourly_usd=cfg.gpu_hourly_usd),
    })
    return row


def _ratios_to_hf(rows: list[dict]) -> list[dict]:
    """Every ok row's tokens/s and peak memory against the first ok hf row (the baseline)."""
    baseline = next((r for r in rows if r["backend"] == "hf" and r["status"] == "ok"), None)
    if not baseline:
        return []
    return [{"label": r["label"], "vs": baseline["label"],
             "tokens_per_s_ratio": _ratio(r["trained_tokens_per_s"], baseline["trained_tokens_per_s"]),
             "peak_allocated_ratio": _ratio(r["peak_memory_allocated_gib"], baseline["peak_memory_allocated_gib"]),
             "peak_reserved_ratio": _ratio(r["peak_memory_reserved_gib"], baseline["peak_memory_reserved_gib"])}
            for r in rows if r is not baseline and r["status"] == "ok"]


def _write_bench_result(cfg: BenchTrainConfig, variants, rows, device, shape, sample_lengths, stages, peak,
                        n_examples: int) -> dict:
    from t2s_fast.benchmarks import cost, results
    from t2s_fast.train import flops

    fl = flops.flops_per_token(shape, sample_lengths)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out_dir", "work_dir")}
    settings.update({"variants_resolved": [asdict(v) for v in variants], "sampled_examples": n_examples,
                     "sample_mean_tokens": (round(sum(sample_lengths) / len(sample_lengths), 1)
                                            if sample_lengths else None),
                     "runbook_epochs": cost.RUNBOOK_EPOCHS})
    result = results.make_result(
        "train", settings=settings, rows=rows, device=_device_from_runs(device, rows), ratios=_ratios_to_hf(rows),
        flops=fl, peak=peak, stages={k: s.summary() for k, s in (stages or {}).items()},
        notes=[f"MFU = trained tokens/s x FLOPs per token / measured bf16 peak. {flops.FORMULA_4N}; "
               f"attention adds {flops.FORMULA_ATTENTION}. Recompute from checkpointing is not counted.",
               f"Measured over optimizer steps {cfg.warmup_steps + 1}..{cfg.warmup_steps + cfg.steps} of each run "
               f"(the first {cfg.warmup_steps} dropped).",
               "Projected cost: runbook stage 1 (stage1_train.jsonl) and stage 2 (stage2_mixed_train.jsonl), "
               f"{cost.RUNBOOK_EPOCHS:g} epochs each, at this row's tokens/s; training loop only."])
    path = results.write_result(result, cfg.out_dir, cfg.tag)
    result["path"] = str(path)
    return result


def _automatic(config: dict) -> bool | None:
    """Did `t2s-fast train` choose micro-batch, checkpointing and attention itself (no flags)?"""
    if not config:
        return None
    return bool(config.get("auto_setup") and config.get("gradient_checkpointing") == "auto"
                and config.get("attention") == "auto")


def _round(x, nd=4):
    return round(x, nd) if x is not None else None


def _device_from_runs(device: dict, rows: list[dict]) -> dict:
    """nvidia-smi's view, completed with what the training processes saw (CUDA version, memory)."""
    seen = next((r["run_device"] for r in rows if r.get("run_device")), None)
    return {**device, "as_seen_by_training": seen} if seen else device


def _data_stats(cfg: BenchTrainConfig, tokenizer_dir: str, sample: Path):
    """Token lengths of the sample (for the attention FLOPs) and of the runbook's stage files (for the cost)."""
    from transformers import AutoTokenizer

    from t2s_fast.benchmarks import cost

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    sample_lengths = cost.stage_data("sample", sample, tok, cfg.max_seq_length).lengths
    stages = {}
    for name, path in cost.find_stage_files(cfg.data, cfg.stage2_data).items():
        try:
            stages[name] = cost.stage_data(name, path, tok, cfg.max_seq_length)
        except T2SError as exc:
            log.warning("cost projection without %s: %s", name, exc)
    return stages, sample_lengths
