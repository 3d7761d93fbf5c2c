"""The multi-GPU report: data-parallel training scaling, a killed run resumed, and vLLM data-parallel eval.

    python -m t2s_fast.benchmarks.scaling WORK_DIR [--out REPORT_DIR]

Reads the folder bench/multi_gpu_scaling.sh fills (any part may be missing; the report says what is):

    WORK_DIR/train/<label>/gpus-<n>/   run.json, train_log.jsonl   one training per GPU count, same global batch
    WORK_DIR/resume/                   run.json, resume.log         a multi-GPU run killed with SIGTERM, resumed
    WORK_DIR/eval/dp-<k>/              scored.jsonl, wall_s.txt     the same eval on k vLLM engines
    WORK_DIR/device.txt                the GPUs, one line each

and writes REPORT_DIR (default WORK_DIR/report): scaling.json, README.md (the scaling table with efficiency
= N-GPU tok/s / (N x 1-GPU tok/s), the loss curves' agreement, the resume, the eval comparison) and
loss_curves.png (each model's curves side by side).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

from t2s_fast.jsonl import atomic_open, write_json

EFFICIENCY_TARGET = 0.9  # 1.8x on two GPUs


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file() and Path(f"{path}.gz").is_file():
        path = Path(f"{path}.gz")
    if not path.is_file():
        return []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def loss_curve(run_dir: Path) -> dict[int, float]:
    """Training loss by optimizer step (eval-loss lines left out)."""
    return {r["step"]: r["loss"] for r in _read_jsonl(run_dir / "train_log.jsonl") if "loss" in r}


def curve_agreement(a: dict[int, float], b: dict[int, float]) -> dict:
    """How far two loss curves are apart on their common steps, against the first curve's own step-to-step noise."""
    steps = sorted(set(a) & set(b))
    if not steps:
        return {"common_steps": 0}
    diffs = [abs(a[s] - b[s]) for s in steps]
    noise = [abs(a[s] - a[t]) for s, t in zip(steps, steps[1:])]
    tail = steps[-10:]
    return {"common_steps": len(steps), "mean_abs_diff": round(sum(diffs) / len(diffs), 4),
            "max_abs_diff": round(max(diffs), 4),
            "step_to_step_noise": round(sum(noise) / len(noise), 4) if noise else None,
            "last10_mean": [round(sum(c[s] for s in tail) / len(tail), 4) for c in (a, b)]}


def _run_row(n: int, info: dict) -> dict:
    keys = ("world_size", "global_batch", "global_step", "trained_tokens_per_s", "peak_gpu_memory_allocated_gib",
            "peak_gpu_memory_reserved_gib", "wall_time_s", "cost_usd", "stop_reason", "backend")
    return {"gpus": n, **{k: info.get(k) for k in keys}}


def training_scaling(train_dir: Path) -> list[dict]:
    """One entry per model label: its runs by GPU count, speedup and efficiency against one GPU, loss agreement."""
    out = []
    for label_dir in sorted(p for p in train_dir.glob("*") if p.is_dir()):
        runs = {}
        for d in label_dir.glob("gpus-*"):
            m = re.fullmatch(r"gpus-(\d+)", d.name)
            info = _read_json(d / "run.json")
            if m and info:
                runs[int(m.group(1))] = (d, info)
        rows = [_run_row(n, info) for n, (_, info) in sorted(runs.items())]
        one = runs.get(1)
        for row in rows:
            t1 = one and one[1].get("trained_tokens_per_s")
            tn = row["trained_tokens_per_s"]
            row["speedup"] = round(tn / t1, 3) if t1 and tn else None
            row["efficiency"] = round(tn / (row["gpus"] * t1), 3) if t1 and tn else None
            row["loss_vs_one_gpu"] = curve_agreement(loss_curve(one[0]), loss_curve(runs[row["gpus"]][0])) \
                if one and row["gpus"] != 1 else None
        out.append({"label": label_dir.name, "runs": rows})
    return out


def resume_summary(resume_dir: Path) -> dict | None:
    info = _read_json(resume_dir / "run.json")
    log = resume_dir / "resume.log"
    if info is None and not log.is_file():
        return None
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.is_file() else []
    return {"stop_reason": (info or {}).get("stop_reason"), "global_step": (info or {}).get("global_step"),
            "resumed_from": (info or {}).get("resumed_from"), "world_size": (info or {}).get("world_size"),
            "cost_usd": (info or {}).get("cost_usd"), "elapsed_s_total": (info or {}).get("elapsed_s_total"),
            "log_marks": [ln for ln in lines if ln.startswith("== ")]}


def eval_comparison(eval_dir: Path) -> dict | None:
    """Each data-parallel size's wall time, and whether every (adapter, question) got the same verdict as on one
    engine; the questions that differ are listed."""
    sizes = {}
    for d in eval_dir.glob("dp-*"):
        m = re.fullmatch(r"dp-(\d+)", d.name)
        scored = _read_jsonl(d / "scored.jsonl")
        if m and scored:
            wall = d / "wall_s.txt"
            sizes[int(m.group(1))] = ({(r["adapter"], r["qid"]): bool(r["exec_match"]) for r in scored},
                                      float(wall.read_text().split()[0]) if wall.is_file() else None)
    if 1 not in sizes:
        return None
    base, base_wall = sizes[1]
    out = {"questions": len(base), "sizes": []}
    for k, (verdicts, wall) in sorted(sizes.items()):
        differ = sorted(f"{a}/{q}" for (a, q) in set(base) | set(verdicts) if base.get((a, q)) != verdicts.get((a, q)))
        out["sizes"].append({"data_parallel_size": k, "wall_s": wall,
                             "ex": round(sum(verdicts.values()) / len(verdicts), 4) if verdicts else None,
                             "speedup": round(base_wall / wall, 3) if base_wall and wall else None,
                             "same_verdicts": not differ, "differing": differ[:50], "n_differing": len(differ)})
    return out


def _fmt(x, spec=",.0f", none="–"):
    return none if x is None else format(x, spec)


def markdown(report: dict) -> str:
    lines = ["# Multi-GPU: data-parallel training and evaluation", "",
             f"Device: {report['device'] or 'not recorded'}.", ""]
    lines += ["## Training scaling (same global batch)", ""]
    if not report["training"]:
        lines += ["Not run.", ""]
    for model in report["training"]:
        lines += [f"### {model['label']}", "",
                  "| GPUs | global batch | steps | trained tok/s | speedup | efficiency | peak alloc GiB (rank 0) | "
                  "loss: mean abs diff vs 1 GPU (noise) | stop |", "|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for r in model["runs"]:
            agree = r["loss_vs_one_gpu"]
            agree_txt = "–" if not agree or not agree.get("common_steps") else \
                f"{agree['mean_abs_diff']:.3f} ({_fmt(agree['step_to_step_noise'], '.3f')}) " \
                f"over {agree['common_steps']} steps"
            lines.append(f"| {r['gpus']} | {_fmt(r['global_batch'], '')} | {_fmt(r['global_step'], '')} | "
                         f"{_fmt(r['trained_tokens_per_s'])} | {_fmt(r['speedup'], '.2f')}× | "
                         f"{_fmt(r['efficiency'], '.0%')} | {_fmt(r['peak_gpu_memory_allocated_gib'], '.1f')} | "
                         f"{agree_txt} | {r['stop_reason'] or '–'} |")
        short = [r for r in model["runs"] if r["efficiency"] is not None and r["gpus"] > 1
                 and r["efficiency"] < EFFICIENCY_TARGET]
        if short:
            lines += ["", f"Below the {EFFICIENCY_TARGET:.0%} target: a one-step profile (communication against "
                      "compute) says why."]
        lines.append("")
    if report["training"]:
        lines += ["![loss curves](loss_curves.png)", ""]
    lines += ["## A killed data-parallel run, resumed", ""]
    res = report["resume"]
    if res is None:
        lines += ["Not run.", ""]
    else:
        lines += [f"Final: {res['stop_reason']} at step {res['global_step']} on {res['world_size']} process(es), "
                  f"${_fmt(res['cost_usd'], '.3f')} in all (every GPU's hours, {_fmt(res['elapsed_s_total'], '.0f')} s "
                  "elapsed over the interrupted and resumed runs).", ""] + [f"    {m}" for m in res["log_marks"]] + [""]
    lines += ["## Evaluation: vLLM data parallel against one engine", ""]
    ev = report["eval"]
    if ev is None:
        lines += ["Not run.", ""]
    else:
        lines += [f"{ev['questions']} (adapter, question) pairs.", "",
                  "| data-parallel size | wall s (engine start included) | speedup | EX "
                  "| same verdicts as one engine |",
                  "|---:|---:|---:|---:|---|"]
        for s in ev["sizes"]:
            same = "yes" if s["same_verdicts"] else f"no: {s['n_differing']} differ"
            lines.append(f"| {s['data_parallel_size']} | {_fmt(s['wall_s'], '.1f')} | {_fmt(s['speedup'], '.2f')}× | "
                         f"{_fmt(s['ex'], '.1%')} | {same} |")
        lines.append("")
    return "\n".join(lines)


def plot_losses(report_training: list[dict], work: Path, png: Path) -> Path | None:
    if not report_training:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(report_training), figsize=(6 * len(report_training), 4), squeeze=False)
    for ax, model in zip(axes[0], report_training):
        for r in model["runs"]:
            curve = loss_curve(work / "train" / model["label"] / f"gpus-{r['gpus']}")
            ax.plot(list(curve), list(curve.values()), label=f"{r['gpus']} GPU(s)", linewidth=1)
        ax.set_title(model["label"])
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss")
        ax.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def build(work: Path, out: Path) -> dict:
    device = work / "device.txt"
    report = {"device": "; ".join(device.read_text().split("\n")).strip("; ") if device.is_file() else None,
              "training": training_scaling(work / "train"), "resume": resume_summary(work / "resume"),
              "eval": eval_comparison(work / "eval")}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "scaling.json", report)
    with atomic_open(out / "README.md") as f:
        f.write(markdown(report) + "\n")
    plot_losses(report["training"], work, out / "loss_curves.png")
    return report


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work_dir", type=Path, help="the folder bench/multi_gpu_scaling.sh wrote")
    ap.add_argument("--out", type=Path, help="default: WORK_DIR/report")
    args = ap.parse_args(argv)
    out = args.out or args.work_dir / "report"
    build(args.work_dir, out)
    print(out / "README.md")
    return out


if __name__ == "__main__":
    main()
