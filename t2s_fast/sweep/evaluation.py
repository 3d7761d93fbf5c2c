"""The sweep's evaluations, in one process and through ONE engine: every candidate adapter on the held-out set,
the choice (sweep/rule.py), then the chosen one on the final set (greedy, then maj@K), beside its baseline (the
variant max_eval_loss names, else the first) so the two are compared question by question (`evaluate/paired.py`).
The final runs reuse the held-out engine, whose adapters include the chosen one, instead of starting an engine for
each (on an H200 a cold vLLM start took 86 s for the 0.5B, against 125 s to generate 16,074 held-out answers). Each
run resumes from its predictions like any `t2s-fast eval`, and the engine is opened only when something is left to
generate, so a re-run that only chooses again opens it for the new choice's final report alone."""

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
        baseline = baseline_of(cfg, job.variants, candidates)
        paired = paired_heldout(cfg, chosen, baseline)
        if chosen and not rule.get("error"):
            log.info("sweep: chosen %s (held-out EX %.3f); its final report in the same engine", chosen["name"],
                     chosen["ex"])
            finalists = {chosen["name"]: chosen["path"]}
            if baseline and baseline["name"] != chosen["name"]:  # the baseline too: compared question by question
                finalists[baseline["name"]] = baseline["path"]
            for label, fcfg in final_configs(cfg, finalists):
                final[label] = _final_row(evaluate(fcfg, generator=engine), chosen["name"], fcfg.out_dir)
                if len(finalists) > 1:
                    paired.setdefault("final", {})[label] = _compare(fcfg.out_dir, baseline["name"], chosen["name"])
    finally:
        engine.close()
    return {"heldout": heldout_info(cfg, report), "candidates": candidates, "chosen": chosen, "rule": rule,
            "final": final, "paired": paired, "engine_open_seconds": round(engine.open_seconds, 3),
            "seconds": round(time.perf_counter() - t0, 3)}


def baseline_of(cfg: SweepConfig, variants: list[Variant], candidates: list[dict]) -> dict | None:
    """The candidate a choice is compared with: the final adapter of the variant max_eval_loss names, else of the
    file's first variant (None when it was not evaluated)."""
    name = cfg.max_eval_loss if isinstance(cfg.max_eval_loss, str) else (variants[0].name if variants else None)
    return next((c for c in candidates if c["name"] == f"{name}@final"), None)


def _compare(run_dir, baseline: str, chosen: str) -> dict:
    from t2s_fast.errors import T2SError
    from t2s_fast.evaluate.paired import compare_files

    try:
        return compare_files(run_dir, baseline, run_dir, chosen, label_a=baseline, label_b=chosen)
    except T2SError as exc:
        return {"error": str(exc)}


def paired_heldout(cfg: SweepConfig, chosen: dict | None, baseline: dict | None) -> dict:
    """{"baseline", "chosen", "heldout": comparison}: the chosen candidate against the baseline, question by
    question, on the held-out set ({} when there is nothing to compare)."""
    if not chosen or not baseline or chosen["name"] == baseline["name"]:
        return {}
    return {"baseline": baseline["name"], "chosen": chosen["name"],
            "heldout": _compare(heldout_dir(cfg), baseline["name"], chosen["name"])}
