"""How much of a GRPO step's micro-batches is padding when TRL cuts them (in a random order, each padded to the
step's longest prompt and completion) and when `t2s-fast rl` cuts them from the rollouts sorted by length, each
trimmed to its own longest (`--sorted-micro-batches`, `t2s_fast.rl.engines.length_sorted` and `trimmed`), on a
prepared training file, on the CPU:

    python records/reports/2026-12-08-cpu-rl-micro-batch-padding/measure.py PREPARED/stage1_train.jsonl \
        --tokenizer TOKENIZER [--prompts 1200] [--out FILE.json]

The prompts are a seeded sample of the file's SQLite questions (as `t2s-fast rl --max-prompts` draws them),
rendered by the one prompt builder, taken 16 to a step in a seeded random order (TRL's sampler). Each prompt gets
8 completions whose length stands in for the model's: the gold SQL's tokens plus the end-of-turn token, the same
for all 8 (real completions vary within a group, which adds completion padding to both cuts).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

from t2s_fast.jsonl import read_jsonl


def step_rollouts(prompt_lens: list[int], completion_lens: list[int], generations: int) -> dict:
    """The masks of one step's rollouts as TRL builds them: prompts left-padded, completions right-padded to the
    step's longest (ids are not needed to count positions)."""
    import torch

    rows_p = [p for p in prompt_lens for _ in range(generations)]
    rows_c = [c for c in completion_lens for _ in range(generations)]
    p_w, c_w = max(rows_p), max(rows_c)
    prompt_mask = torch.zeros(len(rows_p), p_w, dtype=torch.long)
    completion_mask = torch.zeros(len(rows_c), c_w, dtype=torch.long)
    for i, (p, c) in enumerate(zip(rows_p, rows_c)):
        prompt_mask[i, p_w - p:] = 1
        completion_mask[i, :c] = 1
    return {"prompt_ids": prompt_mask, "prompt_mask": prompt_mask, "completion_ids": completion_mask,
            "completion_mask": completion_mask}


def positions(chunks: list[dict]) -> tuple[int, int]:
    """(token positions the micro-batches hold, of them real tokens)."""
    held = sum(c["prompt_mask"].numel() + c["completion_mask"].numel() for c in chunks)
    real = sum(int(c["prompt_mask"].sum() + c["completion_mask"].sum()) for c in chunks)
    return held, real


def main() -> None:
    import torch
    from transformers import AutoTokenizer
    from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

    from t2s_fast.prompt import render_prompt
    from t2s_fast.rl.engines import length_sorted, trimmed

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("train_file", type=Path)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--prompts", type=int, default=1200)
    p.add_argument("--prompts-per-step", type=int, default=16)
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--micro-batch", type=int, default=16, help="completions per micro-batch")
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    rows = [r for r in read_jsonl(args.train_file) if r.get("dialect", "sqlite") == "sqlite"]
    rows = random.Random(args.seed).sample(rows, min(args.prompts, len(rows)))
    prompts = [render_prompt(tok, [m for m in r["messages"] if m["role"] != "assistant"]) for r in rows]
    prompt_lens = [len(ids) for ids in tok(prompts, add_special_tokens=False)["input_ids"]]
    completion_lens = [len(ids) + 1 for ids in tok([r["sql"] for r in rows], add_special_tokens=False)["input_ids"]]
    order = list(range(len(rows)))
    random.Random(args.seed).shuffle(order)
    k = args.prompts_per_step * args.generations // args.micro_batch
    totals = {"TRL's cut (random, padded to the step's longest)": [0, 0],
              "sorted and trimmed micro-batches": [0, 0]}
    per_step_saving = []
    for s in range(0, len(order) - len(order) % args.prompts_per_step, args.prompts_per_step):
        step = order[s:s + args.prompts_per_step]
        batch = step_rollouts([prompt_lens[i] for i in step], [completion_lens[i] for i in step], args.generations)
        trl = positions(split_tensor_dict(shuffle_sequence_dict(batch), k))
        ours = positions([trimmed(c) for c in split_tensor_dict(length_sorted(batch), k)])
        assert trl[1] == ours[1]  # the same real tokens, only the padding differs
        for name, (held, real) in zip(totals, (trl, ours)):
            totals[name][0] += held
            totals[name][1] += real
        per_step_saving.append(1 - ours[0] / trl[0])
    result = {"train_file": str(args.train_file), "tokenizer": args.tokenizer, "prompts": len(rows),
              "prompts_per_step": args.prompts_per_step, "generations": args.generations,
              "micro_batch_completions": args.micro_batch, "steps": len(per_step_saving),
              "prompt_tokens_median": statistics.median(prompt_lens),
              "completion_tokens_median (gold SQL + 1)": statistics.median(completion_lens),
              "padding_share": {name: round(1 - real / held, 4) for name, (held, real) in totals.items()},
              "positions_held": {name: held for name, (held, _) in totals.items()},
              "positions_saved_per_step_median": round(statistics.median(per_step_saving), 4)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
