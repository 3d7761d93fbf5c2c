"""The plan printed before anything starts: projected minutes and dollars of every stage, the total, and what stays
in reserve under the cap.

Training stages are projected by `t2s_fast/train/projection.py` (FLOPs per token, the GPU's measured peak, the
setup's measured efficiency; a backend's conservative default where nothing was measured) plus the measured time
to load; the other stages from the small table of measured figures below, each naming where it was measured.
Every stage is paid at the GPU's hourly price for its wall time: the rented GPU bills while data is prepared and
adapters are evaluated too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from t2s_fast.jsonl import read_json
from t2s_fast.pipeline.config import STAGES, TRAINING, RunConfig

_R05 = "records/reports/2026-11-29-h200-qwen2.5-coder-0.5b/summary.json"
_R15 = "records/reports/2026-11-29-h200-qwen2.5-coder-1.5b/summary.json"
_DEMO = "records/reports/2026-11-24-cpu-demo-fresh-clone/report.json"

# Seconds a training run spends before its first step (loading the model and data, choosing the setup):
# elapsed_s_total - wall_time_s of the recorded 0.5B runs on an H200 (stage 1: 86.8 s, stage 2: 50.8 s).
TRAIN_START_S = {"stage1": 86.8, "stage2": 50.8}
TRAIN_START_SOURCE = f"{_R05} train.stage1/stage2 (elapsed_s_total - wall_time_s)"

# Evaluation: (seconds outside generation: engine start, prompts and scoring; seconds per generated answer).
EVAL_MEASURED = {
    "gpu-0.5b": (174.7, 19.955 / 3888, f"{_R05} eval-dev: 3,888 answers in 20.0 s, 194.6 s in all (vLLM, H200)"),
    "gpu-1.5b": (164.9, 14.018 / 2916, f"{_R15} eval-dev: 2,916 answers in 14.0 s, 179.0 s in all (vLLM, H200)"),
    "cpu": (1.7, 27.732 / 40, f"{_DEMO}: 40 answers in 27.7 s, 29.4 s in all (HF, 135M model, 2-core CPU)"),
}
REPAIR_FACTOR = 1.5  # --repair resample took about 1.5x the greedy eval's time (README, "How good it gets")

# RL (GRPO), measured with the TRL engine and vLLM colocated, 16 prompts x 8 completions a step: (median seconds a
# step, seconds to load the model and start the colocated engine, the filter pass's engine start, its seconds per
# sample generating and scoring, where). The filter pass sampled 1,200 training prompts x 8 in its own engine.
_RL05 = "records/reports/2026-12-07-h100-rl-qwen2.5-coder-0.5b"
_RL15 = "records/reports/2026-12-08-h100-rl-qwen2.5-coder-1.5b"
RL_MEASURED = {
    "qwen2.5-coder-0.5b": (14.185, 175.0, 99.8, 28.8 / 9600, 7.3 / 9600,
                           f"{_RL05}: 24 steps, H100; its filter pass in ../2026-12-07-h100-rl-qwen2.5-coder-0.5b-"
                           "side-by-side-cut"),
    # the start: the run's 534.8 s less its steps' 316.1 s and its (colocated) filter pass's 89.9 s
    "qwen2.5-coder-1.5b": (12.436, 128.9, 174.0, 59.9 / 9600, 15.4 / 9600,
                           f"{_RL15}: 24 steps, H100; a separate filter engine as in "
                           "../2026-12-07-h100-rl-qwen2.5-coder-1.5b-first-steps"),
    # the random-init 8B shape ran without a filter pass: its pass is the 1.5B's, generation scaled by parameters
    "Qwen/Qwen3-8B": (85.0, 119.0, 174.0, 59.9 / 9600 * 8.2 / 1.54, 15.4 / 9600,
                      "records/reports/2026-12-07-h200-rl-qwen3-8b-shape: random-init Qwen3-8B shape, completions "
                      "of 256 tokens, H200; its filter pass the 1.5B's, generation scaled by parameters (not "
                      "measured)"),
}
RL_TRAIN_PROMPTS = (7_670, f"{_RL15}: stage1_train.jsonl, 7,670 SQLite questions")  # before prepare has run

# Not measured yet: allowances, said as such in the plan.
PREPARE_S = (60.0, "README: `prepare` takes about a minute on a 2-core CPU")
MERGE_S = (120.0, "allowance, not measured")
REPORT_S = (5.0, "allowance, not measured")

# Trained tokens per epoch of the prepared files before `prepare` has run (the recorded 0.5B runs' totals / 2
# epochs); replaced by prepare_stats.json once it exists.
RECORDED_EPOCH_TOKENS = {"stage1_train.jsonl": (6_951_257, f"{_R05} train.stage1: 13,902,514 tokens / 2 epochs"),
                         "stage2_mixed_train.jsonl": (573_069, f"{_R05} train.stage2 (replay 1): 1,146,138 / 2 epochs")}
RECORDED_MEAN_TOKENS = 744  # stage 1: 6,951,257 tokens per epoch / (292 steps x 32 examples)


@dataclass
class Projection:
    seconds: float | None
    usd: float | None
    basis: str

    def as_dict(self) -> dict:
        return asdict(self)


def usd_per_s(cfg: RunConfig) -> float:
    return cfg.gpu_hourly_usd * cfg.gpus / 3600.0


def _priced(cfg: RunConfig, seconds: float | None, basis: str) -> Projection:
    return Projection(None if seconds is None else round(seconds, 1),
                      None if seconds is None else round(seconds * usd_per_s(cfg), 6), basis)


@dataclass
class Device:
    kind: str  # "cuda" or "cpu"
    name: str

    @classmethod
    def detect(cls) -> "Device":
        import torch

        if torch.cuda.is_available():
            return cls("cuda", torch.cuda.get_device_name(0))
        return cls("cpu", "cpu")


def model_shape(model_name: str):
    """The model's matmul shape for the FLOPs projection, or None when it cannot be known without loading it."""
    from t2s_fast.paths import QWEN3_8B_CONFIG
    from t2s_fast.train.autotune import ModelShape
    from t2s_fast.train.projection import KNOWN_SHAPES

    if model_name in KNOWN_SHAPES:
        return KNOWN_SHAPES[model_name]
    p = Path(model_name)
    config = p if p.suffix == ".json" else p / "config.json"
    if model_name == "Qwen/Qwen3-8B" and QWEN3_8B_CONFIG.is_file():
        config = QWEN3_8B_CONFIG
    if config.is_file():
        return ModelShape.from_config(read_json(config))
    return None


def epoch_tokens(train_file: str) -> tuple[float, float, str]:
    """(tokens per epoch, mean tokens per example, where they come from) of a prepared training file."""
    path = Path(train_file)
    stats_file = path.parent / "prepare_stats.json"
    if stats_file.is_file():
        tok = (read_json(stats_file).get("files") or {}).get(path.name, {}).get("tokens") or {}
        if tok.get("n"):
            return tok["n"] * tok["mean"], tok["mean"], f"{stats_file.name}: {tok['n']:,} examples x {tok['mean']:g}"
    if path.is_file():
        n = sum(1 for _ in path.open(encoding="utf-8"))
        mean = path.stat().st_size / max(n, 1) / 4  # about 4 bytes of the line per token: an over-estimate
        return n * mean, mean, f"{path.name}: {n:,} lines, ~{mean:.0f} tokens each (bytes / 4)"
    tokens, source = RECORDED_EPOCH_TOKENS.get(path.name, RECORDED_EPOCH_TOKENS["stage1_train.jsonl"])
    return tokens, RECORDED_MEAN_TOKENS, f"recorded before prepare ran ({source})"


def _default_tokens_per_s(backend: str, device_kind: str) -> float:
    """The backend's own conservative figure (train/backends), without importing the backend's libraries."""
    if backend == "unsloth":
        from t2s_fast.train.backends.unsloth import UnslothBackend

        return UnslothBackend().default_tokens_per_s(device_kind)
    from t2s_fast.train.backends.hf import HFBackend

    return HFBackend().default_tokens_per_s(device_kind)


def project_training(cfg: RunConfig, stage: str, tc, device: Device, processes: int = 1) -> Projection:
    """Start-up + planned tokens / (expected tokens per second x data-parallel processes) (train/projection.py)."""
    from t2s_fast.train.projection import expected_tokens_per_s

    per_epoch, mean, source = epoch_tokens(tc.train_file)
    if tc.max_steps > 0:
        batch = tc.global_batch_size or tc.per_device_train_batch_size * tc.gradient_accumulation_steps * processes
        tokens = tc.max_steps * batch * mean
        how = f"{tc.max_steps} steps x {batch} examples x {mean:.0f} tokens ({source})"
    else:
        tokens = tc.num_train_epochs * per_epoch
        how = f"{tc.num_train_epochs:g} epochs x {per_epoch:,.0f} tokens ({source})"
    backend = tc.backend if tc.backend != "auto" else ("unsloth" if device.kind == "cuda" else "hf")
    shape = model_shape(tc.model_name)
    exp = None
    if shape is not None:
        exp = expected_tokens_per_s(shape, device_name=device.name, device_kind=device.kind, backend=backend,
                                    packing=tc.packing, checkpointing="off",
                                    attention="varlen" if tc.packing and backend == "unsloth" else "sdpa")
    tps = exp.tokens_per_s if exp and exp.tokens_per_s else _default_tokens_per_s(backend, device.kind)
    rate = f"{tps:,.0f} tok/s ({exp.basis if exp and exp.tokens_per_s else f'{backend} default on {device.kind}'})"
    start = TRAIN_START_S.get(stage, TRAIN_START_S["stage2"])
    seconds = start + tokens / (tps * processes)
    over = f" x {processes} processes (linear scaling assumed, not measured)" if processes > 1 else ""
    return _priced(cfg, seconds, f"{how} at {rate}{over}, + {start:.0f} s to start ({TRAIN_START_SOURCE})")


def project_rl(cfg: RunConfig, rl_cfg, train_prompts: int | None = None) -> Projection:
    """The filter pass (its engine's start, unless it samples in the colocated engine, + samples x seconds each) +
    the start + steps x seconds a step, scaled from the measured 16 prompts x 8 completions by the completions a
    step generates. ``train_prompts``: the train file's questions (default: the recorded stage-1 count)."""
    steps = getattr(rl_cfg, "max_steps", None)
    measured_on = cfg.model_name
    if measured_on not in RL_MEASURED:  # the nearest measured size
        shape = model_shape(cfg.model_name)
        size = shape.n_params if shape is not None else 0
        measured_on = ("Qwen/Qwen3-8B" if size > 4e9 else "qwen2.5-coder-1.5b" if size > 1e9
                       else "qwen2.5-coder-0.5b")
    per_step, start, filter_start, gen_s, score_s, source = RL_MEASURED[measured_on]
    per_sample = gen_s + score_s
    if not steps or steps < 0:
        return Projection(None, None, "unknown: the RL section sets no max_steps (its own budget guard stops it)")
    completions = getattr(rl_cfg, "prompts_per_step", 16) * getattr(rl_cfg, "num_generations", 8)
    per = per_step * completions / 128
    prompts = train_prompts or RL_TRAIN_PROMPTS[0]
    if getattr(rl_cfg, "max_prompts", None):
        prompts = min(prompts, rl_cfg.max_prompts)
    samples = prompts * getattr(rl_cfg, "filter_samples", 8)
    colocated = getattr(rl_cfg, "filter_engine", "separate") == "colocated"
    engine_s = 0.0 if colocated or not samples else filter_start  # the colocated engine is already up
    filter_s = engine_s + samples * per_sample
    of = "" if measured_on == cfg.model_name else f"; measured on {measured_on}, not on {cfg.model_name}"
    filt = (f"filter pass {samples:,} samples x {per_sample:.4f} s"
            + (f" + {engine_s:.0f} s engine start" if engine_s else "") + " + ") if samples else ""
    return _priced(cfg, filter_s + start + steps * per,
                   f"{filt}{steps} steps x {per:.1f} s ({completions} completions a step, scaled from {per_step:g} s "
                   f"for 128) + {start:.0f} s to start ({source}{of})")


def _eval_figures(cfg: RunConfig, device: Device):
    if device.kind != "cuda":
        return EVAL_MEASURED["cpu"]
    shape = model_shape(cfg.model_name)
    big = shape is not None and shape.n_params > 1e9
    start, per, source = EVAL_MEASURED["gpu-1.5b" if big else "gpu-0.5b"]
    if shape is not None and shape.n_params > 2e9:  # no larger model measured: generation scaled by parameters
        return start, per * shape.n_params / 1.54e9, f"{source}, generation scaled by parameters (not measured)"
    return start, per, source


def project_eval(cfg: RunConfig, ecs: list, n_questions: int, n_adapters: int, device: Device) -> Projection:
    """Evaluations of the same models through one engine (one start): each one's answers x seconds an answer."""
    start, per, source = _eval_figures(cfg, device)
    engines = max(1, ecs[0].data_parallel_size)  # vLLM data parallel: the answers shared by that many engines
    per /= engines
    seconds, parts = start, []
    for ec in ecs:
        answers = n_questions * n_adapters * max(1, ec.n_samples)
        factor = REPAIR_FACTOR if ec.repair != "none" else 1.0
        seconds += answers * per * factor
        rep = f" x {factor:g} (repair {ec.repair})" if factor != 1.0 else ""
        parts.append(f"{answers:,} answers x {per:.4f} s{rep}")
    over = f" over {engines} engines (linear scaling assumed, not measured)" if engines > 1 else ""
    return _priced(cfg, seconds, f"{n_questions:,} questions x {n_adapters} model(s): {' + '.join(parts)}{over} + "
                                 f"{start:.0f} s ({source})")


def count_questions(ec) -> int:
    """How many questions an evaluation asks (its file's lines or the Spider split's items, on --db's databases,
    up to --limit); a set not written yet counts as Spider's own (held-out: about a tenth of Spider's training
    set, 700)."""
    from t2s_fast.jsonl import read_jsonl

    if ec.questions:
        path = Path(ec.questions)
        rows = read_jsonl(path) if path.is_file() else None
        default = 700
    else:
        split = Path(ec.spider_dir or ".") / f"{ec.split}.json"
        rows = read_json(split) if split.is_file() else None
        default = 1034
    if rows is None:
        n = default
    else:
        n = sum(1 for r in rows if not ec.dbs or r.get("db_id") in ec.dbs)
    return min(n, ec.limit) if ec.limit else n


def make_plan(cfg: RunConfig, projections: dict[str, Projection], device: Device) -> dict:
    """The whole plan: each stage on or off, its projection, the total and the reserve under the cap."""
    stages = {}
    for s in STAGES:
        p = projections.get(s)
        stages[s] = {"on": cfg.stage_on(s), **(p.as_dict() if p else {"seconds": None, "usd": None, "basis": ""})}
    on = [v for v in stages.values() if v["on"]]
    total_usd = round(sum(v["usd"] or 0.0 for v in on), 6)
    total_s = round(sum(v["seconds"] or 0.0 for v in on), 1)
    return {"max_cost_usd": cfg.max_cost_usd, "gpu_hourly_usd": cfg.gpu_hourly_usd, "gpus": cfg.gpus,
            "device": asdict(device), "stages": stages, "total_usd": total_usd, "total_seconds": total_s,
            "reserve_usd": round(cfg.max_cost_usd - total_usd, 6),
            "training_stages": [s for s in TRAINING if stages[s]["on"]]}


def _money(x) -> str:
    return "?" if x is None else f"${x:.4f}" if x < 1 else f"${x:.2f}"


def _minutes(s) -> str:
    return "?" if s is None else f"{s / 60:.1f}"


def format_plan(plan: dict) -> str:
    """The plan as printed before the run starts."""
    lines = [f"plan: cap ${plan['max_cost_usd']:g} at ${plan['gpu_hourly_usd']:g}/h x {plan['gpus']} GPU(s) on "
             f"{plan['device']['name']}",
             f"  {'stage':<8} {'dollars':>9} {'minutes':>8}  basis"]
    for name, s in plan["stages"].items():
        if not s["on"]:
            lines.append(f"  {name:<8} {'off':>9}")
            continue
        lines.append(f"  {name:<8} {_money(s['usd']):>9} {_minutes(s['seconds']):>8}  {s['basis']}")
    lines.append(f"  {'total':<8} {_money(plan['total_usd']):>9} {_minutes(plan['total_seconds']):>8}")
    reserve = plan["reserve_usd"]
    lines.append(f"  {'reserve':<8} {_money(reserve) if reserve >= 0 else '-' + _money(-reserve):>9}"
                 + ("  (left under the cap if the plan holds)" if reserve >= 0 else
                    "  OVER THE CAP: later stages that do not fit what is left will be skipped"))
    return "\n".join(lines)
