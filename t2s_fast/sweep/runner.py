"""`sweep(cfg)`: train the variants (one after another, or `parallel` at once) under one dollar cap, evaluate
every adapter in one engine on the held-out set, choose the best by execution accuracy (ties: cheaper; with
max_eval_loss only among the candidates whose eval loss is at most the cap: sweep/rule.py), and report the chosen
one on Spider dev through the same engine (sweep/evaluation.py).

Resuming: ``sweep_state.json`` (written atomically after every change) says which variants finished. A
re-run skips those, continues a half-finished variant with train's own ``--resume`` (its budget guard
still counts the dollars it already spent), and starts the rest; the evaluations resume from their
predictions.jsonl as `eval` always does. The choice is made again on every run, so a finished sweep re-run
with another max_eval_loss chooses from the existing evaluations and reports only the new choice on Spider dev.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.jsonl import read_json, write_json
from t2s_fast.sweep.config import SweepConfig, Variant, expand_variants
from t2s_fast.sweep.isolate import Interrupted, call, resolve
from t2s_fast.sweep.plan import check_plan, heldout_dir, run_dir, train_config

log = logging.getLogger(__name__)

STATE_FILE = "sweep_state.json"
FINISHED = ("done", "budget", "failed")  # never trained again on a resume
TRAINED = ("done", "budget")  # have an adapter to evaluate
_IGNORED_ON_RESUME = ("max_cost_usd", "resume")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SweepState:
    """sweep_state.json: {"variants": {name: record}, "eval_seconds", "heldout", "chosen", "rule", "final"}."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / STATE_FILE
        self.data = read_json(self.path) if self.path.is_file() else {"version": 1, "variants": {}, "eval_seconds": 0.0}

    @property
    def variants(self) -> dict:
        return self.data["variants"]

    def save(self) -> None:
        write_json(self.path, self.data)

    def spent(self, *, excluding: list[str]) -> float:
        """What the variants cost so far, but those named (the one starting, and any training now)."""
        return sum(r.get("cost_usd") or 0.0 for n, r in self.variants.items() if n not in excluding)


def _comparable(train_settings: dict) -> dict:
    return {k: v for k, v in train_settings.items() if k not in _IGNORED_ON_RESUME}


def _adopt_finished_run(folder: Path) -> dict | None:
    """run.json of a run that ended (completed or stopped by its budget) before the state could say so."""
    info = read_json(folder / "run.json") if (folder / "run.json").is_file() else None
    return info if info and info.get("stop_reason") in ("completed", "budget") else None


def _record_run(rec: dict, info: dict) -> dict:
    status = {"completed": "done", "budget": "budget"}.get(info.get("stop_reason"), "interrupted")
    rec.update(status=status, stop_reason=info.get("stop_reason"), cost_usd=info.get("cost_usd"),
               global_step=info.get("global_step"), finished_at=info.get("finished_at"),
               adapter_dir=info.get("adapter_dir"))
    return rec


def prepare_variant(cfg: SweepConfig, v: Variant, state: SweepState, *, reserved: float = 0.0, share: int = 1,
                    running: list[str] = ()):
    """(record, TrainConfig to run, or None when the variant is already settled: adopted or skipped).

    Its budget is what is left of the cap (less eval_reserve_usd, what finished runs cost and `reserved`, the
    budgets of the `running` runs), divided by `share` (the runs about to start with it)."""
    folder = run_dir(cfg, v.name)
    rec = state.variants.setdefault(v.name, {"name": v.name, "overrides": v.overrides, "run_dir": str(folder)})
    finished = _adopt_finished_run(folder)
    if finished:  # it ended before the state could say so: not trained again
        rec["train_config"] = {k: v for k, v in finished.get("config", {}).items() if k not in _IGNORED_ON_RESUME}
        return _record_run(rec, finished), None
    left = round(cfg.max_cost_usd - cfg.eval_reserve_usd - state.spent(excluding=[v.name, *running]) - reserved, 6)
    if left < cfg.min_run_usd:
        rec.update(status="skipped", budget_usd=left, reason=f"${left:.4f} of the ${cfg.max_cost_usd:g} cap left "
                                                             f"(a run needs min_run_usd ${cfg.min_run_usd:g})")
        return rec, None
    budget = round(left / max(1, share), 6)
    resume = folder.is_dir() and any(folder.iterdir())
    tc = train_config(cfg, v, budget=budget, resume=resume)
    rec.update(status="running", budget_usd=budget, resumed=resume, started_at=rec.get("started_at") or _now(),
               train_config=tc.to_dict())
    state.save()
    log.info("sweep: training %s with $%.4f%s", v.name, budget, " (resuming)" if resume else "")
    return rec, tc


def finish_variant(cfg: SweepConfig, v: Variant, rec: dict, outcome) -> dict:
    """Record a training run's end: its run.json info, or the T2SError it raised (status failed)."""
    if isinstance(outcome, T2SError):
        folder = run_dir(cfg, v.name)
        spent = read_json(folder / "run.json").get("cost_usd") if (folder / "run.json").is_file() else None
        rec.update(status="failed", error=str(outcome), cost_usd=spent)
        return rec
    return _record_run(rec, outcome)


def train_variant(cfg: SweepConfig, v: Variant, state: SweepState, *, isolate: bool, train_fn=None) -> dict:
    """Train (or resume, or skip) one variant; its record is saved before and after training."""
    rec, tc = prepare_variant(cfg, v, state)
    if tc is None:
        return rec
    try:
        info = call(train_fn or _train, tc, isolate=isolate)
    except T2SError as exc:
        return finish_variant(cfg, v, rec, exc)
    return finish_variant(cfg, v, rec, info)


def _train(tc):
    from t2s_fast.train.trainer import train

    return train(tc)


def _check_unchanged(cfg: SweepConfig, v: Variant, rec: dict) -> None:
    """A finished variant is not retrained, so its settings must still be the file's."""
    if "train_config" not in rec:
        return
    now = train_config(cfg, v, budget=None, resume=False).to_dict()
    was = rec["train_config"]
    changed = sorted(k for k in set(now) | set(was) if k not in _IGNORED_ON_RESUME and now.get(k) != was.get(k))
    if changed:
        raise T2SError(f"{cfg.source or 'sweep config'}: variant {v.name} was trained with other settings "
                       f"({', '.join(changed)} changed); give it a new name or use a new out_dir")


def train_all(cfg: SweepConfig, variants: list[Variant], state: SweepState, *, isolate: bool,
              on_variant_done=None, train_fn=None) -> bool:
    """Every variant not yet finished, in order (cfg.parallel at once, each in its own process). False when a
    run was interrupted (the sweep stops)."""
    todo = []
    for v in variants:
        rec = state.variants.get(v.name)
        if rec and rec.get("status") in FINISHED:
            _check_unchanged(cfg, v, rec)
        else:
            todo.append(v)
    t0 = time.time()
    try:
        if cfg.parallel > 1 and isolate:
            return _train_in_parallel(cfg, todo, state, train_fn=train_fn or _train, on_variant_done=on_variant_done)
        for v in todo:
            try:
                rec = train_variant(cfg, v, state, isolate=isolate, train_fn=train_fn)
            except Interrupted:
                return False
            if not _settled(state, v, rec, on_variant_done):
                return False
        return True
    finally:
        if todo:
            state.data["train_seconds"] = round(state.data.get("train_seconds", 0.0) + time.time() - t0, 3)
            state.save()


def _settled(state: SweepState, v: Variant, rec: dict, on_variant_done) -> bool:
    """Save the variant's record; False when its run was interrupted (the sweep stops), else tell on_variant_done."""
    state.save()
    if rec["status"] == "interrupted":
        return False
    if on_variant_done is not None:
        on_variant_done(v.name, rec)
    return True


def _train_in_parallel(cfg: SweepConfig, todo: list[Variant], state: SweepState, *, train_fn, on_variant_done) -> bool:
    """cfg.parallel runs at once (sweep/parallel.py); each run's budget is its share of what is left of the cap
    once the runs already training have theirs."""
    from t2s_fast.sweep.parallel import run_pool

    records = {}

    def start(v: Variant, running: list[Variant], waiting: int):
        reserved = sum(state.variants[r.name].get("budget_usd") or 0.0 for r in running)
        share = min(cfg.parallel - len(running), waiting + 1)
        rec, tc = prepare_variant(cfg, v, state, reserved=reserved, share=share, running=[r.name for r in running])
        records[v.name] = rec
        if tc is None:
            finish(v, None)
            return None
        return train_fn, tc

    def finish(v: Variant, outcome) -> bool:
        rec = records[v.name] if outcome is None else finish_variant(cfg, v, records[v.name], outcome)
        return _settled(state, v, rec, on_variant_done)

    return run_pool(todo, slots=cfg.parallel, start=start, finish=finish, devices=cfg.devices)


def sweep_adapters(cfg: SweepConfig, variants: list[Variant], state: SweepState) -> dict[str, str]:
    """Every trained variant's final adapter (and, with cfg.checkpoints, every checkpoint): the candidates."""
    from t2s_fast.evaluate.checkpoints import checkpoint_adapters

    adapters = {}
    for v in variants:
        if state.variants.get(v.name, {}).get("status") not in TRAINED:
            continue
        found = checkpoint_adapters(run_dir(cfg, v.name), prefix=f"{v.name}@")
        adapters.update(found if cfg.checkpoints else {k: p for k, p in found.items() if k == f"{v.name}@final"})
    if not adapters:
        raise T2SError(f"{cfg.out_dir}: no variant finished training (see {STATE_FILE}); nothing to evaluate")
    return adapters


def evaluate_all(cfg: SweepConfig, variants: list[Variant], state: SweepState, *, isolate: bool) -> dict:
    """The held-out evaluation, the choice and the final report in one process and one engine
    (sweep/evaluation.py); the state records them (and the seconds they took, even when interrupted)."""
    from t2s_fast.sweep.evaluation import SweepEvaluation, evaluate_and_choose

    adapters = sweep_adapters(cfg, variants, state)
    log.info("sweep: evaluating %d adapters in one engine on the held-out set", len(adapters))
    t0 = time.time()
    try:
        result = call(evaluate_and_choose, SweepEvaluation(cfg, variants, adapters), isolate=isolate)
    finally:
        state.data["eval_seconds"] = round(state.data.get("eval_seconds", 0.0) + time.time() - t0, 3)
        state.save()
    state.data.update(heldout=result["heldout"], chosen=result["chosen"], rule=result["rule"], final=result["final"],
                      paired=result["paired"], engine_open_seconds=result["engine_open_seconds"])
    state.save()
    return result


def report_only(cfg: SweepConfig) -> dict:
    """Choose again from the finished held-out evaluation and write the report; nothing is trained, evaluated or
    run on Spider dev (an earlier final report is kept only if it is the same choice's)."""
    from t2s_fast.evaluate.report import load_report
    from t2s_fast.sweep.evaluation import baseline_of, candidates_of, heldout_info, paired_heldout
    from t2s_fast.sweep.report import build_summary, write_sweep_report
    from t2s_fast.sweep.rule import choose

    cfg.validate()
    variants = expand_variants(cfg)
    state = SweepState(Path(cfg.out_dir))
    if not (heldout_dir(cfg) / "report.json").is_file():
        raise T2SError(f"{cfg.out_dir}: no finished held-out evaluation ({heldout_dir(cfg) / 'report.json'}); run "
                       "the sweep without --report-only")
    report = load_report(heldout_dir(cfg))
    candidates = candidates_of(cfg, variants, report)
    chosen, rule = choose(cfg.max_eval_loss, candidates)
    same = (state.data.get("chosen") or {}).get("name") == (chosen or {}).get("name")
    paired = paired_heldout(cfg, chosen, baseline_of(cfg, variants, candidates))
    if same and (state.data.get("paired") or {}).get("final"):
        paired["final"] = state.data["paired"]["final"]
    state.data.update(heldout=heldout_info(cfg, report), chosen=chosen, rule=rule,
                      final=state.data.get("final") if same else {}, paired=paired)
    state.save()
    summary = build_summary(cfg, variants, state, candidates, chosen, state.data.get("final") or {})
    write_sweep_report(Path(cfg.out_dir), summary)
    return summary


def sweep(cfg: SweepConfig, *, on_variant_done=None, train_fn=None) -> dict:
    """Run (or resume) the whole sweep; returns the summary written to sweep.json ({"interrupted": True} when a
    training run was stopped by a signal: run the same command again to continue)."""
    from t2s_fast.sweep.report import build_summary, write_sweep_report

    cfg.validate()
    variants = expand_variants(cfg)
    check_plan(cfg, variants)
    isolate = resolve(cfg.isolate)
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    state = SweepState(Path(cfg.out_dir))
    if not train_all(cfg, variants, state, isolate=isolate, on_variant_done=on_variant_done, train_fn=train_fn):
        return {"interrupted": True, "state": str(state.path)}
    result = evaluate_all(cfg, variants, state, isolate=isolate)
    candidates, chosen, rule = result["candidates"], result["chosen"], result["rule"]
    if rule.get("error"):  # the report still shows every candidate and why none was eligible
        write_sweep_report(Path(cfg.out_dir), build_summary(cfg, variants, state, candidates, None, {}))
        raise T2SError(f"{cfg.source or 'sweep config'}: {rule['error']}; see {Path(cfg.out_dir) / 'sweep.md'}")
    summary = build_summary(cfg, variants, state, candidates, chosen, result["final"])
    write_sweep_report(Path(cfg.out_dir), summary)
    return summary
