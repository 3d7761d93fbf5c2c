"""The run's one report: report.json, report.md and a self-contained report.html (plots inline) in the run folder.

It holds the loss (and, for RL, reward) curves of every training stage, EX per stage on Spider dev overall and by
hardness with the per-question files, the held-out choice, dollars and minutes per stage against the plan, the
versions and the device, and the paths of the chosen adapter and of the merged model.
"""

from __future__ import annotations

import html
from pathlib import Path

from t2s_fast.jsonl import read_json, read_jsonl, write_json
from t2s_fast.pipeline.config import STAGES, TRAINING
from t2s_fast.pipeline.state import now

REPORT_NAMES = {"html": "report.html", "md": "report.md", "json": "report.json"}
HARDNESS = ("easy", "medium", "hard", "extra")


def _curves(folder: Path) -> dict:
    log_file = folder / "train_log.jsonl"
    rows = read_jsonl(log_file, tolerate_torn_tail=True) if log_file.is_file() else []

    def series(key):
        return [[r["step"], r[key]] for r in rows if r.get(key) is not None]

    return {"loss": series("loss"), "eval_loss": series("eval_loss"), "reward": series("reward")}


def _training(pipe, stage: str) -> dict | None:
    rec = pipe.state.stages.get(stage) or {}
    folder = pipe.cfg.stage_dir(stage)
    if rec.get("status") in (None, "off", "pending") and not folder.is_dir():
        return None
    run_json = folder / "run.json"
    info = read_json(run_json) if run_json.is_file() else {}
    return {"folder": str(folder), "run_json": str(run_json) if run_json.is_file() else None,
            "loss_png": str(folder / "loss.png") if (folder / "loss.png").is_file() else None,
            "stop_reason": info.get("stop_reason"), "global_step": info.get("global_step"),
            "final_loss": info.get("final_loss"), "final_eval_loss": info.get("final_eval_loss"),
            "trained_tokens_per_s": info.get("trained_tokens_per_s"), "cost_usd": info.get("cost_usd"),
            "adapter_dir": info.get("adapter_dir"), "curves": _curves(folder)}


def build(pipe) -> dict:
    from t2s_fast.runinfo import device_info, git_revision, package_versions

    data, rate = pipe.state.data, pipe.rate
    first_plan = data.get("first_plan") or data.get("plan") or {}
    rows = []
    for s in STAGES:
        rec = data["stages"].get(s) or {}
        planned = ((first_plan.get("stages") or {}).get(s) or {})
        projected = rec.get("projected") or planned
        rows.append({"stage": s, "status": rec.get("status", "pending"), "reason": rec.get("reason"),
                     "planned_usd": planned.get("usd"), "planned_seconds": planned.get("seconds"),
                     "projected_usd": projected.get("usd"), "projected_seconds": projected.get("seconds"),
                     "basis": projected.get("basis"), "spent_usd": pipe.state.stage_usd(s, rate),
                     "seconds": round(rec.get("seconds", 0.0), 1), "sessions": rec.get("sessions", 0)})
    spent = pipe.state.spent_usd(rate)
    choose = (data["stages"].get("choose") or {}).get("result")
    dev = _with_paired((data["stages"].get("eval") or {}).get("result"))
    merged = ((data["stages"].get("merge") or {}).get("result") or {}).get("merged_dir")
    chosen = pipe.ctx.chosen()
    return {
        "title": f"t2s-fast run: {Path(pipe.cfg.out_dir).name}",
        "written_at": now(),
        "run_dir": str(pipe.out), "config_file": pipe.cfg.source, "model": pipe.cfg.model_name,
        "outcome": data.get("outcome"), "error": data.get("error"),
        "sessions": data.get("sessions", []),
        "max_cost_usd": pipe.cfg.max_cost_usd, "gpu_hourly_usd": pipe.cfg.gpu_hourly_usd, "gpus": pipe.cfg.gpus,
        "spent_usd": spent, "planned_total_usd": first_plan.get("total_usd"),
        "overhead_usd": round(spent - sum(r["spent_usd"] for r in rows), 6),
        "seconds": round(pipe.state.seconds(), 1),
        "stages": rows,
        "training": {s: t for s in TRAINING if (t := _training(pipe, s))},
        "choose": choose, "eval": dev,
        "chosen_adapter": chosen, "merged_model": merged,
        "versions": package_versions(), "device": device_info(), "git": git_revision(),
    }


def _with_paired(dev: dict | None) -> dict | None:
    """The Spider dev section with each model's difference from the base on the same questions and its 95%
    paired bootstrap interval (from the per-question file), for the eval's own decoding and each variant."""
    if not dev:
        return dev

    def paired(section: dict) -> dict:
        from t2s_fast.errors import T2SError
        from t2s_fast.evaluate.paired import compare_adapters, read_per_question
        from t2s_fast.generate.base import BASE_ADAPTER

        adapters = section.get("adapters") or {}
        folder = Path(section.get("out_dir") or "")
        if BASE_ADAPTER not in adapters or not folder.is_dir():
            return section
        try:
            records = read_per_question(folder)
        except T2SError:
            return section
        out = {}
        for name, a in adapters.items():
            out[name] = dict(a)
            if name == BASE_ADAPTER:
                continue
            try:
                c = compare_adapters(records, BASE_ADAPTER, records, name)
            except T2SError:  # no verdicts (an evaluation written without its per-question lines)
                continue
            out[name]["vs_base"] = {k: c[k] for k in ("diff", "ci_low", "ci_high", "noise", "n", "right_to_wrong",
                                                       "wrong_to_right")}
        return {**section, "adapters": out}

    variants = {name: paired(v) for name, v in (dev.get("variants") or {}).items()}
    return {**paired(dev), **({"variants": variants} if variants else {})}


# ---------------------------------------------------------------------------------------------- rendering
def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _usd(x) -> str:
    return "" if x is None else f"${x:.4f}"


def _min(s) -> str:
    return "" if s is None else f"{s / 60:.1f}"


def _plot_curves(report: dict, key: str, ylabel: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from t2s_fast.evaluate.plots import _png

    series = {s: t["curves"] for s, t in report["training"].items() if t["curves"][key]}
    if not series:
        return None
    fig, axes = plt.subplots(1, len(series), figsize=(5.5 * len(series), 3.6), squeeze=False)
    for ax, (stage, curves) in zip(axes[0], series.items()):
        ax.plot(*zip(*curves[key]), ".-" if len(curves[key]) < 30 else "-", lw=1.2, label=key.replace("_", " "))
        if key == "loss" and curves["eval_loss"]:
            ax.plot(*zip(*curves["eval_loss"]), "o-", lw=1.5, label="eval loss")
        ax.set_title(stage)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _plot_ex(report: dict) -> str | None:
    from t2s_fast.evaluate.report import _grouped_bars

    dev = report.get("eval") or {}
    adapters = dev.get("adapters") or {}
    if not adapters:
        return None
    levels = [h for h in HARDNESS if any(h in a["by_hardness"] for a in adapters.values())]
    series = {a.get("display_name", name): [a["ex"]] + [a["by_hardness"].get(h, {}).get("ex") for h in levels]
              for name, a in adapters.items()}
    return _grouped_bars(["all", *levels], series, title="Spider dev: execution accuracy per stage")


def _plot_decodings(report: dict) -> str | None:
    """EX of each model under each decoding (the eval's own and every variant), when there is more than one."""
    from t2s_fast.evaluate.report import _grouped_bars

    dev = report.get("eval") or {}
    if not dev.get("variants"):
        return None
    adapters = dev.get("adapters") or {}
    sections = {"eval": dev, **dev["variants"]}
    series = {f"{name}: {s.get('decoding', '')}": [(s.get("adapters") or {}).get(a, {}).get("ex") for a in adapters]
              for name, s in sections.items()}
    return _grouped_bars([a.get("display_name", n) for n, a in adapters.items()], series,
                         title="Spider dev: execution accuracy per stage and decoding")


def _vs_base(a: dict) -> str:
    c = a.get("vs_base")
    if not c:
        return ""
    return (f"{100 * c['diff']:+.1f} [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]"
            + (" (noise)" if c["noise"] else ""))


def _ex_rows(section: dict | None) -> list[list[str]]:
    rows = []
    for name, a in ((section or {}).get("adapters") or {}).items():
        rows.append([a.get("display_name", name), _pct(a["ex"]), f"{a['correct']}/{a['n']}", _vs_base(a),
                     *[_pct(a["by_hardness"].get(h, {}).get("ex")) if h in a["by_hardness"] else "" for h in HARDNESS]])
    return rows


def _decodings(dev: dict | None) -> list[tuple[str, dict]]:
    """(title, section) of the eval's own decoding and of each variant, in the order they ran."""
    if not dev:
        return []
    out = [(f"eval: {dev.get('decoding') or 'the eval section'}", dev)]
    out += [(f"{name}: {v.get('decoding') or v['changes']}", v) for name, v in (dev.get("variants") or {}).items()]
    return out


EX_HEAD = ["model", "EX", "correct", "Δ vs base, pts [95% paired CI]", *HARDNESS]
EX_NOTE = ("Δ: the model's EX minus the base's on the same questions, with its 95% paired bootstrap interval "
           "(t2s_fast/evaluate/paired.py); \"noise\" when it holds 0.")
COST_HEAD = ["stage", "status", "planned $", "projected $", "spent $", "projected min", "minutes", "note"]


def _cost_rows(report: dict) -> list[list[str]]:
    rows = [[r["stage"], r["status"], _usd(r["planned_usd"]), _usd(r["projected_usd"]), _usd(r["spent_usd"]),
             _min(r["projected_seconds"]), _min(r["seconds"]), r["reason"] or ""] for r in report["stages"]]
    rows.append(["overhead", "", "", "", _usd(report["overhead_usd"]), "", "",
                 "imports, planning and the time between stages"])
    rows.append(["total", report["outcome"] or "", _usd(report["planned_total_usd"]), "", _usd(report["spent_usd"]),
                 "", _min(report["seconds"]), f"cap ${report['max_cost_usd']:g}"])
    return rows


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    esc = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *["| " + " | ".join(r) + " |" for r in esc]]


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _facts(report: dict) -> list[tuple[str, str]]:
    chosen = report.get("chosen_adapter") or {}
    dev = report.get("device") or {}
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v)
    git = report["git"] or {}
    return [("outcome", report["outcome"] or ""), ("model", report["model"]),
            ("run file", report["config_file"] or ""),
            ("dollars", f"${report['spent_usd']:.4f} spent of the ${report['max_cost_usd']:g} cap "
                        f"(${report['gpu_hourly_usd']:g}/h x {report['gpus']} GPU(s)), {len(report['sessions'])} "
                        "session(s)"),
            ("chosen adapter", f"{chosen.get('name', 'none')}: {chosen.get('path', '')}" +
             (f" (held-out EX {_pct(chosen['ex'])})" if chosen.get("ex") is not None else "")),
            ("merged model", report.get("merged_model") or "not merged"),
            ("device", f"{dev.get('name')} ({dev.get('kind')}, x{dev.get('count')})"),
            ("versions", versions),
            ("git", f"{git.get('commit')}" + (" (dirty)" if git.get("dirty") else ""))]


def _files(section: dict | None) -> list[tuple[str, str]]:
    files = (section or {}).get("files") or {}
    return [(k.replace("_", " "), v) for k, v in files.items() if Path(v).exists()]


def render_markdown(report: dict) -> str:
    out = [f"# {report['title']}", "", f"Written {report['written_at']}.", ""]
    out += [f"- **{k}**: {v}" for k, v in _facts(report)]
    if report.get("error"):
        out += ["", f"**Error:** {report['error']}"]
    out += ["", "## Dollars and minutes per stage against the plan", ""] + _md_table(COST_HEAD, _cost_rows(report))
    out += ["", "## Spider dev: EX per stage, overall and by hardness", ""]
    decodings = _decodings(report.get("eval"))
    for title, section in decodings:
        out += [f"### {title}", ""] if len(decodings) > 1 else []
        out += _md_table(EX_HEAD, _ex_rows(section)) + [""] + [f"- {k}: `{v}`" for k, v in _files(section)] + [""]
    out += [EX_NOTE] if decodings else ["(not evaluated)"]
    choose = report.get("choose")
    out += ["", "## The choice on held-out data", ""]
    if choose:
        out += [f"Rule: {choose['rule']}.", ""]
        out += _md_table(["candidate", "step", "held-out EX", "eval loss", "$ to here"],
                         [[c["name"], str(c["step"]), _pct(c["ex"]),
                           "" if c.get("eval_loss") is None else f"{c['eval_loss']:.4f}", _usd(c.get("cost_usd"))]
                          for c in choose["candidates"]])
        out += [f"- {k}: `{v}`" for k, v in _files(choose)]
    else:
        out.append("(no choice ran)")
    out += ["", "## Training", ""]
    for stage, t in report["training"].items():
        loss = "" if t["final_loss"] is None else f"{t['final_loss']:.4f}"
        eval_loss = "" if t["final_eval_loss"] is None else f"{t['final_eval_loss']:.4f}"
        out.append(f"- **{stage}**: {t['stop_reason']} at step {t['global_step']}, final loss {loss}, eval loss "
                   f"{eval_loss}; `{t['folder']}` (loss plot `{t['loss_png']}`)")
    return "\n".join(out) + "\n"


CSS = ("body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
       "font-size:.9em;text-align:left}th{background:#f3f3f3}img{max-width:100%}dt{font-weight:600}"
       "code{font-size:.85em}.err{color:#a00}")


def render_html(report: dict) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(report['title'])}</title>"
             f"<style>{CSS}</style></head><body><h1>{e(report['title'])}</h1>",
             f"<p>Written {e(report['written_at'])}.</p><dl>"]
    parts += [f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in _facts(report)]
    parts.append("</dl>")
    if report.get("error"):
        parts.append(f"<p class='err'><b>Error:</b> {e(report['error'])}</p>")
    parts += ["<h2>Dollars and minutes per stage against the plan</h2>", _html_table(COST_HEAD, _cost_rows(report))]
    parts.append("<h2>Spider dev: EX per stage, overall and by hardness</h2>")
    decodings = _decodings(report.get("eval"))
    if decodings:
        for alt, img in (("EX per stage", _plot_ex(report)), ("EX per decoding", _plot_decodings(report))):
            if img:
                parts.append(f"<img alt='{alt}' src='data:image/png;base64,{img}'>")
        for title, section in decodings:
            parts.append(f"<h3>{e(title)}</h3>" if len(decodings) > 1 else "")
            parts.append(_html_table(EX_HEAD, _ex_rows(section)))
            parts.append("<ul>" + "".join(f"<li>{e(k)}: <code>{e(v)}</code></li>" for k, v in _files(section))
                         + "</ul>")
        parts.append(f"<p>{e(EX_NOTE)}</p>")
    else:
        parts.append("<p>(not evaluated)</p>")
    parts.append("<h2>The choice on held-out data</h2>")
    choose = report.get("choose")
    if choose:
        parts.append(f"<p>Rule: {e(choose['rule'])}.</p>")
        parts.append(_html_table(["candidate", "step", "held-out EX", "eval loss", "$ to here"],
                                 [[c["name"], str(c["step"]), _pct(c["ex"]),
                                   "" if c.get("eval_loss") is None else f"{c['eval_loss']:.4f}",
                                   _usd(c.get("cost_usd"))] for c in choose["candidates"]]))
        parts.append("<ul>" + "".join(f"<li>{e(k)}: <code>{e(v)}</code></li>" for k, v in _files(choose)) + "</ul>")
    else:
        parts.append("<p>(no choice ran)</p>")
    parts.append("<h2>Training curves</h2>")
    for key, label in (("loss", "loss (SQL tokens)"), ("reward", "reward")):
        img = _plot_curves(report, key, label)
        if img:
            parts.append(f"<img alt='{key} curves' src='data:image/png;base64,{img}'>")
    rows = [[s, t["stop_reason"] or "", str(t["global_step"]),
             "" if t["final_loss"] is None else f"{t['final_loss']:.4f}",
             "" if t["final_eval_loss"] is None else f"{t['final_eval_loss']:.4f}", t["folder"]]
            for s, t in report["training"].items()]
    parts.append(_html_table(["stage", "stop", "steps", "final loss", "eval loss", "folder"], rows))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(pipe) -> dict:
    from t2s_fast.jsonl import atomic_open

    report = build(pipe)
    write_json(pipe.out / REPORT_NAMES["json"], report)
    with atomic_open(pipe.out / REPORT_NAMES["md"]) as fh:
        fh.write(render_markdown(report))
    with atomic_open(pipe.out / REPORT_NAMES["html"]) as fh:
        fh.write(render_html(report))
    return report
