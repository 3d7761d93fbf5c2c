"""The ablation's figures and files: each arm's row (from its report.json), the choice per group on the held-out
set, the final rows, and ablation.json (the figures), ablation.md (the tables) and ablation.png (held-out EX per
arm, grouped)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from t2s_fast.jsonl import atomic_open, write_json

RULE = ("per group, the highest held-out EX of the choosing adapter; ties go to fewer generated tokens, then to "
        "the earlier arm in the file")


def _gpus(ecfg) -> int:
    return int(ecfg.tensor_parallel_size) * int(ecfg.data_parallel_size)


def _adapter_figures(report: dict) -> dict:
    from t2s_fast.evaluate.repair import REPAIRABLE_KINDS

    return {name: {"ex": a["ex"], "correct": a["correct"], "n": a["n"],
                   "exec_errors": sum(a["errors"].get(k, 0) for k in REPAIRABLE_KINDS)}
            for name, a in report["adapters"].items()}


def _run_figures(cfg, res: dict, ecfg) -> dict:
    """What one evaluation run measured: held-out figures per adapter, tokens, seconds and dollars."""
    report, timing = res["report"], res["report"].get("timing", {})
    repair = report.get("repair") or {}
    wall = res["wall_seconds"]
    return {
        "out_dir": str(ecfg.out_dir), "kept_from_earlier_run": res["kept"],
        "suite": report["settings"]["suite"], "source": report["settings"]["source"],
        "adapters": _adapter_figures(report),
        "generated_tokens": timing.get("generated_tokens", 0) + repair.get("generated_tokens", 0),
        "generation_seconds": round(timing.get("generation_seconds", 0.0) + repair.get("generation_seconds", 0.0), 3),
        "scoring_seconds": round(timing.get("scoring_seconds", 0.0)
                                 + repair.get("execute_and_rescore_seconds_this_session", 0.0), 3),
        "wall_seconds": wall, "usd": round(wall / 3600 * cfg.gpu_hourly_usd * _gpus(ecfg), 6),
        "repair": ({k: repair[k] for k in ("strategy", "k", "temperature", "requests", "generated_tokens",
                                            "generation_seconds", "adapters")} if repair else None),
    }


def run_row(cfg, res: dict, ecfg, adapter: str, **head) -> dict:
    """One run's row: ``head`` (arm, group, changes...), its figures, and the choosing adapter's EX up front."""
    row = {**head, **_run_figures(cfg, res, ecfg)}
    mine = row["adapters"].get(adapter) or {}
    row.update(ex=mine.get("ex"), correct=mine.get("correct"), n=mine.get("n"), exec_errors=mine.get("exec_errors"))
    return row


def _delta(ex, base):
    return None if ex is None or base is None else round(ex - base, 6)


def choose(arms, rows: list[dict], adapter: str) -> dict:
    """{group: choice}: each group's best arm on the held-out set (and each row's Δ EX vs its group's first arm)."""
    from t2s_fast.evaluate.selection import choose_best

    choices = {}
    for group in dict.fromkeys(a.group for a in arms):
        mine = [r for r in rows if r["group"] == group]
        base = mine[0]
        for r in mine:
            r["baseline"] = base["name"]
            r["delta_ex"] = _delta(r["ex"], base["ex"])
            r["delta_ex_by_adapter"] = {a: _delta(f["ex"], base["adapters"].get(a, {}).get("ex"))
                                        for a, f in r["adapters"].items()}
        best = choose_best(mine, tie="generated_tokens")
        choices[group] = {"arm": best["name"] if best else None, "baseline": base["name"], "adapter": adapter,
                          "ex": best["ex"] if best else None, "correct": best["correct"] if best else None,
                          "n": best["n"] if best else None, "delta_ex": best["delta_ex"] if best else None,
                          "chosen_on": {"suite": base["suite"], "source": base["source"]}, "rule": RULE}
    return choices


def paired_choices(choices: dict, rows: list[dict], finals: dict, adapter: str) -> dict:
    """{group: {"heldout": comparison, "final": comparison}}: each group's winner against its baseline, question
    by question (`evaluate/paired.py`), on the held-out set and, where both ran, on the final set. A group whose
    winner is its baseline has nothing to compare; a run without a per-question file gets {"error": why}."""
    from t2s_fast.errors import T2SError
    from t2s_fast.evaluate.paired import compare_files

    by_name = {r["name"]: r for r in rows}
    out = {}
    for group, c in choices.items():
        base, win = c["baseline"], c["arm"]
        if not win or win == base:
            continue
        pair = {}
        for where, runs in (("heldout", by_name), ("final", finals)):
            if base not in runs or win not in runs:
                continue
            try:
                pair[where] = compare_files(runs[base]["out_dir"], adapter, runs[win]["out_dir"], adapter,
                                            label_a=base, label_b=win)
            except T2SError as exc:
                pair[where] = {"error": str(exc)}
        out[group] = pair
    return out


def paired_markdown(s: dict) -> list[str]:
    """The winners against their baselines, with the paired interval (nothing when no group has one)."""
    from t2s_fast.evaluate.paired import NOTE, TABLE_HEAD, table_row

    rows, errors = [], []
    for group, pair in (s.get("paired") or {}).items():
        for where in ("heldout", "final"):
            c = pair.get(where)
            if c is None:
                continue
            if "error" in c:
                errors.append(f"- {group} ({where}): no paired comparison: {c['error']}")
            else:
                rows.append(f"| {where} | {group} " + table_row(c))
    if not rows and not errors:
        return []
    head = ["| set | group " + TABLE_HEAD[0], "|---|---" + TABLE_HEAD[1]]
    return ["", f"## Winners against their baselines, question by question ({s['choose_adapter']})", "",
            *(head + rows if rows else []), *errors, "", NOTE]


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _pts(x) -> str:
    return "" if x is None else f"{100 * x:+.1f}"


def render_markdown(s: dict) -> str:
    arms = s["arms"]
    on = next(iter(s["choices"].values()), {}).get("chosen_on", {})
    out = [f"# t2s-fast ablation: {Path(s['out_dir']).name}", "",
           f"- Config: `{s['config']}`; held-out set: `{on.get('source')}` (suite {on.get('suite')}); EX of "
           f"`{s['choose_adapter']}`; one engine for every arm (opened: {s['engine_opened']}, start "
           f"{s['engine_open_seconds']:.0f} s, not in any arm's seconds); ${s['gpu_hourly_usd']:g}/h per GPU",
           f"- Shared settings: `{json.dumps(s['shared'])}`", "",
           "| arm | group | changes | held-out EX | Δ vs group baseline (pts) | exec errors | gen tokens | gen s "
           "| scoring s | wall s | $ |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in arms:
        changes = ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "(shared settings)"
        out.append(f"| {r['name']} | {r['group']} | {changes} | {_pct(r['ex'])} ({r['correct']}/{r['n']}) | "
                   f"{_pts(r['delta_ex'])} | {r['exec_errors']} | {r['generated_tokens']} | "
                   f"{r['generation_seconds']:.1f} | {r['scoring_seconds']:.1f} | {r['wall_seconds']:.1f} | "
                   f"${r['usd']:.4f} |")
    out += ["", "![held-out EX per arm](ablation.png)", "", f"## Choices ({RULE})", "",
            "| group | baseline | chosen | held-out EX | Δ vs baseline (pts) |", "|---|---|---|---|---|"]
    for g, c in s["choices"].items():
        out.append(f"| {g} | {c['baseline']} | **{c['arm']}** | {_pct(c['ex'])} ({c['correct']}/{c['n']}) | "
                   f"{_pts(c['delta_ex'])} |")
    if s["final"]:
        out += ["", "## Final set (reported only; nothing is chosen here)", "",
                "| arm | group | set | EX | exec errors | gen tokens | wall s | $ |",
                "|---|---|---|---|---|---|---|---|"]
        for f in s["final"].values():
            where = f"{f['suite']} {f['split']}" if f["suite"] == "spider1" else f["suite"]
            out.append(f"| {f['arm']} | {f['group']} | {where} "
                       f"| {_pct(f['ex'])} ({f['correct']}/{f['n']}) | {f['exec_errors']} | {f['generated_tokens']} | "
                       f"{f['wall_seconds']:.1f} | ${f['usd']:.4f} |")
    out += paired_markdown(s)
    return "\n".join(out) + "\n"


def plot_arms(s: dict, png: Path) -> Path:
    """Held-out EX per arm (labelled with its group), one bar per evaluated adapter; the report's bar style."""
    from t2s_fast.evaluate.names import display_name
    from t2s_fast.evaluate.report import _grouped_bars

    categories = [f"{r['group']}: {r['name']}" for r in s["arms"]]
    names = list(dict.fromkeys(a for r in s["arms"] for a in r["adapters"]))
    series = {display_name(a): [r["adapters"].get(a, {}).get("ex") for r in s["arms"]] for a in names}
    data = base64.b64decode(_grouped_bars(categories, series, title="Held-out execution accuracy per arm",
                                          horizontal=True))
    with atomic_open(png, "wb", encoding=None) as fh:
        fh.write(data)
    return png


def write_ablation(out_dir: Path, summary: dict) -> None:
    """ablation.json, ablation.md and ablation.png in ``out_dir``, each written atomically."""
    write_json(out_dir / "ablation.json", summary)
    with atomic_open(out_dir / "ablation.md") as fh:
        fh.write(render_markdown(summary))
    plot_arms(summary, out_dir / "ablation.png")
