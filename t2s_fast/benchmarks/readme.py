"""Render the generated section of a results folder's README.md, and its plot, from the folder's result files.

    python -m t2s_fast.benchmarks.readme RESULTS_DIR     (writes RESULTS_DIR/README.md and throughput.png)

Only what is in the result files is shown; every table row names the file it came from. "Where we stand"
compares the measured figures with the project's aims (AIM_* below) and says plainly which are met.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from t2s_fast.benchmarks.results import measured_alone

BEGIN = "<!-- BEGIN GENERATED: python -m t2s_fast.benchmarks.readme -->"
END = "<!-- END GENERATED -->"

AIM_SPEEDUP = 2.0  # >= 2x the baseline's trained tokens/s ...
AIM_MEMORY = 0.5  # ... at <= half its peak memory
AIM_AUTO_TOKENS_PER_S = 12_000  # `t2s-fast train`'s automatic choice, H200, Qwen3-8B shape, packed, 3072
AIM_STRETCH_TOKENS_PER_S = 15_000  # ~62% MFU at 4N on a ~785 TFLOP/s peak


def _pct(x):
    return "–" if x is None else f"{100 * x:.1f}%"


def _num(x, spec=",.0f"):
    return "–" if x is None else format(x, spec)


def _stage(row, name):
    p = (row.get("projected") or {}).get(name) or {}
    return "–" if p.get("hours") is None else f"{p['hours']:.2f} h / ${p['usd']:.2f}"


def _settings_line(res: dict) -> str:
    s = res["settings"]
    mbs = s.get("per_device_train_batch_size") or "auto"
    gas = s.get("gradient_accumulation_steps") or "auto"
    return (f"max_seq_length {s.get('max_seq_length')}, {'packed' if s.get('packing') else 'padded'}, "
            f"micro-batch {mbs}, accumulation {gas}, {s.get('warmup_steps')} warm-up + {s.get('steps')} measured "
            f"optimizer steps, {s.get('sampled_examples')} sampled examples")


def train_section(items) -> list[str]:
    out = []
    for path, res in items:
        peak = res.get("peak") or {}
        shared = ([f"**Shared GPU: speed, memory and dollars here are not claims.** {res.get('note_shared_gpu', '')}",
                   ""]
                  if not measured_alone(res) else [])
        out += [f"#### {res['device'].get('name')} · {res['date'][:10]} · `{path.name}`", "", *shared,
                f"{_settings_line(res)}. Measured bf16 matmul peak: "
                f"**{peak.get('peak_tflops', '–')} TFLOP/s** ({peak.get('method', 'not measured')}). "
                f"FLOPs per trained token: 4N = {res['flops']['flops_per_token_4n']:.3e}; attention adds "
                f"{res['flops']['attention_flops_per_token']:.3e} (mean attended context "
                f"{res['flops']['mean_attended_context']}).", "",
                "| variant | backend | checkpointing | micro-batch × accum | attention | trained tok/s | opt. steps/s "
                "| MFU 4N | MFU 4N+attn | peak alloc GiB | peak reserved GiB | stage 1 | stage 2 | status |",
                "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---|"]
        for r in res["rows"]:
            setup = r.get("setup") or {}
            out.append(
                f"| {r['label']} | {r['backend']} | {setup.get('gradient_checkpointing', '–')} | "
                f"{setup.get('micro_batch_size', '–')} × {setup.get('gradient_accumulation_steps', '–')} | "
                f"{setup.get('attention', '–')} | {_num(r['trained_tokens_per_s'])} | "
                f"{_num(r['optimizer_steps_per_s'], '.3f')} | {_pct(r['mfu_4n'])} | "
                f"{_pct(r.get('mfu_4n_plus_attention'))} | "
                f"{_num(r['peak_memory_allocated_gib'], '.1f')} | {_num(r['peak_memory_reserved_gib'], '.1f')} | "
                f"{_stage(r, 'stage1')} | {_stage(r, 'stage2')} | {r['status']} |")
        for q in res.get("ratios") or []:
            out.append(f"| **{q['label']} / {q['vs']}** | ratio | | | | **{_num(q['tokens_per_s_ratio'], '.2f')}×** | "
                       "| | | "
                       f"{_num(q['peak_allocated_ratio'], '.2f')}× | {_num(q['peak_reserved_ratio'], '.2f')}× | | | |")
        out += ["", f"Command: `{res['command']}`", ""]
    return out


def max_context_section(items) -> list[str]:
    out = ["| backend | checkpointing | largest --max-seq-length at batch 1 | first out of memory | probes | file |",
           "|---|---|---:|---:|---:|---|"]
    for path, res in items:
        for r in res["rows"]:
            fit = "–" if r["max_seq_length"] is None else f"{'≥ ' if r.get('at_limit') else ''}{r['max_seq_length']:,}"
            out.append(f"| {r['backend']} | {r.get('gradient_checkpointing', '–')} | {fit} | "
                       f"{_num(r.get('first_oom'), ',')} | {len(r.get('probes', []))} | `{path.name}` |")
    return out + [""]


def generate_section(items) -> list[str]:
    out = ["| backend | questions × adapters | generated tok/s | wall s | load s | file |",
           "|---|---|---:|---:|---:|---|"]
    for path, res in items:
        for r in res["rows"]:
            out.append(f"| {r['backend']} | {r.get('questions', '–')} × {r.get('adapters', '–')} | "
                       f"{_num(r['generated_tokens_per_s'])} | {_num(r['wall_s'], '.1f')} | "
                       f"{_num(r.get('model_load_s'), '.1f')} | `{path.name}` |")
    return out + [""]


def score_section(items) -> list[str]:
    out = ["| device | workers | pairs | pairs/s | file |", "|---|---:|---:|---:|---|"]
    for path, res in items:
        for r in res["rows"]:
            out.append(f"| {res['device'].get('name')} | {r['workers']} | {r.get('pairs', '–')} | "
                       f"{_num(r['pairs_per_s'], ',.1f')} | `{path.name}` |")
    return out + [""]


def corrected_profile_row(r: dict) -> dict:
    """Profiles recorded before the fix in profile_step.is_annotation counted the profiler's own step range
    (``ProfilerStep*``, listed in top_kernels) as a GPU kernel: "other" held the whole step and GPU busy read
    ~100%. Take it back out; busy becomes the sum of the kernel buckets (kernels of one stream do not
    overlap, so the sum is their union; an offload stream running beside compute would make it an upper
    bound)."""
    from t2s_fast.benchmarks.profile_step import is_annotation

    span = sum(k["total_s"] for k in r.get("top_kernels") or [] if is_annotation(k["name"]))
    if not span:
        return dict(r, corrected=False)
    b = dict(r["buckets_s"], other=max(0.0, r["buckets_s"]["other"] - span))
    step = r["step_time_s"]
    busy = min(step, sum(b.values()))
    return dict(r, buckets_s=b, gpu_busy_pct=round(100 * busy / step, 1), idle_s=round(step - busy, 4), corrected=True)


def profile_section(items) -> list[str]:
    out = ["| setting | step s | GPU busy | matmul s | attention s | quantization s | elementwise s | copies s | "
           "other s | idle (host) s | attention host calls | file |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    any_corrected = False
    for path, res in items:
        for r in map(corrected_profile_row, res["rows"]):
            b = r["buckets_s"]
            mark = "*" if r["corrected"] else ""
            any_corrected |= r["corrected"]
            out.append(f"| {r['label']} | {r['step_time_s']:.3f} | {r.get('gpu_busy_pct', '–')}%{mark} | "
                       f"{b['matmul']:.3f} | "
                       f"{b['attention']:.3f} | {b['quantization']:.3f} | {b['elementwise']:.3f} | {b['copies']:.3f} | "
                       f"{b['other']:.3f}{mark} | {r['idle_s']:.3f}{mark} | {r.get('attention_host_calls', '–')} | "
                       f"`{path.name}` |")
    if any_corrected:
        out += ["",
                "\\* recorded before the profiler's own step range was excluded from the kernels; corrected here from "
                "the file's `top_kernels` (busy = sum of the kernel buckets, see `corrected_profile_row`)."]
    return out + [""]


def projection_section(items) -> list[str]:
    """The start-of-run projection against the recorded runs (records/bench/projection_report.py writes it)."""
    out = []
    for path, res in items[-1:]:  # the newest comparison
        out += [f"`{path.name}`: the tok/s and cost `t2s-fast train` projects before its first step, against what "
                "the recorded runs measured. In-sample rows are those the efficiency bands were taken from.", "",
                "| kind | run | source | measured tok/s | projected tok/s | measured / projected | in sample "
                "| cost | projected cost |", "|---|---|---|---:|---:|---:|---|---:|---:|"]
        for r in res["rows"]:
            cost = lambda k: "–" if r.get(k) is None else f"${r[k]:.3f}"  # noqa: E731
            sample = {True: "yes", False: "no"}.get(r.get("in_sample"), "–")
            out.append(f"| {r['kind']} | {r['label']} | {r['source']} | {_num(r['measured_tokens_per_s'])} | "
                       f"{_num(r['projected_tokens_per_s'])} | {_num(r['measured_over_projected'], '.2f')}× | "
                       f"{sample} | {cost('actual_cost_usd')} | {cost('projected_cost_usd')} |")
        out += ["", f"Command: `{res['command']}`", ""]
    return out


def where_we_stand(train_items) -> list[str]:
    """Plain statements against the aims, from GPU train results only (none that ran on a shared GPU)."""
    gpu = [(p, r) for p, r in train_items if r["device"].get("kind") == "cuda" and measured_alone(r)]
    if not gpu:
        return ["**No GPU benchmark result yet.** Nothing below is claimed until `bench/throughput.sh` has been run "
                "on an H200 (or H100) and its result files added to this folder."]
    out = []
    pairs = [(q, path, res) for path, res in gpu for q in (res.get("ratios") or []) if q["tokens_per_s_ratio"]]

    def meets(q):
        return (q["tokens_per_s_ratio"] >= AIM_SPEEDUP and q["peak_allocated_ratio"] is not None
                and q["peak_allocated_ratio"] <= AIM_MEMORY)

    if pairs:
        met_pairs = [x for x in pairs if meets(x[0])]
        q, path, res = max(met_pairs or pairs, key=lambda x: x[0]["tokens_per_s_ratio"])
        met = bool(met_pairs)
        out.append(f"- **Aim 1: ≥ {AIM_SPEEDUP:g}× the baseline's trained tokens/s at ≤ {AIM_MEMORY:.0%} of its peak "
                   f"memory — {'MET' if met else 'NOT MET'}.** {'Meeting it' if met else 'Fastest'}: `{q['label']}` at "
                   f"{q['tokens_per_s_ratio']:.2f}× the tokens/s of `{q['vs']}` with "
                   f"{_num(q['peak_allocated_ratio'], '.2f')}× its peak allocated memory ({path.name}, "
                   f"{'packed' if res['settings'].get('packing') else 'padded'}).")
        same = [x[0]["tokens_per_s_ratio"] for x in pairs
                if (x[0]["label"], x[0]["vs"]) == (q["label"], q["vs"]) and bool(x[2]["settings"].get("packing"))
                == bool(res["settings"].get("packing"))]
        if len(same) > 1:
            out.append(f"  Across the {len(same)} runs with this pair "
                       f"({'packed' if res['settings'].get('packing') else 'padded'}), "
                       f"its speed ratio measured {min(same):.2f}×–{max(same):.2f}×"
                       + (": the speed part is met in some runs only, so treat it as borderline."
                          if min(same) < AIM_SPEEDUP <= max(same) else "."))
        if not met:
            fast = [x[0]["label"] for x in pairs if x[0]["tokens_per_s_ratio"] >= AIM_SPEEDUP]
            small = [x[0]["label"] for x in pairs
                     if x[0]["peak_allocated_ratio"] is not None and x[0]["peak_allocated_ratio"] <= AIM_MEMORY]
            out.append(f"  Rows reaching the speed part: {', '.join(fast) or 'none'}; the memory part: "
                       f"{', '.join(small) or 'none'}. Fast settings use the memory an H200 has; small ones pay "
                       "for it in recomputation or offload.")
    else:
        out.append("- Aim 1 (≥ 2× baseline tokens/s at ≤ half its memory): no result has both an Unsloth row and a "
                   "baseline row yet.")
    # Aim 2 counts only `t2s-fast train` with its automatic setup (no batch/checkpointing/attention flags)
    packed_rows = [(r, res, p) for p, res in gpu for r in res["rows"]
                   if res["settings"].get("packing") and r["status"] == "ok" and r.get("automatic_setup")
                   and res["settings"].get("max_seq_length") == 3072]
    if packed_rows:
        r, res, p = max(packed_rows, key=lambda x: x[0]["trained_tokens_per_s"] or 0)
        tps = r["trained_tokens_per_s"] or 0
        out.append(f"- **Aim 2: ≥ {AIM_AUTO_TOKENS_PER_S:,} trained tok/s (automatic choice, packed, 3072) — "
                   f"{'MET' if tps >= AIM_AUTO_TOKENS_PER_S else 'NOT MET'}.** `{r['label']}` ({r['backend']}, chose "
                   f"{(r.get('setup') or {}).get('gradient_checkpointing')} checkpointing, micro-batch "
                   f"{(r.get('setup') or {}).get('micro_batch_size')}, {(r.get('setup') or {}).get('attention')}): "
                   f"{tps:,.0f} tok/s, MFU {_pct(r['mfu_4n'])} at 4N on {res['device'].get('name')} ({p.name}).")
        verdict = "MET" if tps >= AIM_STRETCH_TOKENS_PER_S else f"NOT MET ({tps / AIM_STRETCH_TOKENS_PER_S:.0%} of it)"
        out.append(f"- **Aim 3 (stretch): {AIM_STRETCH_TOKENS_PER_S:,} tok/s ≈ 62% MFU at 4N — {verdict}.**")
    else:
        out.append("- Aims 2 and 3 (12,000 and 15,000 tok/s packed): no packed GPU result of the automatic setup yet.")
    return out


def plot(train_items, png: Path) -> Path | None:
    alone = [(p, r) for p, r in train_items if measured_alone(r)]
    gpu = [(p, r) for p, r in alone if r["device"].get("kind") == "cuda"] or alone
    bars = [(f"{res['settings'].get('tag') or p.stem[-20:]}\n{r['label']}", r["trained_tokens_per_s"] or 0,
             r["peak_memory_allocated_gib"] or 0) for p, res in gpu for r in res["rows"]]
    if not bars:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 1.3 * len(bars)), 4.5))
    names = [b[0] for b in bars]
    ax1.bar(names, [b[1] for b in bars], color="tab:blue")
    ax1.axhline(AIM_AUTO_TOKENS_PER_S, color="tab:green", ls="--", label=f"{AIM_AUTO_TOKENS_PER_S:,} tok/s aim")
    ax1.axhline(AIM_STRETCH_TOKENS_PER_S, color="tab:red", ls=":", label=f"{AIM_STRETCH_TOKENS_PER_S:,} tok/s stretch")
    ax1.set_ylabel("trained tokens/s")
    ax1.legend(fontsize=8)
    ax2.bar(names, [b[2] for b in bars], color="tab:orange")
    ax2.set_ylabel("peak GPU memory allocated (GiB)")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.suptitle("t2s-fast bench train (from the result files beside it)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def render(results_dir: Path, readme: Path, png: Path) -> str:
    from t2s_fast.benchmarks.results import load_results

    allres = load_results(results_dir)
    by = lambda what: [(p, r) for p, r in allres if r["what"] == what]  # noqa: E731
    train = by("train")
    png_path = plot(train, png)
    lines = [BEGIN, "", "_Generated by `python -m t2s_fast.benchmarks.readme` from the result files beside it; "
             "do not edit by hand._",
             "", "### Where we stand", ""] + where_we_stand(train) + [""]
    if png_path:
        lines += [f"![trained tokens/s and peak memory]({png_path.relative_to(readme.parent).as_posix()})", ""]
    lines += ["### Training throughput", ""] + (train_section(train) or ["No results yet.", ""])
    lines += ["### Maximum context (batch size 1)",
              ""] + (max_context_section(by("max-context")) if by("max-context") else ["No results yet.", ""])
    lines += ["### Generation", ""] + (generate_section(by("generate")) if by("generate") else ["No results yet.", ""])
    lines += ["### Scoring", ""] + (score_section(by("score")) if by("score") else ["No results yet.", ""])
    lines += ["### One-step profiles", ""] + (profile_section(by("profile")) if by("profile") else ["No results yet.",
                                                                                                    ""])
    if by("projection"):
        lines += ["### Cost projection vs measured", ""] + projection_section(by("projection"))
    others = sorted(p.name for p in results_dir.glob("*.json") if p not in {q for q, _ in allres})
    if others:
        lines += ["### Other records in this folder", "",
                  "Written by other scripts (their own format): " + ", ".join(f"`{n}`" for n in others), ""]
    lines.append(END)
    block = "\n".join(lines)
    text = readme.read_text() if readme.is_file() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    readme.write_text(text)
    return text


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results_dir", type=Path, help="the folder of result JSON files (the project's: records/bench)")
    ap.add_argument("--readme", type=Path, help="default: RESULTS_DIR/README.md")
    ap.add_argument("--png", type=Path, help="default: RESULTS_DIR/throughput.png")
    args = ap.parse_args(argv)
    readme = args.readme or args.results_dir / "README.md"
    render(args.results_dir, readme, args.png or args.results_dir / "throughput.png")
    print(readme)
    return readme


if __name__ == "__main__":
    main()
