"""The largest --max-seq-length a backend trains at batch size 1 without running out of GPU memory.

Search: double from --start until a probe fails (or --limit is reached), then bisect between the last
length that fit and the first that did not, down to --resolution tokens. Each probe is a fresh
`t2s-fast train` process (a clean CUDA context: an OOM leaves the allocator in no state to trust) running
--probe-steps optimizer steps on one synthetic example of that length. Only an out-of-memory counts as
"does not fit"; any other failure stops the search with the probe's log.

The default --limit is the model's max_position_embeddings (40,960 for Qwen3-8B): past it the model was
never trained, and a probe there costs minutes. A result at the limit is reported as ">= limit".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from t2s_fast.configs import setting
from t2s_fast.errors import T2SError

log = logging.getLogger(__name__)


@dataclass
class BenchMaxContextConfig:
    """The `t2s-fast bench max-context` settings (run_max_context's keywords)."""

    model_name: str = setting(help="Model folder or config.json (random-init of that shape).")
    tokenizer: str | None = setting(None, "Tokenizer folder (default: the model's).")
    backends: str = setting("unsloth,hf", "Comma list of backends to search.", flags=("--backend",))
    start: int = setting(16384, "First length tried; doubled until out of memory.")
    limit: int = setting(0, "Largest length tried (0 = the model's max_position_embeddings).")
    resolution: int = setting(4096, "Bisection stops when the bracket is this narrow.")
    probe_steps: int = setting(2, "Optimizer steps per probe.")
    gradient_checkpointing: str = setting("frugal", "frugal = each backend's least-memory setting (unsloth: "
                                                    "offloaded, hf: plain), or off|plain|unsloth|auto.")
    out_dir: str = setting("runs/bench", "Where the result JSON goes.")
    work_dir: str | None = setting(None, "Probe folders and logs (default: a temp folder).")
    model_cache: str | None = setting(None, "T2S_MODEL_CACHE for a config.json model.")
    timeout_s: float = setting(900.0, "Kill a probe after this many seconds (counted as a failure).")
    tag: str | None = setting(None, "Suffix of the result file name.")


@dataclass
class SearchResult:
    max_fit: int | None  # largest length that trained; None if even --start failed
    first_fail: int | None  # smallest length that ran out of memory; None if the limit fitted
    probes: list[dict] = field(default_factory=list)
    limit: int = 0

    @property
    def at_limit(self) -> bool:
        return self.first_fail is None and self.max_fit == self.limit


def search_max_context(probe: Callable[[int], bool], *, start: int, limit: int, resolution: int = 1024) -> SearchResult:
    """Doubling then bisection. ``probe(length)`` returns True if it fits, False on out-of-memory (and
    raises on any other failure). Lengths are multiples of ``resolution``."""
    if start < 1 or limit < start or resolution < 1:
        raise ValueError("need 1 <= start <= limit and resolution >= 1")
    probes: list[dict] = []

    def run(n: int) -> bool:
        fits = bool(probe(n))
        probes.append({"max_seq_length": n, "fits": fits})
        log.info("max-context probe %d tokens: %s", n, "fits" if fits else "out of memory")
        return fits

    lo, hi = None, None  # lo fits, hi does not
    n = start
    while True:
        if run(n):
            lo = n
            if n >= limit:
                break
            n = min(n * 2, limit)
        else:
            hi = n
            break
    if lo is None:  # even the start length failed: bisect downward from it
        lo_bound = 0
        while hi - lo_bound > resolution:
            mid = _round_down((lo_bound + hi) // 2, resolution) or resolution
            if mid in (lo_bound, hi):
                break
            if run(mid):
                lo_bound = mid
                lo = mid
            else:
                hi = mid
        return SearchResult(max_fit=lo, first_fail=hi, probes=probes, limit=limit)
    while hi is not None and hi - lo > resolution:
        mid = _round_down((lo + hi) // 2, resolution)
        if mid <= lo:
            break
        if run(mid):
            lo = mid
        else:
            hi = mid
    return SearchResult(max_fit=lo, first_fail=hi, probes=probes, limit=limit)


def _round_down(n: int, step: int) -> int:
    return n // step * step


def synthetic_example(tokenizer, length: int) -> dict:
    """One prepared-format example whose tokenized training length is just under ``length`` (a long
    schema of repeated CREATE TABLE statements, like Spider 2.0's biggest ones)."""
    from t2s_fast.prompt import build_messages, tokenize_for_training

    unit = "CREATE TABLE t{i} (id INTEGER PRIMARY KEY, name TEXT, value REAL, created DATE);\n"

    def example(n_units: int) -> dict:
        schema = "".join(unit.format(i=i) for i in range(n_units))
        msgs = build_messages(dialect="sqlite", db_id="synthetic", schema=schema,
                              question="How many rows are in t0?", sql="SELECT count(*) FROM t0")
        return {"id": f"synthetic-{length}", "source": "synthetic", "db_id": "synthetic", "dialect": "sqlite",
                "question": "How many rows are in t0?", "sql": "SELECT count(*) FROM t0", "messages": msgs}

    def n_tokens(ex: dict) -> int:
        return len(tokenize_for_training(tokenizer, ex["messages"])["input_ids"])

    base = n_tokens(example(0))
    per_unit = (n_tokens(example(8)) - base) / 8
    n_units = max(0, int((length - base - 8) / per_unit))
    ex = example(n_units)
    while n_units > 0 and n_tokens(ex) > length:
        n_units -= max(1, n_units // 200)
        ex = example(n_units)
    return ex


@dataclass
class ProbeSettings:
    model_name: str
    tokenizer: str | None
    backend: str
    gradient_checkpointing: str
    steps: int
    work_dir: Path
    timeout_s: float = 900.0
    extra_train_args: list[str] = field(default_factory=list)


def subprocess_probe(settings: ProbeSettings, tokenizer) -> Callable[[int], bool]:
    """A probe that trains --steps steps at batch 1 in a fresh `t2s-fast train` process."""
    from t2s_fast.benchmarks.subproc import run_child, t2s_command
    from t2s_fast.jsonl import write_jsonl

    def probe(length: int) -> bool:
        d = settings.work_dir / f"{settings.backend}-{length}"
        data = d / "synthetic.jsonl"
        write_jsonl(data, [synthetic_example(tokenizer, length)])
        args = ["train", "--model-name", settings.model_name, "--train-file", str(data),
                "--output-dir", str(d / "run"), "--backend", settings.backend, "--max-seq-length", str(length),
                "--per-device-train-batch-size", "1", "--gradient-accumulation-steps", "1",
                "--max-steps", str(settings.steps), "--no-packing", "--save-steps", "100000",
                "--gradient-checkpointing", settings.gradient_checkpointing]
        if settings.tokenizer:
            args += ["--tokenizer", settings.tokenizer]
        res = run_child(t2s_command(*args, *settings.extra_train_args), d / "probe.log", timeout_s=settings.timeout_s)
        if res.ok:
            return True
        if res.oom:
            return False
        raise T2SError(f"max-context probe at {length} tokens failed without running out of memory "
                       f"(exit {res.returncode}); log {res.log_path}:\n{res.tail()}")

    return probe


def model_max_positions(model_name: str) -> int | None:
    p = Path(model_name)
    cfg = p if p.suffix == ".json" else p / "config.json"
    try:
        return int(json.loads(cfg.read_text()).get("max_position_embeddings"))
    except (OSError, ValueError, TypeError):
        return None


FRUGAL_CHECKPOINTING = {"unsloth": "unsloth", "hf": "plain"}  # each backend's least-memory setting


def run_max_context(*, model_name: str, tokenizer: str | None, backends: str, start: int = 16384, limit: int = 0,
                    resolution: int = 4096, probe_steps: int = 2, gradient_checkpointing: str = "frugal",
                    out_dir: str = "runs/bench", work_dir: str | None = None, model_cache: str | None = None,
                    timeout_s: float = 900.0, tag: str | None = None, probe_factory=None) -> dict:
    """Search each backend and write a max-context result. ``probe_factory(settings, tokenizer) -> probe``
    replaces the subprocess probe in tests."""
    import os
    import tempfile

    from transformers import AutoTokenizer

    from t2s_fast.benchmarks import results
    from t2s_fast.models import find_tokenizer_dir

    limit = limit or model_max_positions(model_name) or 32768
    work = Path(work_dir or tempfile.mkdtemp(prefix="t2s-bench-maxctx-"))
    if model_cache:
        os.environ["T2S_MODEL_CACHE"] = model_cache
    os.environ.setdefault("T2S_MODEL_CACHE", str(Path(tempfile.gettempdir()) / "t2s-model-cache"))
    tok = AutoTokenizer.from_pretrained(find_tokenizer_dir(model_name, tokenizer))
    rows = []
    for backend in [b.strip() for b in backends.split(",") if b.strip()]:
        ckpt = FRUGAL_CHECKPOINTING.get(backend,
                                        "auto") if gradient_checkpointing == "frugal" else gradient_checkpointing
        settings = ProbeSettings(model_name=model_name, tokenizer=tokenizer, backend=backend,
                                 gradient_checkpointing=ckpt, steps=probe_steps, work_dir=work, timeout_s=timeout_s)
        probe = (probe_factory or subprocess_probe)(settings, tok)
        found = search_max_context(probe, start=min(start, limit), limit=limit, resolution=resolution)
        rows.append({"backend": backend, "max_seq_length": found.max_fit, "first_oom": found.first_fail,
                     "at_limit": found.at_limit, "limit": limit, "gradient_checkpointing": ckpt,
                     "probe_steps": probe_steps, "probes": found.probes})
    result = results.make_result(
        "max-context", settings={"model_name": model_name, "backends": backends, "start": start, "limit": limit,
                                 "resolution": resolution, "probe_steps": probe_steps,
                                 "gradient_checkpointing": gradient_checkpointing, "batch_size": 1},
        rows=rows, notes=["batch size 1, one synthetic example of the probed length, a fresh process per probe; "
                          "at_limit = the limit itself fitted (the true maximum is higher)"])
    result["path"] = str(results.write_result(result, out_dir, tag))
    return result
