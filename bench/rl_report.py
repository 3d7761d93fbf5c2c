"""The report of a `bench/rl_real_model.sh` work folder: what GRPO gave over its SFT start, chosen on held-out data.

    python bench/rl_report.py WORK_DIR OUT_DIR [--title TEXT]

OUT_DIR receives README.md and report.json (every figure below, with the file it comes from), the per-question
files (held-out: every adapter; Spider dev: the SFT start and the choice, greedy, the default repair and maj@8),
each run's run.json, train_log.jsonl and curves, the filter's summary, heldout_ex_vs_step.png and
seconds_per_step.png. Differences are quoted with their 95% paired bootstrap interval (`t2s_fast.evaluate.paired`);
one whose interval holds 0 is called noise.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from t2s_fast.evaluate.paired import LEVEL, N_BOOT, compare_adapters, ex_of, markdown_table, read_per_question
from t2s_fast.jsonl import read_jsonl
from t2s_fast.rl.plot import plot_rl_curves
from t2s_fast.rl.trainer import summarize_steps

DEV_RUNS = (("greedy", "greedy"), ("repair", "default repair (resample K=8 at T=0.8 where SQL fails)"),
            ("maj8", "majority vote of 8 samples at T=0.8"))


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _pct(correct_n: tuple[int, int]) -> str:
    c, n = correct_n
    return f"{100 * c / n:.1f}% ({c}/{n})" if n else "-"


def _copy(src: Path, dst: Path) -> None:
    if src.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def _step(name: str) -> int | None:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def chosen_name(work: Path) -> str | None:
    """The adapter chosen on held-out data (chosen.txt: name and path), or None before the choice."""
    return (work / "chosen.txt").read_text().split()[0] if (work / "chosen.txt").is_file() else None


def heldout_section(work: Path, out: Path, report: dict) -> list[str]:
    recs = read_per_question(work / "heldout")
    names = list(dict.fromkeys(r["adapter"] for r in recs))
    chosen = chosen_name(work)
    _copy(work / "heldout" / "scored.jsonl.gz", out / "heldout" / "scored.jsonl.gz")
    rows = []
    for name in names:
        c = compare_adapters(recs, "sft", recs, name) if name != "sft" else None
        rows.append({"adapter": name, "ex": ex_of(recs, name), "vs_sft": c})
    report["heldout"] = {"file": "heldout/scored.jsonl.gz", "chosen": chosen,
                         "rows": [{"adapter": r["adapter"], "correct": r["ex"][0], "n": r["ex"][1],
                                   "vs_sft": r["vs_sft"]} for r in rows]}
    lines = ["## Held-out choice (`stage1_valid.jsonl`, greedy, one engine)", "",
             f"Every checkpoint of every GRPO run and the SFT start, scored in one vLLM engine; per-question file "
             f"`heldout/scored.jsonl.gz`. Chosen: **{chosen}** (highest EX; ties to the SFT start, then the earlier "
             "checkpoint).", "", "| adapter | held-out EX | vs SFT (pts, 95% CI) |", "|---|---|---|"]
    for r in rows:
        c = r["vs_sft"]
        vs = "-" if c is None else (f"{100 * c['diff']:+.1f} [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]"
                                    f"{' noise' if c['noise'] else ''}")
        lines.append(f"| {r['adapter']}{' (chosen)' if r['adapter'] == chosen else ''} | {_pct(r['ex'])} | {vs} |")
    _plot_heldout(rows, out / "heldout_ex_vs_step.png")
    return lines + ["", "![held-out EX against the GRPO step](heldout_ex_vs_step.png)", ""]


def _plot_heldout(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sft = next(r for r in rows if r["adapter"] == "sft")
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.axhline(100 * sft["ex"][0] / sft["ex"][1], color="grey", ls="--", label="SFT start")
    runs = sorted({r["adapter"].rsplit("-step-", 1)[0] for r in rows if "-step-" in r["adapter"]})
    for run in runs:
        pts = sorted((_step(r["adapter"]), 100 * r["ex"][0] / r["ex"][1]) for r in rows
                     if r["adapter"].startswith(run + "-step-"))
        ax.plot(*zip(*([(0, 100 * sft["ex"][0] / sft["ex"][1])] + pts)), "o-", label=run)
    ax.set_xlabel("GRPO optimizer step")
    ax.set_ylabel("held-out EX (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def dev_section(work: Path, out: Path, report: dict) -> list[str]:
    lines = ["## Spider dev: the SFT start and the held-out choice", "",
             "| decoding | SFT start | chosen | chosen vs SFT (pts, 95% paired CI) | right→wrong | wrong→right | "
             "per-question file |", "|---|---|---|---|---|---|---|"]
    report["dev"] = {}
    comparisons = []
    for name, label in DEV_RUNS:
        folder = work / f"dev-{name}"
        if not (folder / "scored.jsonl.gz").is_file():
            lines.append(f"| {label} | not run | | | | | |")
            continue
        _copy(folder / "scored.jsonl.gz", out / f"dev-{name}" / "scored.jsonl.gz")
        _copy(folder / "report.json", out / f"dev-{name}" / "report.json")
        recs = read_per_question(folder)
        # the choice under its own name (e.g. rl-lr4e-5-step-24); earlier runs called it "chosen"
        chosen = "chosen" if any(r["adapter"] == "chosen" for r in recs) else chosen_name(work)
        c = compare_adapters(recs, "sft", recs, chosen, label_a=f"SFT, {name}", label_b=f"{chosen}, {name}")
        comparisons.append(c)
        report["dev"][name] = {"file": f"dev-{name}/scored.jsonl.gz", "sft": ex_of(recs, "sft"),
                               "chosen": ex_of(recs, chosen), "chosen_adapter": chosen, "chosen_vs_sft": c}
        lines.append(f"| {label} | {_pct(ex_of(recs, 'sft'))} | {_pct(ex_of(recs, chosen))} | "
                     f"{100 * c['diff']:+.1f} [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]"
                     f"{' (noise)' if c['noise'] else ''} | {c['right_to_wrong']} | {c['wrong_to_right']} | "
                     f"`dev-{name}/scored.jsonl.gz` |")
    return lines + ["", *markdown_table(comparisons), ""] if comparisons else lines + [""]


def _tps(tokens_per_s: float | None) -> str:
    return f" at {tokens_per_s:,.0f} tok/s" if tokens_per_s else ""


def _pad(share: float | None) -> str:
    return "" if share is None else f", {share:.0%} padding"


def _or_dash(x) -> str:
    return "-" if x is None else str(x)


def _r3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def sync_check(steps: list[dict], prompts_per_step: int, seed: int = 0) -> dict | None:
    """The weight-sync check of a learning-rate-0 run: the policy never moves, so the share of right completions
    at each step must match the filter pass's share on the same prompts (both sample the starting adapter). The
    difference of the two, with a bootstrap interval over steps (each step's prompts move together) at the level
    and resample count of the paired comparisons (`t2s_fast.evaluate.paired`)."""
    import numpy as np

    pairs = [(r["match_rate"], r["start_match_rate"]) for r in steps
             if r.get("match_rate") is not None and r.get("start_match_rate") is not None]
    if not pairs:
        return None
    diffs = np.array([a - b for a, b in pairs])
    means = np.random.default_rng(seed).choice(diffs, size=(N_BOOT, len(diffs))).mean(axis=1)
    tail = (1 - LEVEL) / 2
    low, high = (round(float(x), 4) for x in np.quantile(means, [tail, 1 - tail]))
    return {"steps": len(pairs), "prompts": len(pairs) * prompts_per_step,
            "match_rate": _mean([a for a, _ in pairs]), "start_match_rate": _mean([b for _, b in pairs]),
            "difference": round(float(diffs.mean()), 4), "ci95": [low, high]}


def _cut_run_info(d: Path, rows: list[dict]) -> dict | None:
    """What a run stopped before writing run.json (a lease taken back, a kill) shows in its train_log.jsonl and
    prompts/filter.json: its steps, their timing and rewards, its dollars so far. None before its first step."""
    steps = [r for r in rows if r.get("reward") is not None]
    if not steps:
        return None
    last = steps[-1]
    settings = _json(d / "prompts" / "settings.json")
    return {"global_step": last["step"], "stop_reason": "cut: stopped before run.json was written",
            "elapsed_s_total": last["elapsed_s"], "cost_usd": last["cost_usd"], "engine": "engine not recorded",
            "config": {"learning_rate": last.get("learning_rate", settings.get("learning_rate")),
                       "prompts_per_step": settings.get("prompts_per_step", 16)},
            "filter": _json(d / "prompts" / "filter.json") or None, **summarize_steps(rows)}


def run_section(work: Path, out: Path, report: dict) -> list[str]:
    lines = ["## The runs", "", "| run | steps | stop | minutes | dollars | s/step (gen / reward / train) | peak GiB "
             "| reward first → last | zero-std groups | match rate vs start's (first 3 steps) "
             "| vLLM vs trainer: mean abs Δ log p (median step) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    report["runs"] = {}
    sync_lines: list[str] = []
    step_rows: dict[str, list[dict]] = {}
    sft = _json(work / "sft" / "run.json")
    if sft:
        _copy(work / "sft" / "run.json", out / "sft" / "run.json")
        _copy(work / "sft" / "loss.png", out / "sft" / "loss.png")
        report["runs"]["sft"] = {k: sft.get(k) for k in ("global_step", "cost_usd", "elapsed_s_total",
                                                         "trained_tokens_per_s", "stop_reason")}
        cut = sft["config"].get("max_steps") or -1
        span = f"{cut} steps" if cut > 0 else f"{sft['config']['num_train_epochs']:g} epoch"
        lines.append(f"| SFT stage 1 ({span}, "
                     f"lr {sft['config']['learning_rate']:g})"
                     f" | {sft['global_step']} | {sft['stop_reason']} | {sft['elapsed_s_total'] / 60:.1f} | "
                     f"${sft['cost_usd']:.2f} | {sft.get('trained_tokens_per_s') or 0:,.0f} tok/s | "
                     f"{sft.get('peak_gpu_memory_allocated_gib', '-')} | | | | |")
    for d in sorted(p for p in work.glob("rl-*") if p.is_dir()):
        log = d / "train_log.jsonl"  # a run cut mid-append leaves a torn last line
        rows = read_jsonl(log, tolerate_torn_tail=True) if log.is_file() else []
        info = _json(d / "run.json") or _cut_run_info(d, rows)
        if not info:
            lines.append(f"| {d.name} | did not finish a step (see its log) | | | | | | | | | |")
            continue
        for f in ("run.json", "train_log.jsonl", "rl_curves.png", "prompts/filter.json"):
            _copy(d / f, out / d.name / Path(f).name)
        if not (d / "rl_curves.png").is_file() and rows:
            plot_rl_curves(d / "train_log.jsonl", out / d.name / "rl_curves.png", title=f"{d.name} (cut)")
        steps = [r for r in rows if r.get("reward") is not None]
        step_rows[f"{d.name} ({info['engine']})"] = steps
        med = info["step_seconds_median"]
        first3 = steps[:3]
        sync = (f"{_mean([r['match_rate'] for r in first3])} vs {_mean([r['start_match_rate'] for r in first3])}"
                if first3 and all("start_match_rate" in r for r in first3) else "-")
        report["runs"][d.name] = {"global_step": info["global_step"], "cost_usd": info["cost_usd"],
                                  "elapsed_s_total": info["elapsed_s_total"], "step_seconds_median": med,
                                  "train_tokens_per_s_median": info.get("train_tokens_per_s_median"),
                                  "padding_share_median": info.get("padding_share_median"),
                                  "peak_gpu_memory_allocated_gib": info.get("peak_gpu_memory_allocated_gib"),
                                  "engine": info["engine"], "learning_rate": info["config"]["learning_rate"],
                                  "filter": info["filter"],
                                  "mean_frac_reward_zero_std": info["mean_frac_reward_zero_std"],
                                  "first_reward": info["first_reward"], "final_reward": info["final_reward"],
                                  "sync_check_first3": sync,
                                  "sync_logp_diff_mean_median": info.get("sync_logp_diff_mean_median")}
        if info["config"]["learning_rate"] == 0:
            check = sync_check(steps, info["config"]["prompts_per_step"])
            report["runs"][d.name]["sync_check"] = check
            if check:
                held = check["ci95"][0] <= 0 <= check["ci95"][1]
                sync_lines = [
                    f"Weight-sync check ({d.name}, learning rate 0, {check['prompts']:,} prompts over "
                    f"{check['steps']} steps): right completions {check['match_rate']:.1%} in GRPO's generation "
                    f"against {check['start_match_rate']:.1%} in the filter pass on the same prompts; difference "
                    f"{check['difference']:+.1%} (95% interval over steps {check['ci95'][0]:+.1%} to "
                    f"{check['ci95'][1]:+.1%}): " + ("no sign of a sync error." if held else
                                                      "the generation does NOT sample the starting adapter.")]
                filt = info.get("filter") or {}
                if filt.get("kept") != filt.get("prompts"):  # kept for their counts: those counts regress to the mean
                    sync_lines += ["", f"The check is biased: its prompts were kept because of their filter-pass "
                                   f"counts ({filt.get('rule')}), so those counts are a biased estimate of the same "
                                   f"prompts' rate on fresh samples (selection on the measurement). Run it with "
                                   f"--filter-min-correct 0 --filter-max-correct K (every prompt kept)."]
                sync_lines.append("")
        lines.append(f"| {d.name} ({info['engine']}, lr {info['config']['learning_rate']:g}) | {info['global_step']} | "
                     f"{info['stop_reason']} | {info['elapsed_s_total'] / 60:.1f} | ${info['cost_usd']:.2f} | "
                     f"{med['total']} ({med['generation']} / {med['reward']} / {med['training']}"
                     f"{_tps(info.get('train_tokens_per_s_median'))}{_pad(info.get('padding_share_median'))}) | "
                     f"{info.get('peak_gpu_memory_allocated_gib', '-')} | {_r3(info['first_reward'])} → "
                     f"{_r3(info['final_reward'])} | {info['mean_frac_reward_zero_std']} | {sync} | "
                     f"{_or_dash(info.get('sync_logp_diff_mean_median'))} |")
    rules: dict[str, list[str]] = {}  # runs sharing a filter pass may keep different prompts of it
    for name, r in report["runs"].items():
        if isinstance(r, dict) and r.get("filter"):
            rules.setdefault(json.dumps(r["filter"], sort_keys=True, default=str), []).append(name)
    for key, names in rules.items():
        filt = json.loads(key)
        lines += ["", f"Prompt filter ({', '.join(names)}): {filt['kept']:,} of {filt['prompts']:,} training prompts "
                  f"kept ({filt['rule']}); {filt['never_right']:,} never right, {filt['always_right']:,} always right; "
                  f"pass-count histogram {filt.get('pass_count_histogram')}."]
    if step_rows:
        _plot_step_seconds(step_rows, out / "seconds_per_step.png")
        lines += ["", "![seconds per GRPO step, each run](seconds_per_step.png)"]
    return lines + [""] + sync_lines


def _plot_step_seconds(runs: dict[str, list[dict]], png: Path) -> None:
    """Each run's seconds per step against the step (log scale: a first step that compiles dwarfs the rest)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, rows in runs.items():
        pts = [(r["step"], r["step_time_s"]) for r in rows if r.get("step_time_s")]
        if pts:
            ax.plot(*zip(*pts), "o-", ms=3, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("GRPO optimizer step")
    ax.set_ylabel("seconds per step")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--title", default="GRPO on an execution reward")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"work_dir": str(args.work)}
    lines = [f"# {args.title}", ""]
    lines += run_section(args.work, args.out, report)
    if (args.work / "heldout").is_dir():
        lines += heldout_section(args.work, args.out, report)
    if any((args.work / f"dev-{name}").is_dir() for name, _ in DEV_RUNS):
        lines += dev_section(args.work, args.out, report)
    for f in ("device.txt", "versions.json", "commands.sh"):
        _copy(args.work / f, args.out / f)
    (args.out / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (args.out / "README.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
