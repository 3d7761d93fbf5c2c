"""Throughput, memory and cost benchmarks: `t2s-fast bench train|generate|score|max-context`.

Results go to bench/results/<date>-<device>-<what>.json (see results.py); bench/render_readme.py turns them
into the table and plot of bench/README.md.
"""
