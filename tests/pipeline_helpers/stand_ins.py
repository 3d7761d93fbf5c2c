"""Stand-ins for the stages' heavy functions (training, evaluation, merge, RL) in the fast `t2s-fast run` tests:
each writes what the real one writes for the run (adapter and checkpoint folders, run.json, train_log.jsonl, an
evaluation report, a merged folder) in a blink, and notes how it was called, so the pipeline's own logic (the
cap, skipping, resuming, the cascade of changed settings, the wiring of stages) is tested without a model."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path

CALLS: list[tuple[str, object]] = []
TRAIN_COST = 0.25  # dollars each stand-in training run reports in its run.json


def _adapter(folder: Path, seed: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8,
                                                            "target_modules": ["q_proj"],
                                                            "base_model_name_or_path": "tiny"}))
    (folder / "adapter_model.safetensors").write_bytes(seed.encode())


def fake_train(tc) -> dict:
    CALLS.append(("train", tc))
    out = Path(tc.output_dir)
    steps = tc.max_steps if tc.max_steps > 0 else 2
    _adapter(out / "checkpoints" / "checkpoint-1", f"{out.name}-{tc.learning_rate}-1")
    _adapter(out / "adapter", f"{out.name}-{tc.learning_rate}-final")
    rows = [{"step": s, "epoch": s / steps, "loss": 2.0 / s, "cost_usd": TRAIN_COST * s / steps}
            for s in range(1, steps + 1)]
    rows.append({"step": steps, "eval_loss": 1.5, "cost_usd": TRAIN_COST})
    (out / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = {"stop_reason": "completed", "global_step": steps, "cost_usd": TRAIN_COST,
            "adapter_dir": str(out / "adapter"), "final_loss": rows[-2]["loss"], "final_eval_loss": 1.5,
            "config": tc.to_dict()}
    (out / "run.json").write_text(json.dumps(info))
    return info


def fake_evaluate(ec, generator=None) -> dict:
    CALLS.append(("evaluate", ec))
    out = Path(ec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scored.jsonl").write_text("")
    adapters = {}
    for i, name in enumerate(ec.adapter_names):
        ex = 0.5 if "step-1" in name else 0.25 + 0.01 * i  # a checkpoint wins the held-out choice
        adapters[name] = {"ex": ex, "n": 4, "correct": int(4 * ex), "path": ec.adapters.get(name),
                          "by_hardness": {"easy": {"ex": ex, "n": 4}}}
    return {"adapters": adapters, "settings": {"suite": ec.suite, "split": ec.split,
                                               "source": ec.questions or f"{ec.spider_dir}/{ec.split}.json"}}


def fake_merge(job: dict) -> str:
    CALLS.append(("merge", job))
    out = Path(job["output_dir"])
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")
    return str(out)


def fake_prepare(ctx, budget) -> dict:
    CALLS.append(("prepare", None))
    out = ctx.cfg.prepared_dir
    out.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"db_id": "farm", "question": "q", "sql": "SELECT 1", "dialect": "sqlite"}) + "\n"
    for name in ("stage1_train.jsonl", "stage1_valid.jsonl", "stage2_mixed_train.jsonl", "stage2_mixed_valid.jsonl"):
        (out / name).write_text(line * 4)
    return {"out_dir": str(out)}


@dataclass
class FakeRLConfig:
    """The fields the RL stage's RLConfig is known to have (t2s_fast.rl.config, built by the lead)."""

    output_dir: str = ""
    model_name: str = ""
    adapter_path: str | None = None
    train_file: str = ""
    db_root: str | None = None
    max_steps: int = 10
    max_cost_usd: float | None = None
    gpu_hourly_usd: float = 3.44
    resume: bool = False
    learning_rate: float = 1e-6

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def fake_train_rl(rc) -> dict:
    CALLS.append(("train_rl", rc))
    out = Path(rc.output_dir)
    _adapter(out / "adapter", "rl-final")
    rows = [{"step": s, "reward": 0.1 * s, "cost_usd": 0.01 * s} for s in range(1, rc.max_steps + 1)]
    (out / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = {"stop_reason": "completed", "global_step": rc.max_steps, "cost_usd": 0.01 * rc.max_steps,
            "adapter_dir": str(out / "adapter")}
    (out / "run.json").write_text(json.dumps(info))
    return info


def install(monkeypatch, *, rl: bool = False) -> list:
    """Replace the heavy functions; with rl, a stand-in t2s_fast.rl package (RLConfig, train_rl)."""
    from t2s_fast.pipeline import stages

    CALLS.clear()
    monkeypatch.setattr(stages, "_train", fake_train)
    monkeypatch.setattr(stages, "_evaluate", fake_evaluate)
    monkeypatch.setattr(stages, "_merge", fake_merge)
    monkeypatch.setattr(stages, "_run_prepare", fake_prepare)
    if rl:
        names = ("t2s_fast.rl", "t2s_fast.rl.config", "t2s_fast.rl.trainer")
        pkg, config, trainer = (types.ModuleType(n) for n in names)
        config.RLConfig = FakeRLConfig
        trainer.train_rl = fake_train_rl
        for mod in (pkg, config, trainer):
            monkeypatch.setitem(sys.modules, mod.__name__, mod)
    return CALLS
