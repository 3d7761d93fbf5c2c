"""Turn a `bench/real_model.sh` work folder into `records/reports/<date>-h200-<model>/`, or compare two backends.

  python bench/real_model_report.py compare HF_SCORED VLLM_SCORED --adapter stage1 --out hf_vs_vllm.json
  python bench/real_model_report.py build WORK_DIR --model qwen2.5-coder-0.5b --out REPORT_DIR

`build` copies what the figures come from (eval reports, each stage's run.json, loss plot and per-step log,
the crash/resume log, commands, versions, device) and writes summary.json and a README.md that explains them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path

# The recorded run of the same runbook to compare with (Spider dev, 972 questions, EX), from
# records/reports/2026-11-29-h200-<model>/summary.json.
REFERENCE_RUN = "records/reports/2026-11-29-h200-<model>"
REFERENCE = {
    "qwen2.5-coder-0.5b": {"base": 0.5051, "stage1": 0.5895, "stage2": 0.5977, "stage1_maj8": 0.7068},
    "qwen2.5-coder-1.5b": {"base": 0.6399, "stage1": 0.8025, "stage2": 0.7665, "stage1_maj8": 0.8179},
}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def compare(hf_scored: Path, vllm_scored: Path, adapter: str) -> dict:
    """Identical-prediction rate and EX of each backend on the questions the HF run answered."""
    hf = {r["qid"]: r for r in read_jsonl(hf_scored) if r["adapter"] == adapter}
    vl = {r["qid"]: r for r in read_jsonl(vllm_scored) if r["adapter"] == adapter and r["qid"] in hf}
    qids = sorted(set(hf) & set(vl))
    if not qids:
        raise SystemExit(f"no common questions for adapter {adapter!r} in {hf_scored} and {vllm_scored}")
    same = [q for q in qids if hf[q]["pred"].strip() == vl[q]["pred"].strip()]
    judged = [q for q in qids if hf[q].get("exec_match") is not None and vl[q].get("exec_match") is not None]

    def ex(rows, ids):
        return sum(bool(rows[q]["exec_match"]) for q in ids) / len(ids) if ids else None

    verdict_differs = [q for q in judged if bool(hf[q]["exec_match"]) != bool(vl[q]["exec_match"])]
    return {"adapter": adapter, "questions": len(qids), "identical_predictions": len(same),
            "identical_rate": len(same) / len(qids), "judged": len(judged),
            "ex_hf": ex(hf, judged), "ex_vllm": ex(vl, judged), "verdict_differs": len(verdict_differs),
            "examples_of_differences": [{"qid": q, "hf": hf[q]["pred"], "vllm": vl[q]["pred"],
                                         "hf_match": hf[q].get("exec_match"), "vllm_match": vl[q].get("exec_match")}
                                        for q in qids if q not in same][:10]}


def _train_summary(run_dir: Path) -> dict | None:
    run_file = run_dir / "run.json"
    if not run_file.is_file():
        return None
    run = json.loads(run_file.read_text())
    log_file = run_dir / "train_log.jsonl"
    steps = [r for r in read_jsonl(log_file) if "loss" in r] if log_file.is_file() else []
    cost = run.get("cost_usd")
    return {"stop_reason": run.get("stop_reason"), "global_step": run.get("global_step"),
            "tokens_trained_total": run.get("tokens_trained_total"),
            "trained_tokens_per_s": run.get("trained_tokens_per_s"),
            "wall_time_s": run.get("wall_time_s"), "elapsed_s_total": run.get("elapsed_s_total"), "cost_usd": cost,
            "projected_cost_usd": run.get("projected_cost_usd"),
            "usd_per_step": cost / steps[-1]["step"] if steps and cost else None,
            "final_loss": run.get("final_loss"), "final_eval_loss": run.get("final_eval_loss"),
            "peak_gpu_memory_reserved_gib": run.get("peak_gpu_memory_reserved_gib"),
            "resumed_from": run.get("resumed_from"),
            "setup": (run.get("setup") or {}).get("summary") or run.get("setup")}


def _ex(report: dict | None, adapter: str) -> float | None:
    if not report:
        return None
    return (report["adapters"].get(adapter) or {}).get("ex")


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _money(x) -> str:
    return "n/a" if x is None else f"${x:.3f}"


def build(work: Path, model: str, price: float, out: Path, notes: Path | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    for src, dst in (("eval-dev", "eval-dev"), ("eval-dev-maj8", "eval-dev-maj8"), ("eval-hf200", "eval-hf200")):
        for name in ("report.json", "report.md", "report.html"):
            if (work / src / name).is_file():
                (out / dst).mkdir(exist_ok=True)
                shutil.copy2(work / src / name, out / dst / name)
        if (work / src / "scored.jsonl").is_file():  # every answer, raw and extracted, with its verdict
            with open(work / src / "scored.jsonl", "rb") as f, gzip.open(out / dst / "scored.jsonl.gz", "wb") as g:
                shutil.copyfileobj(f, g)
    for stage in ("stage1", "stage2", "stage1-crash"):
        for name in ("run.json", "loss.png", "train_log.jsonl"):
            if (work / stage / name).is_file():
                (out / stage).mkdir(exist_ok=True)
                shutil.copy2(work / stage / name, out / stage / name)
    for name in ("commands.sh", "hf_vs_vllm.json"):
        if (work / name).is_file():
            shutil.copy2(work / name, out / name)
    if (work / "logs").is_dir():
        shutil.copytree(work / "logs", out / "logs", dirs_exist_ok=True)
    dev, maj8 = _load(work / "eval-dev" / "report.json"), _load(work / "eval-dev-maj8" / "report.json")
    measured = {"base": _ex(dev, "__base__"), "stage1": _ex(dev, "stage1"), "stage2": _ex(dev, "stage2"),
                "stage1_resumed": _ex(dev, "stage1-resumed"), "stage1_maj8": _ex(maj8, "stage1")}
    summary = {
        "model": model, "gpu_hourly_usd": price, "ex_spider_dev": measured, "reference": REFERENCE.get(model, {}),
        "questions": (dev or {}).get("questions", {}).get("evaluated"),
        "train": {s: _train_summary(work / s) for s in ("stage1", "stage2", "stage1-crash")},
        "eval": {name: {"timing": (r or {}).get("timing"), "engine": ((r or {}).get("settings") or {}).get("engine"),
                        "finish": {a: v.get("finish") for a, v in ((r or {}).get("adapters") or {}).items()}}
                 for name, r in (("eval-dev", dev), ("eval-dev-maj8", maj8))},
        "hf_vs_vllm": _load(work / "hf_vs_vllm.json"),
        "versions": _load(work / "logs" / "versions.json"),
        "device": ((work / "logs" / "device.txt").read_text().strip()
                   if (work / "logs" / "device.txt").is_file() else None),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = render_readme(summary, work)
    if notes is not None:  # what the run did not do and why figures differ: written by whoever ran it
        text += "\n" + notes.read_text()
    (out / "README.md").write_text(text)
    return summary


def _crash_lines(work: Path) -> list[str]:
    log = work / "logs" / "stage1-crash.log"
    if not log.is_file():
        return ["(the crash phase did not run)"]
    keep = ("== run", "received", "--resume:", "interrupted:", "completed:", "budget:", "exited")
    return [line.rstrip() for line in log.read_text(errors="replace").splitlines() if any(k in line for k in keep)][:20]


def render_readme(s: dict, work: Path) -> str:
    m, ref, t = s["ex_spider_dev"], s["reference"], s["train"]
    lines = [f"# The runbook on a real pretrained model: {s['model']}, one H200", "",
             f"Device: {s['device']}. Versions: "
             + ", ".join(f"{k} {v}" for k, v in (s["versions"] or {}).items()) + ".",
             f"Made by `bash bench/real_model.sh {s['model']} DATA_DIR WORK_DIR` (phases in `commands.sh`, "
             "each command "
             f"with its start time); GPU hours priced at ${s['gpu_hourly_usd']}/h.", "",
             f"## Execution accuracy on Spider dev ({s['questions']} questions whose database is here)", "",
             f"| variant | EX (this run) | recorded run ({REFERENCE_RUN.replace('<model>', s['model'])}) "
             "| difference |",
             "|---|---|---|---|"]
    for key, label in (("base", "base model, t2s-fast prompt"), ("stage1", "stage 1, greedy"),
                       ("stage2", "stage 2 (mixed), greedy"), ("stage1_maj8", "stage 1, majority vote over 8 samples"),
                       ("stage1_resumed", "stage 1 killed twice and resumed, greedy")):
        r = ref.get(key) if key != "stage1_resumed" else m.get("stage1")
        diff = f"{100 * (m[key] - r):+.1f} pts" if m.get(key) is not None and r is not None else ""
        lines.append(f"| {label} | **{_pct(m.get(key))}** | {_pct(r)}"
                     + (" (the uninterrupted stage 1 of this run)" if key == "stage1_resumed" else "") + f" | {diff} |")
    lines += ["", "Greedy variants were scored from one vLLM engine in one `generate` call "
              f"({(s['eval']['eval-dev'] or {}).get('engine')}); the vote ran in a second engine. Scoring: "
              "the official test-suite execution-match rules (`t2s_fast/sql`), read-only sandboxed SQLite.", "",
              "## Training: what it cost", "", "| run | steps | tokens | trained tok/s | wall | $ | $/step | "
              "final loss | final eval loss | stop |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in t.items():
        if r:
            per_step = "n/a" if r["usd_per_step"] is None else f"${r['usd_per_step']:.5f}"
            lines.append(f"| {name} | {r['global_step']} | {r['tokens_trained_total'] or 0:,} | "
                         f"{r['trained_tokens_per_s'] or 0:,.0f} | {r['wall_time_s'] or 0:.0f} s | "
                         f"{_money(r['cost_usd'])} | "
                         f"{per_step} | {r['final_loss'] or 0:.4f} | {r['final_eval_loss'] or 0:.4f} | "
                         f"{r['stop_reason']} |")
    lines += ["", "Each run folder holds `run.json` (settings, chosen setup, versions, cost), `loss.png` and "
              "`train_log.jsonl` (one line per optimizer step with its cumulative `cost_usd`: dollars per step).", "",
              "## Killed and resumed", "", "Stage 1 was run a second time and killed as a dropped SSH session or a "
              "preempted machine would kill it: SIGTERM first (the run saves a checkpoint and its adapter, exits 143), "
              "`--resume`, then SIGKILL (nothing saved), `--resume` again to the end. From `logs/stage1-crash.log`:",
              "",
              "```", *_crash_lines(work), "```", ""]
    crash = t.get("stage1-crash")
    if crash:
        lines.append(f"The resumed run finished at step {crash['global_step']} (resumed last from "
                     f"`{crash['resumed_from']}`); its cost counts every interrupted and resumed run's GPU time: "
                     f"{_money(crash['cost_usd'])} over {crash['elapsed_s_total'] or 0:.0f} s against "
                     f"{_money((t.get('stage1') or {}).get('cost_usd'))} "
                     f"for the uninterrupted run. Its Spider dev EX: {_pct(m.get('stage1_resumed'))} "
                     f"(uninterrupted: {_pct(m.get('stage1'))}).")
    hv = s.get("hf_vs_vllm")
    lines += ["", "## The same adapter through two engines", ""]
    if hv:
        lines += [f"Stage 1, greedy, the first {hv['questions']} dev questions: transformers+PEFT and vLLM gave "
                  f"identical SQL for {hv['identical_predictions']} ({_pct(hv['identical_rate'])}); EX "
                  f"{_pct(hv['ex_hf'])} (HF) against {_pct(hv['ex_vllm'])} (vLLM) on the {hv['judged']} judged; the "
                  f"verdict differs on {hv['verdict_differs']}. `hf_vs_vllm.json` lists the differing answers.", ""]
    else:
        lines += ["(not run)", ""]
    lines += ["## How the completions ended", "",
              "`stop`: end of turn; `length`: ran to the 256-token limit; `repetition`: the repetition guard "
              "(`--repetition-guard`, on by default) ended a loop.", ""]
    for name, e in s["eval"].items():
        for adapter, fin in (e.get("finish") or {}).items():
            lines.append(f"- {name}, {adapter}: " + ", ".join(f"{k} {v}" for k, v in (fin or {}).items()))
    for name, e in s["eval"].items():
        timing = e.get("timing") or {}
        if timing:
            lines.append(f"\n{name}: {timing.get('generated_tokens'):,} tokens generated in "
                         f"{timing.get('generation_seconds')} s ({timing.get('tokens_per_s')} tok/s); the whole "
                         "command "
                         f"(engine start, generation, scoring) {timing.get('wall_seconds_this_session')} s "
                         f"(see `logs/{name}.log`).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("hf_scored", type=Path)
    c.add_argument("vllm_scored", type=Path)
    c.add_argument("--adapter", default="stage1")
    c.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("build")
    b.add_argument("work", type=Path)
    b.add_argument("--model", required=True)
    b.add_argument("--price", type=float, default=3.44)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--notes", type=Path, default=None, help="Markdown appended to the README (gaps, explanations).")
    args = ap.parse_args(argv)
    if args.cmd == "compare":
        result = compare(args.hf_scored, args.vllm_scored, args.adapter)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "examples_of_differences"}))
    else:
        build(args.work, args.model, args.price, args.out, args.notes)
        print((args.out / "README.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
