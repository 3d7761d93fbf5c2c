"""sweep.json (the figures), sweep.md (the table to read or paste) and ex_vs_cost.png (held-out EX against
the dollars each candidate cost), all from the sweep state and the held-out evaluation."""

from __future__ import annotations

from pathlib import Path

from t2s_fast.jsonl import atomic_open, write_json
from t2s_fast.sweep.rule import RULE


def _eval_gpus(cfg) -> int:
    return int(cfg.eval.get("tensor_parallel_size", 1)) * int(cfg.eval.get("data_parallel_size", 1))


def build_summary(cfg, variants, state, candidates: list[dict], chosen: dict | None, final: dict) -> dict:
    from t2s_fast.train.config import TrainConfig

    hourly = float(cfg.train.get("gpu_hourly_usd", TrainConfig.gpu_hourly_usd))
    rule = state.data.get("rule") or {}
    by_variant: dict[str, list[dict]] = {}
    for c in candidates:
        by_variant.setdefault(c["variant"], []).append(c)
    rows = []
    for v in variants:
        rec = state.variants.get(v.name, {"status": "not started"})
        mine = by_variant.get(v.name, [])
        final_row = next((c for c in mine if c["name"] == f"{v.name}@final"), None)
        best = max((c for c in mine if c["ex"] is not None), key=lambda c: c["ex"], default=None)
        rows.append({"variant": v.name, "settings": v.overrides, "status": rec.get("status"),
                     "stop_reason": rec.get("stop_reason"), "reason": rec.get("reason") or rec.get("error"),
                     "global_step": rec.get("global_step"), "budget_usd": rec.get("budget_usd"),
                     "cost_usd": rec.get("cost_usd"), "heldout_ex": final_row["ex"] if final_row else None,
                     "heldout_n": final_row["n"] if final_row else None,
                     "eval_loss": final_row.get("eval_loss") if final_row else None,
                     "eligible": final_row.get("eligible") if final_row else None,
                     "best_checkpoint": best["name"] if best and cfg.checkpoints else None,
                     "best_checkpoint_ex": best["ex"] if best and cfg.checkpoints else None})
    train_spent = sum(r["cost_usd"] or 0.0 for r in rows)
    eval_usd = state.data.get("eval_seconds", 0.0) / 3600 * hourly * _eval_gpus(cfg)
    train_seconds = state.data.get("train_seconds")
    return {"config": cfg.source, "out_dir": cfg.out_dir, "cap_usd": cfg.max_cost_usd,
            "training_usd": round(train_spent, 6), "evaluation_usd": round(eval_usd, 6),
            "parallel": cfg.parallel, "devices": cfg.devices, "training_wall_seconds": train_seconds,
            "training_wall_usd": None if train_seconds is None else
            round(train_seconds / 3600 * hourly * len(cfg.devices or [None]), 6),
            "evaluation_seconds": state.data.get("eval_seconds", 0.0), "gpu_hourly_usd": hourly,
            "chosen_on": state.data.get("heldout"), "rule": rule.get("text", RULE),
            "max_eval_loss": rule.get("max_eval_loss"), "max_eval_loss_from": rule.get("max_eval_loss_from"),
            "error": rule.get("error"), "rows": rows, "candidates": candidates, "chosen": chosen, "final": final,
            "final_planned": cfg.final is not None, "paired": state.data.get("paired") or {},
            "replay_note": "stage-2 replay_ratio variants train on mixed files written under data/replay-<ratio>/ "
                           "by prepare's own mixing function" if any("replay_ratio" in v.overrides for v in variants)
            else None}


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _usd(x) -> str:
    return "" if x is None else f"${x:.4f}"


def _not_eligible(s: dict) -> list[str]:
    """Under a cap: the candidates left out for their eval loss that beat the chosen one on held-out EX."""
    if s.get("max_eval_loss") is None:
        return []
    floor = (s.get("chosen") or {}).get("ex")
    out = [c for c in s["candidates"] if c.get("eligible") is False and c.get("ex") is not None
           and (floor is None or c["ex"] >= floor)]
    shown = "; ".join(f"{c['name']} (EX {_pct(c['ex'])}, eval loss "
                      f"{'none' if c.get('eval_loss') is None else format(c['eval_loss'], '.4f')})" for c in out)
    return [f"- Not eligible (eval loss over the cap {s['max_eval_loss']:.4f}) despite a held-out EX at least the "
            f"chosen one's: {shown}"] if out else []


def _side_by_side(s: dict) -> list[str]:
    """With runs trained side by side, the runs' own dollars each count the whole GPU: give the rented time too."""
    if (s.get("parallel") or 1) == 1 or s.get("training_wall_seconds") is None:
        return []
    gpus = len(s.get("devices") or [None])
    return [f"- Trained {s['parallel']} runs at a time on {gpus} GPU(s): the training took "
            f"{s['training_wall_seconds']:.0f} s of wall time, {_usd(s['training_wall_usd'])} of rented GPU time; "
            f"the runs' own costs above ({_usd(s['training_usd'])} in all) each count the whole GPU for their wall "
            "time, so their sum overstates it"]


def _paired(s: dict) -> list[str]:
    """The chosen candidate against the baseline, question by question, on the held-out and the final sets."""
    from t2s_fast.evaluate.paired import NOTE, TABLE_HEAD, table_row

    p = s.get("paired") or {}
    runs = [("held-out", p["heldout"])] if p.get("heldout") else []
    runs += [(f"final {label}", c) for label, c in (p.get("final") or {}).items()]
    if not runs:
        return []
    rows = [f"| {where} " + table_row(c) for where, c in runs if "error" not in c]
    errors = [f"- {where}: no paired comparison: {c['error']}" for where, c in runs if "error" in c]
    return ["", f"## Chosen against the baseline ({p['baseline']}), question by question", "",
            *(["| set " + TABLE_HEAD[0], "|---" + TABLE_HEAD[1], *rows] if rows else []), *errors, "", NOTE]


def render_markdown(s: dict) -> str:
    on = s.get("chosen_on") or {}
    out = [f"# t2s-fast sweep: {Path(s['out_dir']).name}", "",
           f"- Config: `{s['config']}`; cap ${s['cap_usd']:g} for training; spent {_usd(s['training_usd'])} on "
           f"training and {_usd(s['evaluation_usd'])} on evaluation ({s['evaluation_seconds']:.0f} s at "
           f"${s['gpu_hourly_usd']:g}/h per GPU)", *_side_by_side(s),
           f"- Chosen on: `{on.get('source')}` (suite {on.get('suite')}), {on.get('adapters')} adapters in one engine",
           f"- Rule: {s['rule']}", *_not_eligible(s), "",
           "| variant | settings | status | steps | budget given | cost | held-out EX (final) | eval loss (final) "
           "| best checkpoint |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
        status = r["status"] + (f" ({r['reason']})" if r.get("reason") else "")
        best = f"{r['best_checkpoint']} {_pct(r['best_checkpoint_ex'])}" if r["best_checkpoint"] else ""
        loss = "" if r.get("eval_loss") is None else f"{r['eval_loss']:.4f}"
        loss += " (over the cap: not eligible)" if r.get("eligible") is False else ""
        out.append(f"| {r['variant']} | {settings} | {status} | {r['global_step'] or ''} | {_usd(r['budget_usd'])} | "
                   f"{_usd(r['cost_usd'])} | {_pct(r['heldout_ex'])} ({r['heldout_n'] or 0}) | {loss} | {best} |")
    c = s.get("chosen")
    out += ["", "![held-out EX against dollars](ex_vs_cost.png)", ""]
    if any(c.get("step") is not None for c in s["candidates"]):
        out += ["![held-out EX and eval loss against step](ex_and_loss_vs_step.png)", ""]
    if s.get("error"):
        out.append(f"**Nothing chosen**: {s['error']}.")
    if c:
        out.append(f"**Chosen: {c['name']}** (step {c['step']}): held-out EX {_pct(c['ex'])} of {c['n']}, "
                   f"{_usd(c['cost_usd'])} of training.")
    if c and not s.get("final") and s.get("final_planned"):
        out.append("- Spider dev: not run yet (the final report runs when the same sweep command is run without "
                   "--report-only)")
    for label, f in (s.get("final") or {}).items():
        out.append(f"- {f['suite']} {f.get('split') or ''} {label}: EX **{_pct(f['ex'])}** ({f['correct']}/{f['n']}), "
                   f"`{f['out_dir']}`")
    out += _paired(s)
    if s.get("replay_note"):
        out += ["", f"Note: {s['replay_note']}."]
    return "\n".join(out) + "\n"


def plot_ex_vs_cost(s: dict, png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    by_variant: dict[str, list[dict]] = {}
    for c in s["candidates"]:
        if c["ex"] is not None and c["cost_usd"] is not None:
            by_variant.setdefault(c["variant"], []).append(c)
    for name, pts in by_variant.items():
        pts.sort(key=lambda c: c["cost_usd"])
        line, = ax.plot([c["cost_usd"] for c in pts], [100 * c["ex"] for c in pts], "o-", ms=4, lw=1, label=name)
        last = next((c for c in pts if c["name"].endswith("@final")), pts[-1])
        ax.plot(last["cost_usd"], 100 * last["ex"], "s", ms=8, color=line.get_color())
    c = s.get("chosen")
    if c and c.get("cost_usd") is not None and c.get("ex") is not None:
        ax.plot(c["cost_usd"], 100 * c["ex"], "*", ms=16, color="gold", markeredgecolor="black",
                label=f"chosen: {c['name']}")
    ax.set_xlabel("training dollars (to that checkpoint)")
    ax.set_ylabel("held-out EX (%)")
    ax.set_title("Sweep: held-out execution accuracy against cost (square = final adapter)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, png)


def plot_ex_and_loss_vs_step(s: dict, png: Path) -> Path | None:
    """Per variant, held-out EX (left) and eval loss (right) at each evaluated checkpoint: whether the two agree.
    None when no candidate has a step (nothing to draw)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_variant: dict[str, list[dict]] = {}
    for c in s["candidates"]:
        if c.get("step") is not None:
            by_variant.setdefault(c["variant"], []).append(c)
    if not by_variant:
        return None
    fig, (ax_ex, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for name, pts in by_variant.items():
        pts.sort(key=lambda c: c["step"])
        ex = [(c["step"], 100 * c["ex"]) for c in pts if c["ex"] is not None]
        loss = [(c["step"], c["eval_loss"]) for c in pts if c.get("eval_loss") is not None]
        line, = ax_ex.plot(*zip(*ex), "o-", ms=4, lw=1, label=name) if ex else (None,)
        if loss:
            ax_loss.plot(*zip(*loss), "o-", ms=4, lw=1, label=name, color=line.get_color() if line else None)
    ax_ex.set(xlabel="optimizer step", ylabel="held-out EX (%)", title="Held-out execution accuracy")
    ax_loss.set(xlabel="optimizer step", ylabel="eval loss", title="Eval loss (lower is better)")
    for ax in (ax_ex, ax_loss):
        ax.grid(alpha=0.3)
        if ax.lines:  # a run without an eval file has no eval loss to draw
            ax.legend(fontsize=7, loc="best")
    return _save(fig, png)


def _save(fig, png: Path) -> Path:
    """Write the figure atomically (a reader never sees half a PNG) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_open(png, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return png


def write_sweep_report(out_dir: Path, summary: dict) -> dict[str, Path]:
    paths = {"json": out_dir / "sweep.json", "md": out_dir / "sweep.md", "png": out_dir / "ex_vs_cost.png"}
    write_json(paths["json"], summary)
    with atomic_open(paths["md"]) as fh:
        fh.write(render_markdown(summary))
    plot_ex_vs_cost(summary, paths["png"])
    if plot_ex_and_loss_vs_step(summary, out_dir / "ex_and_loss_vs_step.png"):
        paths["steps_png"] = out_dir / "ex_and_loss_vs_step.png"
    return paths
