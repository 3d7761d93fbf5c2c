"""Cost of --question-values on this CPU: prepare wall time and prompt tokens, with and without the lever.

    PYTHONPATH=$PWD python eval/reports/2026-11-29-cpu-question-values-cost/measure.py \
        --spider-dir ../shared/data/spider1 --tokenizer ../shared/assets/qwen3-tokenizer --values 0 1 3

Runs `t2s-fast prepare` (Spider 1.0 only) --repeats times per setting, each in a fresh process (wall and CPU
seconds, and the 1-minute load average at its start: the CPU may be shared with other work), then compares the rendered
conversations example by example (same ids), and builds the eval prompts of Spider 1.0 dev the same way.
Writes cost.json beside this file. Accuracy is not measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def stats(values: list[int]) -> dict:
    import numpy as np

    a = np.asarray(values)
    return {"n": int(a.size), "mean": round(float(a.mean()), 2), "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)), "max": int(a.max()), "min": int(a.min())}


def run_prepare(spider_dir: str, tokenizer: str, n: int, out: Path, repeats: int) -> dict:
    cmd = [sys.executable, "-m", "t2s_fast", "prepare", "--spider-dir", spider_dir, "--out-dir", str(out),
           "--tokenizer", tokenizer, "--question-values", str(n)]
    walls, cpus, loads = [], [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        loads.append(round(os.getloadavg()[0], 2))
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        walls.append(round(time.perf_counter() - t0, 2))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2))
    st = json.loads((out / "prepare_stats.json").read_text())
    return {"command": " ".join(cmd[1:]), "process_wall_seconds": walls, "process_cpu_seconds": cpus,
            "load_average_1min_at_start": loads,
            "prepare_wall_seconds_last_run": st["wall_seconds"], "question_values": st.get("question_values"),
            "shortened": len(st["shortened"]), "dropped": len(st["dropped"]),
            "files": {k: v["tokens"] for k, v in st["files"].items()}}


def conversation_tokens(out: Path, tok) -> dict[str, int]:
    from t2s_fast.prompt import render_conversation

    rows = [json.loads(x) for f in ("stage1_train.jsonl", "stage1_valid.jsonl") for x in (out / f).read_text().splitlines()]
    texts = [render_conversation(tok, r["messages"]) for r in rows]
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    return {r["id"]: len(i) for r, i in zip(rows, ids)}


def dev_prompts(spider_dir: str, tok, n: int) -> dict:
    from t2s_fast.evaluate.harness import build_prompts
    from t2s_fast.evaluate.questions import load_spider1

    qs = load_spider1(spider_dir, "dev", dbs=[], limit=None).questions
    t0 = time.perf_counter()
    prompts = build_prompts(qs, tok, question_values=n)
    seconds = time.perf_counter() - t0
    ids = tok(list(prompts.values()), add_special_tokens=False)["input_ids"]
    return {"questions": len(qs), "build_seconds": round(seconds, 2),
            "with_values": sum("values matching the question" in p for p in prompts.values()),
            "tokens": dict(zip(prompts, map(len, ids)))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spider-dir", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--values", type=int, nargs="+", default=[0, 3])
    ap.add_argument("--repeats", type=int, default=2, help="prepare runs per setting (the machine may be shared)")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from t2s_fast.benchmarks.results import describe_device
    from t2s_fast.runinfo import git_revision, package_versions

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": " ".join(["python", *sys.argv]),
              "machine": {**describe_device(), "platform": platform.platform()},
              "versions": package_versions(("t2s-fast", "rapidfuzz", "transformers", "tokenizers", "sqlglot")),
              "git": git_revision(), "python": platform.python_version(),
              "settings": {}}
    base_train = base_dev = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.values:
            out = Path(tmp) / f"qv{n}"
            entry = run_prepare(args.spider_dir, args.tokenizer, n, out, args.repeats)
            train = conversation_tokens(out, tok)
            dev = dev_prompts(args.spider_dir, tok, n)
            if n == 0:
                base_train, base_dev = train, dev["tokens"]
            if base_train is not None and n:
                common = [k for k in train if k in base_train]
                entry["train_conversation_tokens_added"] = stats([train[k] - base_train[k] for k in common])
                entry["train_examples_with_more_tokens"] = sum(train[k] > base_train[k] for k in common)
                entry["dev_prompt_tokens_added"] = stats([dev["tokens"][k] - base_dev[k] for k in dev["tokens"]])
            entry["train_conversation_tokens"] = stats(list(train.values()))
            entry["dev_prompt_tokens"] = stats(list(dev["tokens"].values()))
            entry["dev_prompts"] = {k: v for k, v in dev.items() if k != "tokens"}
            result["settings"][f"question_values={n}"] = entry
            print(json.dumps({n: {k: v for k, v in entry.items() if k != "files"}}, indent=1), flush=True)
    (HERE / "cost.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
