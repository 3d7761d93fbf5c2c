"""`t2s-fast prepare`: Spider 1.0 (+ Spider 2.0) files -> the six chat-format JSONL files and prepare_stats.json.

Every example goes through the one prompt builder (``t2s_fast.prompt.build_messages``) with its schema text
from ``t2s_fast.data.schema_text.schema_text`` (which eval and infer call too); its length is the token count
of the whole conversation rendered with the Qwen3 chat template (thinking disabled), i.e. what training sees.
Schemas that would push an example past ``max_seq_length`` are shortened (``t2s_fast.data.shorten``); the
question and the gold SQL never are.

Validation splits hold out whole databases (seeded), so validation measures generalisation to unseen
schemas. Nothing is written until every input has been read and checked; the outputs are written into a
temporary folder inside ``out_dir`` and moved into place only when all of them are complete.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from t2s_fast.data.example import Dropped, SourceExample
from t2s_fast.data.fit import Fitted, SchemaFitter
from t2s_fast.data.shorten import DropExample
from t2s_fast.errors import T2SError
from t2s_fast.hub import load_tokenizer
from t2s_fast.jsonl import write_json, write_jsonl
from t2s_fast.models import is_gguf_source, resolve_model

log = logging.getLogger(__name__)

STAGE1_TRAIN, STAGE1_VALID = "stage1_train.jsonl", "stage1_valid.jsonl"
MIXED_TRAIN, MIXED_VALID = "stage2_mixed_train.jsonl", "stage2_mixed_valid.jsonl"
S2_TRAIN, S2_VALID = "stage2_spider2_only_train.jsonl", "stage2_spider2_only_valid.jsonl"
STATS_FILE = "prepare_stats.json"
OUTPUT_FILES = (STAGE1_TRAIN, STAGE1_VALID, MIXED_TRAIN, MIXED_VALID, S2_TRAIN, S2_VALID, STATS_FILE)


@dataclass
class PrepareConfig:
    spider_dir: Path = field(metadata={"help": "Spider 1.0 folder (train_spider.json, train_others.json, tables.json, "
                                               "database/)."})
    out_dir: Path = field(metadata={"help": "Where the six JSONL files and prepare_stats.json are written."})
    spider2_dir: Path | None = field(default=None,
                                     metadata={"help": "Spider 2.0 folder (spider2-lite/, spider2-snow/); without it "
                                                       "only the stage-1 files are written."})
    valid_fraction: float = field(default=0.1,
                                  metadata={"help": "Share of examples held out for validation, as whole databases."})
    seed: int = field(default=0, metadata={"help": "Seed of the database hold-out and of the replay sample."})
    sample_values: int = field(default=3, metadata={"help": "Distinct sample values shown per column (0: none)."})
    max_seq_length: int = field(default=3072,
                                metadata={"help": "No rendered conversation (prompt + SQL) is longer than this many "
                                                  "tokens; schemas are shortened to fit."})
    tokenizer: str = field(default="Qwen/Qwen3-8B",
                           metadata={"help": "Tokenizer folder, hub id or packaged model alias (qwen2.5-coder-0.5b: "
                                             "its converted folder's) used to measure lengths (the training "
                                             "model's). Offline, pass a local folder (e.g. "
                                             "../shared/assets/qwen3-tokenizer) or an alias."})
    stage2_replay_ratio: float = field(default=1.0,
                                       metadata={"help": "Stage-1 examples replayed in stage2_mixed per Spider 2.0 "
                                                         "example (1.0: as many as there are Spider 2.0 examples; 0: "
                                                         "none)."})
    question_values: int = field(default=0,
                                 metadata={"help": "Question-matched database values shown per column beside the "
                                                   "sample values (0: off; SQLite databases only; see "
                                                   "t2s_fast.schema_values). Use the same value at eval and infer."})

    def __post_init__(self):
        self.spider_dir = Path(self.spider_dir)
        self.out_dir = Path(self.out_dir)
        self.spider2_dir = Path(self.spider2_dir) if self.spider2_dir else None
        if not 0.0 < self.valid_fraction < 1.0:
            raise T2SError(f"--valid-fraction must be between 0 and 1 (exclusive), got {self.valid_fraction}")
        if self.max_seq_length < 64:
            raise T2SError(f"--max-seq-length must be at least 64, got {self.max_seq_length}")
        if self.sample_values < 0:
            raise T2SError(f"--sample-values must be 0 or more, got {self.sample_values}")
        if self.question_values < 0:
            raise T2SError(f"--question-values must be 0 (off) or more, got {self.question_values}")
        if self.stage2_replay_ratio < 0:
            raise T2SError(f"--stage2-replay-ratio must be 0 or more, got {self.stage2_replay_ratio}")


def split_by_database(rows: list, fraction: float, seed: int, *, group=lambda row: row[0].group) -> tuple[list, list,
                                                                                                          list[str]]:
    """Hold out whole databases (the ``group`` of each example) until about ``fraction`` of the examples
    are in validation. Deterministic for a seed; at least one database stays in training."""
    examples = rows
    sizes = Counter(group(ex) for ex in examples)
    groups = sorted(sizes)
    random.Random(seed).shuffle(groups)
    target = fraction * len(examples)
    held: set[str] = set()
    n_valid = 0
    for g in groups:
        if n_valid >= target or len(held) == len(groups) - 1:
            break
        held.add(g)
        n_valid += sizes[g]
    train = [ex for ex in examples if group(ex) not in held]
    valid = [ex for ex in examples if group(ex) in held]
    return train, valid, sorted(held)


def mix_replay(s2_train: list, s2_valid: list, s1_train: list, s1_valid: list, ratio: float,
               seed: int) -> tuple[list, list, dict]:
    """The stage-2 mixed files: each Spider 2.0 split plus ``ratio`` x as many stage-1 examples of the same
    split (seeded sample), shuffled. Returns (train, valid, {"ratio", "train": replayed, "valid": replayed})."""
    rng = random.Random(seed)
    n_rt = min(len(s1_train), round(ratio * len(s2_train)))
    n_rv = min(len(s1_valid), round(ratio * len(s2_valid)))
    mixed_train = s2_train + rng.sample(s1_train, n_rt)
    mixed_valid = s2_valid + rng.sample(s1_valid, n_rv)
    rng.shuffle(mixed_train)
    rng.shuffle(mixed_valid)
    return mixed_train, mixed_valid, {"ratio": ratio, "train": n_rt, "valid": n_rv}


def write_replay_mix(prepared_dir: str | Path, ratio: float, out_dir: str | Path) -> tuple[Path, Path]:
    """stage2_mixed_{train,valid}.jsonl for another --stage2-replay-ratio, from a `prepare` output folder's
    stage-1 and Spider-2.0-only files and its seed: the lines `prepare --stage2-replay-ratio RATIO` writes,
    without reading Spider again."""
    from t2s_fast.jsonl import read_json, read_jsonl

    src = Path(prepared_dir)
    if ratio < 0:
        raise T2SError(f"replay ratio {ratio}: must be 0 or more")
    seed = (read_json(src / STATS_FILE).get("config") or {}).get("seed", 0)
    files = {}
    for name in (S2_TRAIN, S2_VALID, STAGE1_TRAIN, STAGE1_VALID):
        if not (src / name).is_file():
            raise T2SError(f"{src / name}: not found (run `t2s-fast prepare --spider2-dir ...` into {src})")
        files[name] = read_jsonl(src / name)
    train, valid, replay = mix_replay(files[S2_TRAIN], files[S2_VALID], files[STAGE1_TRAIN], files[STAGE1_VALID],
                                      ratio, seed)
    out = Path(out_dir)
    write_jsonl(out / MIXED_TRAIN, train)
    write_jsonl(out / MIXED_VALID, valid)
    write_json(out / "replay.json", {**replay, "prepared_dir": str(src), "seed": seed})
    return out / MIXED_TRAIN, out / MIXED_VALID


def _percentiles(values: list[int]) -> dict:
    if not values:
        return {"n": 0}
    import numpy as np

    arr = np.asarray(values)
    return {
        "n": int(arr.size),
        "mean": round(float(arr.mean()), 1),
        **{f"p{p}": int(np.percentile(arr, p)) for p in (50, 90, 95, 99)},
        "max": int(arr.max()),
    }


def _file_stats(rows: list[tuple[SourceExample, Fitted]]) -> dict:
    return {
        "examples": len(rows),
        "by_source": dict(Counter(ex.source for ex, _ in rows)),
        "by_dialect": dict(Counter(ex.dialect for ex, _ in rows)),
        "databases": len({(ex.source, ex.group) for ex, _ in rows}),
        "tokens": _percentiles([f.n_tokens for _, f in rows]),
    }


def _fit_all(fitter: SchemaFitter, examples: list[SourceExample], dropped: list[Dropped]):
    kept: list[tuple[SourceExample, Fitted]] = []
    shortened = []
    for ex, fitted in zip(examples, fitter.fit_all(examples)):
        if isinstance(fitted, DropExample):
            dropped.append(Dropped(ex.id, ex.source, ex.db_id, str(fitted)))
            continue
        if fitted.level != "full":
            shortened.append(
                {"id": ex.id, "source": ex.source, "db_id": ex.db_id, "level": fitted.level,
                 "reason": f"full schema does not fit in {fitter.max_tokens} tokens; shortened to level "
                           f"'{fitted.level}' ({fitted.schema_tables} of {len(ex.schema.entries)} tables)",
                 "tokens": fitted.n_tokens}
            )
        kept.append((ex, fitted))
    return kept, shortened


def prepare(cfg: PrepareConfig, *, log: Callable[[str], None] = lambda msg: None) -> dict:
    """Read, shorten, split and write everything; returns the stats written to prepare_stats.json."""
    from t2s_fast.data.spider1 import load_spider1
    from t2s_fast.data.spider2 import load_spider2

    t0 = time.perf_counter()
    source = cfg.tokenizer
    if is_gguf_source(source):  # a packaged alias or a .gguf file: its converted folder holds the tokenizer
        source = resolve_model(source).path
    tokenizer = load_tokenizer(source)  # first: a tokenizer that cannot load fails before a minute of reading
    s1_examples, dropped, s1_info = load_spider1(cfg.spider_dir, sample_values=cfg.sample_values)
    log(f"Spider 1.0: {len(s1_examples)} examples on {s1_info['databases_read']} databases "
        f"({time.perf_counter() - t0:.1f}s)")
    s2_examples: list[SourceExample] = []
    s2_info: dict = {}
    if cfg.spider2_dir is not None:
        s2_examples, s2_dropped, s2_info = load_spider2(cfg.spider2_dir, sample_values=cfg.sample_values)
        dropped += s2_dropped
        log(f"Spider 2.0: {len(s2_examples)} questions with gold SQL and a schema ({time.perf_counter() - t0:.1f}s)")

    from t2s_fast.schema_values import make_matcher

    matcher = make_matcher(cfg.question_values)
    fitter = SchemaFitter(tokenizer, cfg.max_seq_length, question_values=matcher)
    s1_kept, s1_short = _fit_all(fitter, s1_examples, dropped)
    log(f"Spider 1.0 rendered and measured: {len(s1_kept)} kept, {len(s1_short)} shortened "
        f"({time.perf_counter() - t0:.1f}s)")
    s2_kept, s2_short = _fit_all(fitter, s2_examples, dropped)
    if cfg.spider2_dir is not None:
        log(f"Spider 2.0 rendered and measured: {len(s2_kept)} kept, {len(s2_short)} shortened "
            f"({time.perf_counter() - t0:.1f}s)")

    s1_train, s1_valid, s1_held = split_by_database(s1_kept, cfg.valid_fraction, cfg.seed) if s1_kept else ([], [], [])
    outputs: dict[str, list[tuple[SourceExample, Fitted]]] = {STAGE1_TRAIN: s1_train, STAGE1_VALID: s1_valid}
    splits = {"stage1_valid_databases": s1_held}
    if cfg.spider2_dir is not None:
        s2_train, s2_valid, s2_held = split_by_database(s2_kept, cfg.valid_fraction, cfg.seed) if s2_kept else ([], [],
                                                                                                                [])
        mixed_train, mixed_valid, replay = mix_replay(s2_train, s2_valid, s1_train, s1_valid,
                                                      cfg.stage2_replay_ratio, cfg.seed)
        outputs.update({MIXED_TRAIN: mixed_train, MIXED_VALID: mixed_valid, S2_TRAIN: s2_train, S2_VALID: s2_valid})
        splits["stage2_valid_databases"] = s2_held
        splits["stage2_replay"] = replay

    by_source = Counter(d.source for d in dropped)
    stats = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "tokenizer_source": str(source),  # what measured the lengths: an alias's converted folder, not the alias
        "versions": _versions(),
        "host": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "token_count": "tokens of the full conversation rendered with the tokenizer's chat template "
                       "(enable_thinking=False), as t2s_fast.prompt.render_conversation produces it",
        "files": {name: _file_stats(rows) for name, rows in outputs.items()},
        "sources": {
            "spider1": {**s1_info, "examples_read": sum(s1_info["examples_per_file"].values()),
                        "kept": len(s1_kept), "dropped": by_source.get("spider1", 0), "shortened": len(s1_short)},
            **({"spider2": {**{k: v for k, v in s2_info.items() if k != "external_knowledge_unavailable"},
                            "kept": len(s2_kept), "dropped": by_source.get("spider2", 0), "shortened": len(s2_short)}}
               if cfg.spider2_dir is not None else {}),
        },
        "splits": splits,
        **({"question_values": {**matcher.settings(), **{k: round(v, 2) if isinstance(v, float) else v
                                                         for k, v in fitter.values_stats.items()}}}
           if matcher is not None else {}),
        "dropped": [d.as_dict() for d in dropped],
        "shortened": s1_short + s2_short,
        "external_knowledge_unavailable": s2_info.get("external_knowledge_unavailable", []),
    }
    if cfg.spider2_dir is None:
        stats["note"] = "no --spider2-dir: the stage-2 files were not written"

    _write_outputs(cfg.out_dir, outputs, stats, t0)
    log(f"wrote {', '.join(outputs)} and {STATS_FILE} to {cfg.out_dir} ({stats['wall_seconds']:.1f}s)")
    return stats


def _versions() -> dict:
    from t2s_fast.runinfo import package_versions

    return package_versions(("t2s-fast", "transformers", "tokenizers", "sqlglot"))


def _write_outputs(out_dir: Path, outputs: dict, stats: dict, t0: float) -> None:
    """Write every file into a temporary folder inside out_dir, then move them into place together."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".prepare-", dir=out_dir))
    try:
        for name, rows in outputs.items():
            write_jsonl(tmp / name, (ex.record(f.messages) for ex, f in rows))
        stats["wall_seconds"] = round(time.perf_counter() - t0, 2)
        write_json(tmp / STATS_FILE, stats)
        for name in [*outputs, STATS_FILE]:
            os.replace(tmp / name, out_dir / name)
        # A file of ours this run did not write (stage 2 without --spider2-dir now) came from an earlier run
        # with another split: its replay sample could overlap the new validation files. Remove it.
        for name in set(OUTPUT_FILES) - {*outputs, STATS_FILE}:
            if (out_dir / name).exists():
                log.warning("%s: removing %s from an earlier prepare run (not written by this one)", out_dir, name)
                (out_dir / name).unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
