"""Regenerate the generated section of bench/README.md and bench/throughput.png from bench/results/*.json.

    python bench/render_readme.py [--results-dir bench/results] [--readme bench/README.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from t2s_fast.benchmarks.readme import render

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results-dir", type=Path, default=HERE / "results")
    ap.add_argument("--readme", type=Path, default=HERE / "README.md")
    ap.add_argument("--png", type=Path, default=HERE / "throughput.png")
    args = ap.parse_args()
    render(args.results_dir, args.readme, args.png)
    print(args.readme)
