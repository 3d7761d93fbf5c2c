"""report.json (the figures), report.md (to read or paste) and report.html (one self-contained page with
plots embedded as base64 PNG), plus side-by-side comparisons of several runs.

Everything is rendered from report.json alone, so `t2s-fast report RUN_DIR` can re-render old runs.
Speed figures live under "timing" (they differ between two runs of the same evaluation); everything else
is a function of the predictions.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.evaluate.document import (
    Bold,
    Bullets,
    Cell,
    Code,
    Document,
    Figure,
    Heading,
    Note,
    Paragraph,
    QuestionList,
    Table,
    to_html,
    to_markdown,
)
from t2s_fast.evaluate.names import display_name
from t2s_fast.evaluate.plots import _png
from t2s_fast.gguf_models import source_label
from t2s_fast.jsonl import atomic_open, read_json, write_json

REPORT_VERSION = 1
HARDNESS_ORDER = ("easy", "medium", "hard", "extra")
MAX_DISAGREEMENTS = 500

DISTINCT_TEXT = {
    False: "DISTINCT is removed from both gold and predicted SQL before execution, as the official Spider "
           "test-suite evaluator does (so duplicates never decide a match)",
    True: "DISTINCT is kept: duplicate rows must match too (stricter than the official evaluator)",
}

SPIDER2_TEXT = ("Spider 2.0 rules: the predicted result must contain each gold column (the question's condition_cols, "
                "ignore_order per question) of any acceptable gold CSV; the SQL itself is not altered")


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _engine_text(backend: str, cfg) -> str:
    n = len(cfg.adapter_names)
    if backend == "vllm":
        return (f"one vLLM engine for all {n} variant(s): the base model loaded once, LoRA adapters hot-swapped "
                "per request, every request in one generate call")
    return f"one transformers+PEFT model for all {n} variant(s): adapters loaded once, batches adapter by adapter"


def bar_label(x) -> str:
    """A bar's EX label: one decimal where it has one ("2.5"), none where it is whole ("55")."""
    return "n/a" if x is None else f"{100 * x:.1f}".removesuffix(".0")


def report_title(cfg) -> str:
    """What was evaluated, in words: the Spider split, the Spider 2.0 suite, or the questions file's name."""
    if cfg.suite == "spider1":
        return f"t2s-fast evaluation: spider1 {cfg.split}"
    if cfg.suite == "jsonl":
        return f"t2s-fast evaluation: {Path(cfg.questions).name if cfg.questions else 'held-out set'}"
    return f"t2s-fast evaluation: {cfg.suite}"


# ---------------------------------------------------------------- building
def build_report(cfg, qset, scored: list[dict], store, *, backend: str) -> dict:
    by_adapter: dict[str, list[dict]] = defaultdict(list)
    for rec in scored:
        by_adapter[rec["adapter"]].append(rec)
    adapters = {name: adapter_summary(cfg, name, by_adapter.get(name, [])) for name in cfg.adapter_names}
    not_exec = [r for r in scored if r.get("exec_match") is None and r["adapter"] == cfg.adapter_names[0]]
    return {
        "report_version": REPORT_VERSION,
        "title": report_title(cfg),
        "settings": _settings(cfg, qset, backend),
        "questions": _question_counts(qset, not_exec),
        "adapters": adapters,
        "disagreements": disagreements(scored, cfg.adapter_names),
    }


def adapter_summary(cfg, name: str, recs: list[dict]) -> dict:
    """One adapter's figures: EX (overall, by hardness, by database), errors, extraction, tokens, finishes."""
    from t2s_fast.sql.scorer import GOLD_ERROR, summarize

    executable = [r for r in recs if r.get("exec_match") is not None]
    summary = summarize(executable) if executable else {"ex": None, "n": 0, "by_hardness": {}, "errors": {}}
    by_db: dict[str, dict] = {}
    for r in executable:
        if r.get("error_kind") in ("no_database", GOLD_ERROR):
            continue
        d = by_db.setdefault(r["db_id"], {"n": 0, "correct": 0})
        d["n"] += 1
        d["correct"] += int(bool(r["exec_match"]))
    errors = Counter(summary.get("errors", {}))
    errors.update(r["error_kind"] for r in recs if r.get("exec_match") is None)
    n_changed = sum(1 for r in recs if r.get("extraction_changed"))
    tokens = sum(r.get("n_tokens", 0) for r in recs)
    out = {
        "display_name": display_name(name),
        "path": cfg.adapters.get(name),
        "ex": summary["ex"],
        "n": summary["n"],
        "correct": sum(1 for r in executable if r.get("exec_match")),
        "excluded_gold_error": summary.get("excluded_gold_error", 0),
        "not_executable": sum(1 for r in recs if r.get("exec_match") is None),
        "by_hardness": {h: v for h, v in summary.get("by_hardness", {}).items() if v.get("n")},
        "by_database": {db: {"n": v["n"], "ex": v["correct"] / v["n"]} for db, v in sorted(by_db.items())},
        "errors": dict(sorted(errors.items())),
        "extraction": {"n": len(recs), "changed": n_changed, "rate": n_changed / len(recs) if recs else None,
                       "methods": dict(sorted(Counter(r.get("extraction", "?") for r in recs).items()))},
        "generated_tokens": tokens,
        "mean_generated_tokens": tokens / len(recs) if recs else None,
        # how the scored completions ended: "stop" (end of turn), "length" (ran to --max-new-tokens),
        # "repetition" (the repetition guard ended a loop)
        "finish": dict(sorted(Counter(r.get("finish") or "unrecorded" for r in recs).items())),
    }
    if cfg.n_samples > 1:
        votes = [r["vote"] for r in recs if "vote" in r]
        out["self_consistency"] = {
            "samples": cfg.n_samples,
            "mean_valid_samples": sum(v["valid"] for v in votes) / len(votes) if votes else None,
            "mean_winning_votes": sum(v["votes"] for v in votes) / len(votes) if votes else None,
        }
    return out


def _settings(cfg, qset, backend: str) -> dict:
    return {
        "suite": cfg.suite,
        "source": qset.source,
        "split": cfg.split if cfg.suite == "spider1" else None,
        "base_model": str(cfg.base_model),
        "backend": backend,
        "engine": _engine_text(backend, cfg),
        "adapters": {name: cfg.adapters.get(name) for name in cfg.adapter_names},
        "limit": cfg.limit,
        "databases_filter": list(cfg.dbs),
        "max_new_tokens": cfg.max_new_tokens,
        "decoding": "greedy" if cfg.temperature <= 0 else f"sampling, temperature {cfg.temperature}",
        "n_samples": cfg.n_samples,
        "self_consistency": (f"majority vote over the execution results of {cfg.n_samples} samples (invalid SQL "
                             "does not vote; ties go to the earliest sample)") if cfg.n_samples > 1 else None,
        "sample_values": cfg.sample_values,
        "repair": cfg.repair,  # the strategy that ran (--repair auto resolved); its figures under report["repair"]
        "distinct_handling": (SPIDER2_TEXT if cfg.suite == "spider2-lite" else DISTINCT_TEXT[bool(cfg.keep_distinct)]),
        "keep_distinct": bool(cfg.keep_distinct),
        "timeout_s": cfg.timeout,
        "prompt": "t2s_fast.prompt.build_messages + the tokenizer's chat template, thinking disabled",
    }


def _question_counts(qset, not_exec: list[dict]) -> dict:
    """How many questions were selected, evaluated and executable, and why the others were not."""
    missing = Counter(s["db_id"] for s in qset.skipped)
    reasons = Counter(r.get("error") or "" for r in not_exec)
    return {
        "selected": len(qset.questions) + len(qset.skipped),
        "evaluated": len(qset.questions),
        "executable": len(qset.questions) - len(not_exec),
        "missing_databases": [{"db_id": db, "questions": n} for db, n in sorted(missing.items())],
        "skipped": qset.skipped,
        "not_executable": {"count": len(not_exec), "reasons": dict(reasons),
                           "qids": [r["qid"] for r in not_exec]},
    }


def disagreements(scored: list[dict], adapter_names: list[str]) -> dict:
    """Questions where some adapters' SQL matched and others' did not."""
    by_q: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in scored:
        by_q[r["qid"]][r["adapter"]] = r
    rows = []
    for qid, per in by_q.items():
        matches = {a: r.get("exec_match") for a, r in per.items() if r.get("exec_match") is not None}
        if len(set(matches.values())) < 2:
            continue
        first = next(iter(per.values()))
        rows.append({"qid": qid, "db_id": first["db_id"], "question": first["question"], "gold": first.get("gold"),
                     "hardness": first.get("hardness"),
                     "results": {a: {"sql": per[a]["pred"], "match": per[a].get("exec_match"),
                                     "error_kind": per[a].get("error_kind")} for a in adapter_names if a in per}})
    return {"count": len(rows), "shown": min(len(rows), MAX_DISAGREEMENTS), "rows": rows[:MAX_DISAGREEMENTS]}


# ---------------------------------------------------------------- plots
def _grouped_bars(categories: list[str], series: dict[str, list], *, title: str, ylabel: str = "EX (%)",
                  horizontal: bool = False) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_series = max(1, len(series))
    width = 0.8 / n_series
    if horizontal:
        few = len(categories) <= 2  # one or two databases: a small chart, not two bars a third of the page tall
        floor = 1.2 + 0.6 * len(categories) if few else 3.0
        fig, ax = plt.subplots(figsize=(7 if few else 9, max(floor, 0.32 * len(categories) * max(1,
                                                                                                 n_series * 0.6) + 1)))
    else:
        fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(categories) * max(1, n_series * 0.5)), 4))
    for i, (label, values) in enumerate(series.items()):
        pos = [j + (i - (n_series - 1) / 2) * width for j in range(len(categories))]
        vals = [0 if v is None else 100 * v for v in values]
        bars = (ax.barh if horizontal else ax.bar)(pos, vals, width, label=label)
        for b, v in zip(bars, values):
            text = bar_label(v)
            if horizontal:
                ax.text(b.get_width() + 0.5, b.get_y() + b.get_height() / 2, text, va="center", fontsize=7)
            else:
                ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.5, text, ha="center", fontsize=7)
    ticks = range(len(categories))
    span = (-0.5, len(categories) - 0.5)  # every bar whole, even with one category (autoscale clipped it)
    if horizontal:
        ax.set_yticks(list(ticks), categories, fontsize=8)
        ax.set_ylim(span[1], span[0])  # first category on top
        ax.set_xlim(0, 108)
        ax.set_xlabel(ylabel)
    else:
        ax.set_xticks(list(ticks), categories)
        ax.set_xlim(*span)
        ax.set_ylim(0, 108)
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="x" if horizontal else "y", alpha=0.3)
    return _png(fig)


def plot_by_hardness(report: dict) -> str:
    adapters = report["adapters"]
    levels = [h for h in HARDNESS_ORDER if any(h in a["by_hardness"] for a in adapters.values())]
    levels += sorted({h for a in adapters.values() for h in a["by_hardness"]} - set(levels))
    categories = ["all"] + levels
    series = {a["display_name"]: [a["ex"]] + [a["by_hardness"].get(h, {}).get("ex") for h in levels]
              for a in adapters.values()}
    return _grouped_bars(categories, series, title="Execution accuracy by hardness")


def plot_by_database(report: dict) -> str:
    adapters = report["adapters"]
    dbs = sorted({db for a in adapters.values() for db in a["by_database"]})
    series = {a["display_name"]: [a["by_database"].get(db, {}).get("ex") for db in dbs] for a in adapters.values()}
    return _grouped_bars(dbs, series, title="Execution accuracy per database", horizontal=True)


# ---------------------------------------------------------------- sections
def _levels(adapters: dict) -> list[str]:
    return [h for h in HARDNESS_ORDER if any(h in a["by_hardness"] for a in adapters.values())]


def _error_kinds(report: dict) -> list[str]:
    return sorted({k for a in report["adapters"].values() for k in a["errors"]}) or ["none"]


def settings_section(report: dict) -> list:
    s, q = report["settings"], report["questions"]
    engine = f" ({s['engine']})" if s.get("engine") else ""
    consistency = f"; {s['self_consistency']}" if s.get("self_consistency") else ""
    label = source_label(s["base_model"])
    converted = [" (converted once to ", Code(s["base_model"]), ")"] if label != s["base_model"] else []
    blocks: list = [Bullets([
        ["Base model: ", Code(label), *converted, f"; backend: {s['backend']}{engine}"],
        [f"Questions: {q['evaluated']} evaluated of {q['selected']} selected from ", Code(s["source"]),
         f"; {q['executable']} executable here"],
        f"Decoding: {s['decoding']}, max {s['max_new_tokens']} new tokens{consistency}",
        f"Scoring: {s['distinct_handling']}; timeout {s['timeout_s']} s per query"])]
    notes = []
    if q["missing_databases"]:
        notes.append([[Bold("Missing databases"), " (their questions were skipped): "
                       + ", ".join(f"{m['db_id']} ({m['questions']} questions)" for m in q["missing_databases"])]])
    if q["not_executable"]["count"]:
        notes.append([[Bold(f"Not executable here: {q['not_executable']['count']} questions."), " "
                       + "; ".join(f"{reason} ({n})" for reason, n in q["not_executable"]["reasons"].items())],
                      "They have predictions but no execution accuracy."])
    if notes:
        blocks.append(Note(notes))
    return blocks


def accuracy_section(report: dict) -> list:
    adapters = report["adapters"]
    levels = _levels(adapters)
    rows = []
    for a in adapters.values():
        hard = [Cell(f"{_pct(a['by_hardness'].get(h, {}).get('ex'))} ({a['by_hardness'].get(h, {}).get('n', 0)})",
                     num=True) for h in levels]
        ext, mean = a["extraction"], a["mean_generated_tokens"]
        rows.append([a["display_name"], Cell(Bold(_pct(a["ex"])), num=True), Cell(f"{a['correct']} / {a['n']}",
                                                                                  num=True),
                     *hard, Cell(f"{ext['changed']} / {ext['n']} ({_pct(ext['rate'])})", num=True),
                     Cell("n/a" if mean is None else f"{mean:.1f}", num=True)])
    blocks: list = [Heading("Execution accuracy"),
                    Table(["model", "EX", "correct / n", *levels, "extraction changed SQL", "tokens/answer"], rows)]
    finishes = sorted({k for a in adapters.values() for k in a.get("finish", {})})
    if finishes:
        blocks.append(Table(
            ["model", *finishes],
            [[a["display_name"], *(Cell(str(a.get("finish", {}).get(k, 0)), num=True) for k in finishes)]
             for a in adapters.values()],
            caption="How the scored completions ended (stop: end of turn; length: ran to the token limit; "
                    "repetition: the repetition guard ended a loop):"))
    kinds = _error_kinds(report)
    blocks += [Heading("Errors by kind"),
               Table(["model", *kinds], [[a["display_name"], *(Cell(str(a["errors"].get(k, 0)), num=True)
                                                               for k in kinds)] for a in adapters.values()])]
    return blocks


def figures_section(report: dict) -> list:
    """EX by hardness (a chart only: its figures are in the accuracy table) and EX per database."""
    adapters = report["adapters"]
    blocks: list = []
    if any(a["n"] for a in adapters.values()):
        blocks.append(Figure("EX by hardness", "plot-hardness", lambda: plot_by_hardness(report)))
    dbs = sorted({db for a in adapters.values() for db in a["by_database"]})
    if dbs:
        rows = []
        for db in dbs:
            cells = []
            for a in adapters.values():
                d = a["by_database"].get(db)
                cells.append(Cell(f"{_pct(d['ex'])} ({d['n']})" if d else "-", num=True))
            rows.append([db, *cells])
        table = Table(["database", *(a["display_name"] for a in adapters.values())], rows)
        blocks.append(Figure("EX per database", "plot-database", lambda: plot_by_database(report), table=table))
    return blocks


def repair_section(repair: dict | None) -> list:
    """The `--repair` section: EX before and after, counts, and the extra generation it cost."""
    if not repair:
        return []
    rows = [[a["display_name"], Cell(_pct(a["ex_before"]), num=True), Cell(Bold(_pct(a["ex_after"])), num=True),
             *(Cell(str(a[k]), num=True) for k in ("failing", "repaired", "fixed", "extra_tokens")),
             Cell(f"{a['extra_generation_seconds_share']:.1f}", num=True)] for a in repair["adapters"].values()]
    return [
        Heading(f"Repair of failing SQL ({repair['strategy']}, k={repair['k']}, temperature {repair['temperature']})"),
        Paragraph(f"Predictions that did not execute ({', '.join(repair['repairable_error_kinds'])}) got {repair['k']} "
                  "more completions each; among those that execute the majority vote picks one, which replaces the "
                  "prediction and is scored by the same rules."),
        Table(["model", "EX before", "EX after", "failing", "now execute", "now correct", "extra tokens",
               "extra generation s"], rows),
        Bullets([f"repair pass: {repair['generated_tokens']} tokens in {repair['generation_seconds']:.1f} s of "
                 f"generation; executing candidates and re-scoring "
                 f"{repair['execute_and_rescore_seconds_this_session']:.1f} s this session"])]


def speed_section(t: dict | None) -> list:
    """Generation speed over every answer, and this session's apart when it resumed answers from an earlier one
    (a resumed run's generation seconds add up several sessions; its wall time is this session's only)."""
    if not t:
        return []
    session = t.get("this_session") or {}
    resumed = session.get("resumed") or 0
    over = ", summed over this session and the earlier one(s) it resumed" if resumed else ""
    items: list = [[f"{t['generated_tokens']} tokens generated in {t['generation_seconds']:.1f} s of generation (",
                    Bold(f"{t['tokens_per_s']:.1f} tokens/s"),
                    f", all adapters in one engine) on {t['device'].get('device', '?')}{over}"]]
    if resumed:
        items.append(f"this session: {session.get('tokens', 0)} tokens in {session.get('seconds', 0.0):.1f} s of "
                     f"generation ({session.get('tokens_per_s', 0.0):.1f} tokens/s); {resumed} answers came from "
                     "the earlier session(s)")
    items.append(f"scoring {t['scoring_seconds']:.1f} s; this session's wall time "
                 f"{t['wall_seconds_this_session']:.1f} s")
    return [Heading("Speed"), Bullets(items)]


def disagreements_section(report: dict) -> list:
    d = report["disagreements"]
    shown = f", first {d['shown']} shown" if d["shown"] < d["count"] else ""
    columns = [(name, a["display_name"]) for name, a in report["adapters"].items()]
    return [Heading(f"Questions where the models disagree ({d['count']}{shown})"), QuestionList(d["rows"], columns)]


def report_document(report: dict) -> Document:
    """report.json as sections: what report.md and report.html both show."""
    from t2s_fast.evaluate.checkpoints import checkpoints_section

    return Document(report["title"], [
        *settings_section(report), *accuracy_section(report), *figures_section(report),
        *repair_section(report.get("repair")), *checkpoints_section(report), *speed_section(report.get("timing")),
        *disagreements_section(report)])


def render_markdown(report: dict) -> str:
    return to_markdown(report_document(report))


def render_html(report: dict, *, plots: bool = True) -> str:
    return to_html(report_document(report), plots=plots)


def write_reports(out_dir: str | Path, report: dict) -> dict[str, Path]:
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    write_json(paths["json"], report)
    with atomic_open(paths["md"]) as fh:
        fh.write(render_markdown(report))
    with atomic_open(paths["html"]) as fh:
        fh.write(render_html(report))
    return paths


# ---------------------------------------------------------------- re-render and compare
def load_report(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "report.json"
    if not path.is_file():
        raise T2SError(f"{path}: not found (is {run_dir} a t2s-fast eval run folder? run `t2s-fast eval` first)")
    report = read_json(path)
    if not isinstance(report, dict) or "adapters" not in report:
        raise T2SError(f"{path}: not a t2s-fast evaluation report (no 'adapters')")
    return report


def comparison(run_dirs: list[str | Path]) -> dict:
    """One row per (run, model): EX overall and by hardness, side by side."""
    rows = []
    for run_dir in run_dirs:
        rep = load_report(run_dir)
        for name, a in rep["adapters"].items():
            rows.append({"run": str(run_dir), "model": a.get("display_name", name), "ex": a["ex"], "n": a["n"],
                         "by_hardness": {h: v.get("ex") for h, v in a["by_hardness"].items()},
                         "tokens_per_s": (rep.get("timing") or {}).get("tokens_per_s")})
    return {"runs": [str(r) for r in run_dirs], "rows": rows}


def comparison_document(comp: dict) -> Document:
    levels = [h for h in HARDNESS_ORDER if any(h in r["by_hardness"] for r in comp["rows"])]
    rows = [[r["run"], r["model"], Cell(Bold(_pct(r["ex"])), num=True), Cell(str(r["n"]), num=True),
             *(Cell(_pct(r["by_hardness"].get(h)), num=True) for h in levels),
             Cell(f"{r['tokens_per_s']:.1f}" if r["tokens_per_s"] else "n/a", num=True)] for r in comp["rows"]]
    labels = [f"{Path(r['run']).name}: {r['model']}" for r in comp["rows"]]

    def plot() -> str:
        return _grouped_bars(["all"] + levels, {lab: [r["ex"]] + [r["by_hardness"].get(h) for h in levels]
                                               for lab, r in zip(labels, comp["rows"])},
                             title="Execution accuracy, runs compared")

    return Document("t2s-fast: evaluation runs compared", [
        Table(["run", "model", "EX", "n", *levels, "tokens/s"], rows),
        Figure("EX, runs compared", "plot-compare", plot, heading=False)])


def render_comparison(comp: dict) -> tuple[str, str]:
    doc = comparison_document(comp)
    return to_markdown(doc), to_html(doc)


def report_runs(run_dirs: list[str | Path], out: str | Path | None = None) -> dict[str, Path]:
    """Re-render each run's report.md/html from its report.json; with several runs (or ``out``), also write
    comparison.md/html to ``out`` (default: the first run folder)."""
    if not run_dirs:
        raise T2SError("give at least one run folder")
    written = {}
    for run_dir in run_dirs:
        rep = load_report(run_dir)
        for kind, p in write_reports(run_dir, rep).items():
            written[f"{run_dir}:{kind}"] = p
    if len(run_dirs) > 1 or out:
        target = Path(out or run_dirs[0])
        target.mkdir(parents=True, exist_ok=True)
        comp = comparison(run_dirs)
        md, page = render_comparison(comp)
        write_json(target / "comparison.json", comp)
        with atomic_open(target / "comparison.md") as fh:
            fh.write(md)
        with atomic_open(target / "comparison.html") as fh:
            fh.write(page)
        written["comparison.md"] = target / "comparison.md"
        written["comparison.html"] = target / "comparison.html"
    return written
