"""Throughput, memory and cost benchmarks: `t2s-fast bench train|generate|score|max-context`.

Results go to --out-dir (default runs/bench) as <date>-<device>-<what>.json (see results.py);
`python -m t2s_fast.benchmarks.readme DIR` turns a folder of them into the table and plot of DIR/README.md.
"""
