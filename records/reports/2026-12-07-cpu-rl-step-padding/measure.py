"""How much of a GRPO step's prompt positions are padding, in TRL's random order and with length-grouped steps
(`t2s-fast rl --length-grouped-steps N`), on a prepared training file, on the CPU:

    python records/reports/2026-12-07-cpu-rl-step-padding/measure.py PREPARED/stage1_train.jsonl \
        --tokenizer TOKENIZER [--prompts 1200] [--out FILE.json]

TRL pads every prompt of a step (prompts_per_step prompts, each repeated num_generations times) to the step's
longest, and every training micro-batch keeps that width, so the training step computes on the padding too. The
prompts are a seeded sample of the file's SQLite questions (as `t2s-fast rl --max-prompts` draws them), rendered by
the one prompt builder. Completions (about 40 tokens here against prompts of several hundred) are left out.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

from t2s_fast.jsonl import read_jsonl
from t2s_fast.rl.trainer import length_grouped_order, prompt_padding_share


def databases_per_step(db_ids: list[str], order: list[int], per_step: int) -> float:
    """The mean number of distinct databases among a whole step's prompts."""
    steps = [order[i:i + per_step] for i in range(0, len(order) - len(order) % per_step, per_step)]
    return round(statistics.mean(len({db_ids[i] for i in s}) for s in steps), 1)


def main() -> None:
    from transformers import AutoTokenizer

    from t2s_fast.prompt import render_prompt

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("train_file", type=Path)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--prompts", type=int, default=1200)
    p.add_argument("--prompts-per-step", type=int, default=16)
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    rows = [r for r in read_jsonl(args.train_file) if r.get("dialect", "sqlite") == "sqlite"]
    rows = random.Random(args.seed).sample(rows, min(args.prompts, len(rows)))
    prompts = [render_prompt(tok, [m for m in r["messages"] if m["role"] != "assistant"]) for r in rows]
    lengths = [len(ids) for ids in tok(prompts, add_special_tokens=False)["input_ids"]]
    shuffled = list(range(len(lengths)))
    random.Random(args.seed).shuffle(shuffled)
    result = {"train_file": str(args.train_file), "tokenizer": args.tokenizer, "prompts": len(lengths),
              "prompts_per_step": args.prompts_per_step,
              "prompt_tokens": {"mean": round(statistics.mean(lengths), 1), "median": statistics.median(lengths),
                                "max": max(lengths)},
              "padding_share": {}, "databases_per_step": {}}
    dbs = [r["db_id"] for r in rows]
    orders = {"random order (TRL)": shuffled}
    for group in (4, 8, 16, 32):
        orders[f"length-grouped, {group} steps a group"] = length_grouped_order(
            lengths, args.prompts_per_step, group, args.seed)
    for name, order in orders.items():
        result["padding_share"][name] = prompt_padding_share(lengths, order, args.prompts_per_step)
        result["databases_per_step"][name] = databases_per_step(dbs, order, args.prompts_per_step)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
