"""`ablate(cfg)`: many arms (EvalConfig overrides) evaluated through ONE generation engine on a held-out set, the
best arm of each group chosen there, and optionally each group's baseline and winner reported on Spider dev.

Each arm is an ordinary evaluation run in ``out_dir/arms/<arm>/`` (`harness.evaluate` with the shared engine
given), so it resumes from its predictions.jsonl like any `t2s-fast eval`. An arm that finished (its arm.json
holds the same settings) is not evaluated again: its report is kept. The engine is opened on the first request
that has to be generated, so a fully finished ablation opens none.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.evaluate.ablation_config import AblationConfig, Arm, check_ablation, final_config
from t2s_fast.evaluate.config import EvalConfig
from t2s_fast.evaluate.lazy_engine import LazyEngine

log = logging.getLogger(__name__)
ARM_FILE = "arm.json"  # written after an arm's report: its settings and its wall seconds


def _comparable(ecfg: EvalConfig) -> dict:
    return {k: v for k, v in asdict(ecfg).items() if k != "force"}


def _without_idle_repair(settings: dict) -> dict:
    """``settings`` without repair_k and repair_temperature when no repair runs: they change nothing then, so an
    arm finished before their defaults changed (repair_k 4 -> 8) is still kept."""
    if settings.get("repair") != "none":
        return settings
    return {k: v for k, v in settings.items() if k not in ("repair_k", "repair_temperature")}


def run_arm(cfg: AblationConfig, label: str, ecfg: EvalConfig, engine: LazyEngine) -> dict:
    """One arm's report (evaluated now, or the finished one kept) and its wall seconds."""
    from t2s_fast.evaluate.harness import evaluate
    from t2s_fast.evaluate.report import load_report
    from t2s_fast.jsonl import read_json, write_json

    arm_file = Path(ecfg.out_dir) / ARM_FILE
    if arm_file.is_file() and (Path(ecfg.out_dir) / "report.json").is_file():
        done = read_json(arm_file)
        if _without_idle_repair(done.get("settings") or {}) == _without_idle_repair(_comparable(ecfg)):
            log.info("ablate: %s finished before; its report is kept", label)
            _keep_per_question_file(Path(ecfg.out_dir))
            return {"report": load_report(ecfg.out_dir), "wall_seconds": done["wall_seconds"], "kept": True}
    log.info("ablate: %s starts (%s)", label, ecfg.out_dir)
    opened_before, t0 = engine.open_seconds, time.perf_counter()
    try:
        report = evaluate(ecfg, generator=engine)
    except T2SError as exc:
        raise T2SError(f"{cfg.source or 'ablation config'}: {label}: {exc}") from None
    wall = time.perf_counter() - t0 - (engine.open_seconds - opened_before)  # the engine start is priced apart
    write_json(arm_file, {"settings": _comparable(ecfg), "wall_seconds": round(wall, 3)})
    return {"report": report, "wall_seconds": round(wall, 3), "kept": False}


def ablate(cfg: AblationConfig, *, on_arm_done=None) -> dict:
    """Run (or resume) every arm in one engine, choose per group on the held-out set, run the final report,
    and write ablation.json/md/png. ``on_arm_done(name)`` is called after each arm (tests, progress)."""
    from t2s_fast import distributed
    from t2s_fast.evaluate.ablation_report import choose, paired_choices, run_row, write_ablation

    if distributed.is_distributed():
        raise T2SError("ablate runs in one process (its one engine spreads over GPUs itself: tensor_parallel_size / "
                       "data_parallel_size in \"eval\"); do not start it under accelerate launch or torchrun")
    arms, configs = check_ablation(cfg)
    # the engine's settings are the shared ones (an arm's seed is per request: GenSettings.seed)
    engine = LazyEngine(replace(configs[arms[0].name], seed=int(cfg.eval.get("seed", EvalConfig.seed))))
    adapter = cfg.choose_adapter or _default_adapter(configs[arms[0].name])
    rows, finals = [], {}
    try:
        for arm in arms:
            res = run_arm(cfg, f"arm {arm.name}", configs[arm.name], engine)
            rows.append(run_row(cfg, res, configs[arm.name], adapter, name=arm.name, group=arm.group,
                                changes=dict(arm.overrides)))
            _log_done(f"arm {arm.name}", rows[-1])
            if on_arm_done is not None:
                on_arm_done(arm.name)
        choices = choose(arms, rows, adapter)
        for arm in _final_arms(cfg, arms, choices):
            fcfg = final_config(cfg, arm)
            res = run_arm(cfg, f"final {arm.name}", fcfg, engine)
            finals[arm.name] = run_row(cfg, res, fcfg, adapter, arm=arm.name, group=arm.group,
                                       changes=dict(arm.overrides), split=fcfg.split)
            _log_done(f"final {arm.name}", finals[arm.name])
    finally:
        engine.close()
    paired = paired_choices(choices, rows, finals, adapter)
    summary = {"config": cfg.source, "out_dir": cfg.out_dir, "choose_adapter": adapter,
               "gpu_hourly_usd": cfg.gpu_hourly_usd, "engine_open_seconds": round(engine.open_seconds, 3),
               "engine_opened": engine.engine is not None, "shared": dict(cfg.eval),
               "chosen_on": next(iter(choices.values()))["chosen_on"], "arms": rows, "choices": choices,
               "final": finals, "paired": paired}
    write_ablation(Path(cfg.out_dir), summary)
    return summary


def _keep_per_question_file(out_dir: Path) -> None:
    """An arm kept from a run made before eval wrote scored.jsonl.gz gets it now, from its scored.jsonl."""
    from t2s_fast.evaluate.paired import PER_QUESTION_FILE, PLAIN_FILE, read_per_question, write_per_question

    if not (out_dir / PER_QUESTION_FILE).is_file() and (out_dir / PLAIN_FILE).is_file():
        write_per_question(out_dir, read_per_question(out_dir / PLAIN_FILE))


def _default_adapter(ecfg: EvalConfig) -> str:
    return next(iter(ecfg.adapters), None) or ecfg.adapter_names[0]


def _final_arms(cfg: AblationConfig, arms: list[Arm], choices: dict) -> list[Arm]:
    """Each listed group's baseline, then its winner (once when they are the same)."""
    by_name, out = {a.name: a for a in arms}, []
    for group in (cfg.final or {}).get("groups", []):
        chosen = choices[group]
        for name in (chosen["baseline"], chosen["arm"]):
            if name and by_name[name] not in out:
                out.append(by_name[name])
    return out


def _log_done(label: str, row: dict) -> None:
    ex = "n/a" if row["ex"] is None else f"{100 * row['ex']:.1f}%"
    log.info("ablate: %s done: EX %s (%s/%s), %.1f s", label, ex, row["correct"], row["n"], row["wall_seconds"])
