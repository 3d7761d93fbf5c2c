"""A committed sweep's chosen recipe as a `t2s-fast train --config` file, so that a GPU driver trains exactly the
settings the sweep chose (every TrainConfig field the run recorded), with only the paths and the budget replaced.

    python3 bench/recipe_config.py SWEEP_STATE OUT.json [--model-name M] [--output-dir D] [--train-file F]
        [--prepared DIR]   (a stage-2 recipe with a replay ratio: its mix written from this `prepare` folder)
        [--max-cost-usd X]

SWEEP_STATE is a sweep's sweep_state.json (eval/reports/*/stage*/sweep_state.json): the chosen variant's
train_config. Prints the variant's name, its replay ratio (or "-") and the train file the config names.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def chosen_train_config(state_path: str) -> tuple[str, dict, float | None]:
    """(the chosen variant's name, the train_config it recorded, its replay ratio or None)."""
    try:
        state = json.loads(Path(state_path).read_text())
        chosen = state.get("chosen")
        if not chosen:
            fail(f"{state_path}: no chosen variant (has the sweep finished its held-out evaluation?)")
        variant = state["variants"][chosen["variant"]]
        return chosen["variant"], dict(variant["train_config"]), variant["overrides"].get("replay_ratio")
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        fail(f"{state_path}: not a sweep_state.json with a chosen variant ({type(exc).__name__}: {exc})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("state")
    ap.add_argument("out")
    ap.add_argument("--model-name")
    ap.add_argument("--output-dir")
    ap.add_argument("--train-file")
    ap.add_argument("--prepared", help="stage 2: the prepare folder the replay mix is written from")
    ap.add_argument("--max-cost-usd", type=float, default=40.0)
    a = ap.parse_args(argv)
    name, cfg, ratio = chosen_train_config(a.state)
    cfg.pop("output_dir", None)
    cfg.update(max_cost_usd=a.max_cost_usd, resume=False)
    if a.model_name:
        cfg["model_name"] = a.model_name
    if a.output_dir:
        cfg["output_dir"] = a.output_dir
    if ratio is not None:
        if not a.prepared or not a.output_dir:
            fail(f"{a.state}: {name} trains on a replay mix (ratio {ratio:g}): give --prepared and --output-dir")
        from t2s_fast.data.prepare import MIXED_TRAIN, write_replay_mix

        mix = Path(a.output_dir + "-data") / f"replay-{ratio:g}"
        write_replay_mix(a.prepared, float(ratio), mix)
        cfg["train_file"] = str(mix / MIXED_TRAIN)
    if a.train_file:
        cfg["train_file"] = a.train_file
    Path(a.out).write_text(json.dumps(cfg, indent=1) + "\n")
    print(name, "-" if ratio is None else f"{ratio:g}", cfg["train_file"])


if __name__ == "__main__":
    main()
