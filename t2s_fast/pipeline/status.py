"""status.json (rewritten at every heartbeat) and `t2s-fast status RUN_DIR`: which stage runs, how far it is, its
ETA, the dollars spent and projected, and the latest figure (a loss, a reward or an EX), read from the run's
files, so it works from another shell, after a reboot, or while the run is gone."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from t2s_fast.configs import setting as _f
from t2s_fast.errors import T2SError
from t2s_fast.jsonl import read_json, read_jsonl, write_json
from t2s_fast.pipeline.config import STAGES, TRAINING
from t2s_fast.pipeline.state import STATE_FILE, now, spent_usd, stage_usd

STATUS_FILE = "status.json"


@dataclass
class StatusConfig:
    run_dir: str = _f("", "A `t2s-fast run` folder (its out_dir).", argument=True, required=True)


def _last_row(folder: Path, key: str) -> dict | None:
    log_file = folder / "train_log.jsonl"
    if not log_file.is_file():
        return None
    rows = [r for r in read_jsonl(log_file, tolerate_torn_tail=True) if r.get(key) is not None]
    return rows[-1] if rows else None


def training_progress(folder: Path, settings: dict) -> dict:
    """Step, fraction done and the latest loss (or reward) of a training stage, from its train_log.jsonl."""
    row = _last_row(folder, "loss") or _last_row(folder, "reward")
    if row is None:
        return {"fraction": 0.0, "detail": "loading (no step logged yet)"}
    max_steps = settings.get("max_steps") or -1
    if max_steps > 0:
        fraction = row["step"] / max_steps
        detail = f"step {row['step']}/{max_steps}"
    else:
        epochs = settings.get("num_train_epochs") or 1
        fraction = (row.get("epoch") or 0) / epochs
        detail = f"step {row['step']}, epoch {row.get('epoch') or 0:.2f}/{epochs:g}"
    figure = (f"loss {row['loss']:.4f}" if row.get("loss") is not None else f"reward {row['reward']:.4f}")
    ev = _last_row(folder, "eval_loss")
    if ev:
        figure += f", eval loss {ev['eval_loss']:.4f} (step {ev['step']})"
    return {"fraction": min(1.0, fraction), "detail": detail, "figure": f"{figure} at step {row['step']}"}


def eval_progress(folder: Path, expected: int | None) -> dict:
    """Answers written so far by the stage's evaluations: its own folder's and its variants' (folder/NAME/)."""
    done = 0
    for pred in [folder / "predictions.jsonl", *sorted(folder.glob("*/predictions.jsonl"))]:
        if pred.is_file():
            with pred.open(encoding="utf-8") as fh:
                done += sum(1 for _ in fh)
    if not expected:
        return {"fraction": None, "detail": f"{done} answers"}
    return {"fraction": min(1.0, done / expected), "detail": f"{done}/{expected} answers"}


def _latest_figure(data: dict) -> str | None:
    for stage in ("eval", "choose"):
        result = (data["stages"].get(stage) or {}).get("result") or {}
        if stage == "choose" and result.get("chosen"):
            c = result["chosen"]
            return f"chosen {c['name']}: held-out EX {100 * c['ex']:.1f}%"
        if stage == "eval" and result.get("adapters"):
            parts = [f"{n} {100 * a['ex']:.1f}%" for n, a in result["adapters"].items() if a.get("ex") is not None]
            return "Spider dev EX: " + ", ".join(parts)
    for stage in reversed(TRAINING):
        result = (data["stages"].get(stage) or {}).get("result") or {}
        if result.get("final_loss") is not None:
            return f"{stage} final loss {result['final_loss']:.4f}"
    return None


def build_status(run_dir: Path, data: dict, *, rate: float | None = None) -> dict:
    """The status of a run from its state (and its stage folders for the running stage's progress)."""
    plan = data.get("plan") or {}
    rate = rate if rate is not None else (plan.get("gpu_hourly_usd", 0) * plan.get("gpus", 1) / 3600.0)
    spent = spent_usd(data, rate)
    current = next((s for s in STAGES if (data["stages"].get(s) or {}).get("status") == "running"), None)
    stages = {}
    for s in STAGES:
        rec = data["stages"].get(s) or {}
        projected = (rec.get("projected") or {}).get("usd")
        if projected is None:
            projected = ((plan.get("stages") or {}).get(s) or {}).get("usd")
        stages[s] = {"status": rec.get("status", "pending"), "spent_usd": stage_usd(data, s, rate),
                     "seconds": round(rec.get("seconds", 0.0), 1), "projected_usd": projected,
                     **({"reason": rec["reason"]} if rec.get("reason") else {})}
    progress, eta = {}, None
    if current:
        rec = data["stages"][current]
        folder = run_dir / ("merged" if current == "merge" else current)
        if current in TRAINING:
            progress = training_progress(folder, rec.get("settings") or {})
        elif current in ("choose", "eval"):
            progress = eval_progress(folder, rec.get("expected_answers"))
        elapsed, proj_s = rec.get("seconds", 0.0), (rec.get("projected") or {}).get("seconds")
        fraction = progress.get("fraction")
        if fraction:
            eta = elapsed * (1 - fraction) / fraction
        elif proj_s is not None:
            eta = max(0.0, proj_s - elapsed)
    remaining = sum(v["projected_usd"] or 0.0 for s, v in stages.items()
                    if v["status"] in ("pending", "running", "interrupted") and s != "report")
    return {"run_dir": str(run_dir), "updated_at": now(), "outcome": data.get("outcome"),
            "error": data.get("error"), "stage": current, "progress": progress,
            "eta_seconds": None if eta is None else round(eta, 1), "spent_usd": spent,
            "max_cost_usd": plan.get("max_cost_usd"), "projected_total_usd": round(spent + remaining, 6),
            "latest_figure": progress.get("figure") or _latest_figure(data), "stages": stages,
            "pid": (data.get("sessions") or [{}])[-1].get("pid")}


def write_status(pipe) -> None:
    write_json(pipe.out / STATUS_FILE, build_status(pipe.out, pipe.state.data, rate=pipe.rate))


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ago(iso: str | None) -> str:
    if not iso:
        return "?"
    secs = (datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds()
    return f"{secs:.0f} s ago" if secs < 120 else f"{secs / 60:.0f} min ago"


def _minutes(s) -> str:
    return "?" if s is None else f"{s / 60:.1f} min"


def status_text(run_dir: str | Path) -> str:
    """What `t2s-fast status RUN_DIR` prints."""
    run_dir = Path(run_dir)
    if not (run_dir / STATE_FILE).is_file():
        raise T2SError(f"{run_dir}: no {STATE_FILE} here (not a `t2s-fast run` folder, or it has not started)")
    data = read_json(run_dir / STATE_FILE)
    st = build_status(run_dir, data)
    last_beat = (run_dir / STATE_FILE).stat().st_mtime
    beat_iso = datetime.fromtimestamp(last_beat, timezone.utc).isoformat(timespec="seconds")
    outcome = st["outcome"]
    if outcome == "running" and not _alive(st["pid"]):
        outcome = f"stopped (process {st['pid']} is gone; last heartbeat {_ago(beat_iso)}): run the same command again"
    lines = [f"run {run_dir}: {outcome}" + (f" ({st['error']})" if st.get("error") else ""),
             f"spent ${st['spent_usd']:.4f} of ${st['max_cost_usd'] or 0:g}; projected in all "
             f"${st['projected_total_usd']:.4f}; last heartbeat {_ago(beat_iso)}"]
    if st["stage"]:
        p = st["progress"]
        lines.append(f"stage {st['stage']}: {p.get('detail', 'running')}; ETA {_minutes(st['eta_seconds'])}")
    if st["latest_figure"]:
        lines.append(f"latest: {st['latest_figure']}")
    lines.append(f"  {'stage':<8} {'status':<12} {'spent':>9} {'projected':>10} {'minutes':>8}")
    for name, s in st["stages"].items():
        proj = "" if s["projected_usd"] is None else f"${s['projected_usd']:.4f}"
        lines.append(f"  {name:<8} {s['status']:<12} ${s['spent_usd']:>8.4f} {proj:>10} {s['seconds'] / 60:>8.1f}"
                     + (f"  {s['reason']}" if s.get("reason") else ""))
    report = run_dir / "report.html"
    if report.is_file():
        lines.append(f"report: {report}")
    return "\n".join(lines)
