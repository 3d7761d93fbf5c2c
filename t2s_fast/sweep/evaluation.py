"""The sweep's evaluations, in one process and through ONE engine: every candidate adapter on the held-out set,
the choice (sweep/rule.py), then the chosen one alone on the final set (greedy, then maj@K). The final runs reuse
the held-out engine, whose adapters include the chosen one, instead of starting an engine for each (on an H200 a
cold vLLM start took 86 s for the 0.5B, against 125 s to generate 16,074 held-out answers). Each run resumes from
its predictions like any `t2s-fast eval`, and the engine is opened only when something is left to generate, so a
re-run that only chooses again opens it for the new choice's final report alone."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from t2s_fast.sweep.config import SweepConfig, Variant
from t2s_fast.sweep.plan import final_configs, heldout_config, heldout_dir, run_dir

log = logging.getLogger(__name__)


@dataclass
class SweepEvaluation:
    """What the evaluation process needs (picklable: it crosses into a spawned process)."""

    cfg: SweepConfig
    variants: list[Variant]
    adapters: dict[str, str]  # every candidate: "<variant>@step-N" / "<variant>@final" -> folder


def candidates_of(cfg: SweepConfig, variants: list[Variant], report: dict) -> list[dict]:
    """Every evaluated adapter of every variant: its step, held-out EX, eval loss and dollars to that step."""
    from t2s_fast.evaluate.checkpoints import checkpoint_rows

    return [{**row, "variant": v.name} for v in variants
            for row in checkpoint_rows(run_dir(cfg, v.name), report, prefix=f"{v.name}@")]


def heldout_info(cfg: SweepConfig, report: dict) -> dict:
    """What the sweep chose on, for sweep_state.json and the report."""
    return {"out_dir": str(heldout_dir(cfg)), "adapters": len(report["adapters"]),
            "suite": report["settings"]["suite"], "source": report["settings"]["source"]}


def _final_row(report: dict, name: str, out_dir: str) -> dict:
    a = report["adapters"][name]
    return {"ex": a["ex"], "correct": a["correct"], "n": a["n"], "out_dir": out_dir,
            "suite": report["settings"]["suite"], "split": report["settings"].get("split"),
            "source": report["settings"]["source"]}


def evaluate_and_choose(job: SweepEvaluation) -> dict:
    """Held-out evaluation, choice, final report, all through one lazily opened engine."""
    from t2s_fast.evaluate.harness import evaluate
    from t2s_fast.evaluate.lazy_engine import LazyEngine
    from t2s_fast.sweep.rule import choose

    cfg = job.cfg
    held = heldout_config(cfg, job.adapters)
    engine, t0 = LazyEngine(held), time.perf_counter()
    try:
        report = evaluate(held, generator=engine)
        candidates = candidates_of(cfg, job.variants, report)
        chosen, rule = choose(cfg.max_eval_loss, candidates)  # from this run's candidates: never an earlier choice
        final = {}
        if chosen and not rule.get("error"):
            log.info("sweep: chosen %s (held-out EX %.3f); its final report in the same engine", chosen["name"],
                     chosen["ex"])
            for label, fcfg in final_configs(cfg, {chosen["name"]: chosen["path"]}):
                final[label] = _final_row(evaluate(fcfg, generator=engine), chosen["name"], fcfg.out_dir)
    finally:
        engine.close()
    return {"heldout": heldout_info(cfg, report), "candidates": candidates, "chosen": chosen, "rule": rule,
            "final": final, "engine_open_seconds": round(engine.open_seconds, 3),
            "seconds": round(time.perf_counter() - t0, 3)}
