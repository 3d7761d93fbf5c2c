"""`eval --checkpoints RUN_DIR`: every checkpoint of a training run, plus its final adapter, in one engine.

A `t2s-fast train` folder holds ``checkpoints/checkpoint-N/`` (HF Trainer checkpoints; each has the PEFT
adapter, ``adapter_config.json`` + ``adapter_model.safetensors``, beside the optimizer state) and
``adapter/`` (the final adapter). Each becomes one adapter of the evaluation, named ``step-N`` and
``final``; a checkpoint whose weights are the final adapter's (the Trainer saves one at the last step) is
evaluated once, as ``final``. The report plots EX against the step beside the eval loss of
``train_log.jsonl`` and names the best by EX (ties: the cheaper, i.e. earlier, one).
"""

from __future__ import annotations

from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.jsonl import read_json, read_jsonl

FINAL = "final"


def _step_of(folder: Path) -> int | None:
    try:
        return int(folder.name.rsplit("-", 1)[-1])
    except ValueError:
        return None


def checkpoint_adapters(run_dir: str | Path, *, prefix: str = "") -> dict[str, str]:
    """{"<prefix>step-N": checkpoint folder, ..., "<prefix>final": adapter folder}, by step."""
    from t2s_fast.adapters import ADAPTER_WEIGHTS, is_adapter_dir, weights_sha

    run = Path(run_dir)
    found = []
    for d in (run / "checkpoints").glob("checkpoint-*"):
        step = _step_of(d)
        if step is not None and is_adapter_dir(d) and (d / ADAPTER_WEIGHTS[0]).is_file():
            found.append((step, d))
    out = {f"{prefix}step-{step}": str(d) for step, d in sorted(found)}
    final = run / "adapter"
    if is_adapter_dir(final):
        final_sha = weights_sha(final)
        out = {n: p for n, p in out.items() if weights_sha(p) != final_sha}
        out[f"{prefix}{FINAL}"] = str(final)
    return out


def apply_run_dir(cfg) -> None:
    """EvalConfig with --checkpoints: add the run's adapters; the base model (and tokenizer) default to the run's."""
    from t2s_fast.evaluate.names import parse_adapter_specs

    run = Path(cfg.checkpoints)
    if not run.is_dir():
        raise T2SError(f"--checkpoints {run}: no such folder (expected a `t2s-fast train` --output-dir)")
    found = checkpoint_adapters(run)
    if not found:
        raise T2SError(f"--checkpoints {run}: no checkpoints/checkpoint-N/ with an adapter and no adapter/ there")
    settings = (read_json(run / "run.json").get("config") or {}) if (run / "run.json").is_file() else {}
    if not cfg.base_model and settings.get("model_name"):
        cfg.base_model = settings["model_name"]
        cfg.tokenizer = cfg.tokenizer or settings.get("tokenizer")
    cfg.adapters = {**found, **parse_adapter_specs(cfg.adapters)}


def run_steps(run_dir: str | Path) -> dict:
    """What train_log.jsonl and run.json say per step: {"cost": {step: usd}, "eval_loss": {step: loss},
    "final_step", "final_cost"}."""
    run = Path(run_dir)
    log = read_jsonl(run / "train_log.jsonl", tolerate_torn_tail=True) if (run / "train_log.jsonl").is_file() else []
    info = read_json(run / "run.json") if (run / "run.json").is_file() else {}
    cost = {r["step"]: r["cost_usd"] for r in log if r.get("loss") is not None and "cost_usd" in r}
    eval_loss = {r["step"]: r["eval_loss"] for r in log if r.get("eval_loss") is not None}
    return {"cost": cost, "eval_loss": eval_loss, "final_step": info.get("global_step"),
            "final_cost": info.get("cost_usd")}


def adapter_step(name: str, steps: dict, prefix: str = "") -> int | None:
    short = name[len(prefix):]
    if short == FINAL:
        return steps["final_step"]
    return int(short.split("-", 1)[1]) if short.startswith("step-") else None


def checkpoint_rows(run_dir: str | Path, report: dict, *, prefix: str = "") -> list[dict]:
    """One row per evaluated adapter of this run: name, step, EX, n, eval loss and dollars at that step."""
    steps = run_steps(run_dir)
    rows = []
    for name, a in report["adapters"].items():
        short = name[len(prefix):]
        if not name.startswith(prefix) or not (short == FINAL or short.startswith("step-")):
            continue
        step = adapter_step(name, steps, prefix)
        rows.append({"name": name, "step": step, "ex": a["ex"], "n": a["n"], "path": a.get("path"),
                     "eval_loss": steps["eval_loss"].get(step),
                     "cost_usd": steps["final_cost"] if short == FINAL else steps["cost"].get(step)})
    return sorted(rows, key=lambda r: (r["step"] is None, r["step"] or 0, r["name"]))


def checkpoint_summary(cfg, report: dict) -> dict:
    """The report's "checkpoints" section: the rows, the eval-loss curve, the best by EX, and the set chosen on."""
    from t2s_fast.evaluate.selection import choose_best

    rows = checkpoint_rows(cfg.checkpoints, report)
    best = choose_best(rows)
    steps = run_steps(cfg.checkpoints)
    return {"run_dir": str(cfg.checkpoints), "rows": rows, "best": best["name"] if best else None,
            "eval_loss_curve": sorted(steps["eval_loss"].items()),
            "chosen_on": {"suite": report["settings"]["suite"], "source": report["settings"]["source"]},
            "rule": "highest execution accuracy on the set chosen on; ties go to the cheaper (earlier) checkpoint"}


def plot_checkpoints(section: dict) -> str:
    """EX (left axis) and eval loss (right axis) against the optimizer step, as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from t2s_fast.evaluate.plots import _png

    fig, ax = plt.subplots(figsize=(7, 4))
    pts = [(r["step"], 100 * r["ex"]) for r in section["rows"] if r["step"] is not None and r["ex"] is not None]
    if pts:
        ax.plot(*zip(*pts), "o-", color="tab:blue", label="held-out EX")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"EX (%) on {Path(section['chosen_on']['source'].split(' (')[0]).name}", color="tab:blue")
    curve = section.get("eval_loss_curve") or []
    if curve:
        ax2 = ax.twinx()
        ax2.plot(*zip(*curve), "s--", color="tab:orange", label="eval loss")
        ax2.set_ylabel("eval loss", color="tab:orange")
    ax.set_title("Checkpoints: execution accuracy and eval loss")
    ax.grid(alpha=0.3)
    return _png(fig)


def _cells(r: dict) -> tuple[str, str, str]:
    ex = "n/a" if r["ex"] is None else f"{100 * r['ex']:.1f}%"
    loss = "" if r["eval_loss"] is None else f"{r['eval_loss']:.4f}"
    cost = "" if r["cost_usd"] is None else f"{r['cost_usd']:.4f}"
    return ex, loss, cost


def checkpoints_section(report: dict) -> list:
    """The checkpoints chosen among: EX and eval loss per checkpoint, the best one, and the chart of both."""
    from t2s_fast.evaluate.document import Bold, Cell, Code, Figure, Heading, Paragraph, Table

    section = report.get("checkpoints")
    if not section:
        return []
    rows = []
    for r in section["rows"]:
        ex, loss, cost = _cells(r)
        mark = " (best)" if r["name"] == section["best"] else ""
        rows.append([f"{r['name']}{mark}", *(Cell(str(v), num=True) for v in (r["step"], ex, r["n"], loss, cost))])
    return [Heading("Checkpoints"),
            Paragraph(["Chosen on ", Code(section["chosen_on"]["source"]), f" ({section['chosen_on']['suite']}): best ",
                       Bold(str(section["best"])), f" ({section['rule']})."]),
            Table(["adapter", "step", "EX", "n", "eval loss", "$ at step"], rows),
            Figure("EX and eval loss by step", "plot-checkpoints", lambda: plot_checkpoints(section),
                   heading=False)]
