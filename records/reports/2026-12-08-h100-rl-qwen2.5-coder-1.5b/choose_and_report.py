"""Every candidate on held-out data, the choice (highest EX; ties: the SFT start, then the earlier checkpoint)
into chosen.txt, then the SFT start and the choice on Spider dev greedy, with the default repair and by maj@8,
each in its own folder with its per-question file, all through one engine (written by bench/rl_real_model.sh).
  python3 choose_and_report.py WORK MODEL VALID SPIDER_DIR LIMIT GPU_SHARE CACHE_DIR NAME=PATH ...
  python3 choose_and_report.py --choose HELDOUT_REPORT_JSON     (the choice alone: "name path")
"""
import json
import sys
from pathlib import Path


def choice(ex: dict) -> str:
    """The highest EX; ties: the SFT start, then the earlier checkpoint, then a run's final adapter."""
    def step(name):
        tail = name.rsplit("-", 1)[-1]
        return -1 if name == "sft" else (10**9 if tail == "final" else int(tail))
    return max(ex, key=lambda n: (ex[n], -step(n)))


if sys.argv[1] == "--choose":
    adapters = json.load(open(sys.argv[2]))["adapters"]
    best = choice({name: a["ex"] for name, a in adapters.items()})
    print(best, adapters[best]["path"])
    sys.exit(0)

from t2s_fast.evaluate.config import EvalConfig  # noqa: E402
from t2s_fast.evaluate.harness import evaluate  # noqa: E402
from t2s_fast.evaluate.lazy_engine import LazyEngine  # noqa: E402

work, model, valid, spider, limit, share, cache = sys.argv[1:8]
adapters = dict(a.split("=", 1) for a in sys.argv[8:])
engine_settings = dict(base_model=model, adapters=adapters, timeout=10, limit=int(limit) if limit else None,
                       **({"gpu_memory_utilization": float(share)} if share else {}),
                       **({"vllm_cache_dir": cache} if cache else {}))
held = EvalConfig(**engine_settings, suite="heldout", questions=valid, spider_dir=spider, repair="none",
                  workers=12, out_dir=f"{work}/heldout")
engine = LazyEngine(held)
try:
    ex = {name: a["ex"] for name, a in evaluate(held, generator=engine)["adapters"].items()}
    best = choice(ex)
    Path(work, "chosen.txt").write_text(f"{best} {adapters[best]}\n")
    print(f"chosen on held-out: {best} (EX {ex[best]:.4f})", flush=True)
    finalists = {n: adapters[n] for n in ("sft", best)}
    for name, decoding in (("greedy", {"repair": "none"}), ("repair", {"repair": "auto"}),
                           ("maj8", {"repair": "none", "n_samples": 8, "temperature": 0.8})):
        report = evaluate(EvalConfig(**{**engine_settings, "adapters": finalists}, suite="spider1",
                                     spider_dir=spider, workers=6, out_dir=f"{work}/dev-{name}", **decoding),
                          generator=engine)
        print(f"dev {name}: " + ", ".join(f"{n} {a['ex']:.4f}" for n, a in report["adapters"].items()), flush=True)
finally:
    engine.close()
print(f"engine opened once, in {engine.open_seconds:.0f} s", flush=True)
