"""`t2s-fast prepare-repair`: training examples for the error-feedback repair turn, from REAL failures.

Input: an evaluation run of a model on a training-split file (``t2s-fast eval --suite jsonl --questions
stage1_train.jsonl ...``; its scored.jsonl) and that same prepared file. Every prediction that did not execute
(parse, runtime or timeout error) becomes one example whose prompt is exactly what `eval --repair
error-feedback` shows (``t2s_fast.prompt.build_repair_messages``: the question's prepared messages, the failed
SQL and SQLite's message) and whose answer is the gold SQL. Train on them mixed with the ordinary examples
(e.g. ``cat stage1_train.jsonl repair_train.jsonl``).

Spider dev must never be trained on: ids of the Spider dev suite (``dev-0001``), a questions file named like
dev, and any question on a database of Spider 1.0 dev.json (read from ``--spider-dir`` when it is there) are
refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from t2s_fast.configs import setting
from t2s_fast.errors import T2SError
from t2s_fast.jsonl import iter_numbered_jsonl, read_json


def dev_databases(spider_dir: str | Path | None) -> set[str]:
    """db_ids of Spider 1.0 dev (empty when no dev.json is at hand)."""
    if spider_dir is None:
        return set()
    path = Path(spider_dir) / "dev.json"
    return {item["db_id"] for item in read_json(path)} if path.is_file() else set()


def _load_questions(path: Path, dev_dbs: set[str]) -> dict[str, dict]:
    from t2s_fast.evaluate.questions import jsonl_question_id

    if "dev" in path.stem.lower().replace("-", "_").split("_"):
        raise T2SError(f"--questions {path}: looks like a dev file; repair examples come from the training split only")
    out = {}
    for lineno, rec in iter_numbered_jsonl(path, required=("db_id", "question", "sql", "messages")):
        qid = jsonl_question_id(rec, lineno)
        if qid.startswith("dev-") or rec["db_id"] in dev_dbs:
            raise T2SError(f"{path}:{lineno}: {qid!r} on database {rec['db_id']!r} is Spider dev data; "
                           "repair examples come from the training split only")
        out[qid] = rec
    return out


def build_repair_examples(scored_path: str | Path, questions_path: str | Path, *, adapter: str | None = None,
                          spider_dir: str | Path | None = None) -> tuple[list[dict], dict]:
    """(prepared-format repair examples, counts) from an eval run's scored.jsonl on ``questions_path``."""
    from t2s_fast.evaluate.repair import REPAIRABLE_KINDS, error_message
    from t2s_fast.prompt import build_repair_messages

    questions = _load_questions(Path(questions_path), dev_databases(spider_dir))
    scored = [rec for _, rec in iter_numbered_jsonl(scored_path, required=("adapter", "qid"))]
    adapters = sorted({r["adapter"] for r in scored})
    if adapter is None and len(adapters) > 1:
        raise T2SError(f"{scored_path}: predictions of several models ({', '.join(adapters)}); pick one with --adapter")
    if adapter is not None and adapter not in adapters:
        raise T2SError(f"--adapter {adapter}: not in {scored_path} (it has {', '.join(adapters) or 'nothing'})")
    examples, counts = [], {"predictions": 0, "failing": 0}
    for rec in scored:
        if adapter is not None and rec["adapter"] != adapter:
            continue
        if rec["qid"] not in questions:
            raise T2SError(f"{scored_path}: question {rec['qid']!r} is not in {questions_path} "
                           "(was the run made on this file?)")
        counts["predictions"] += 1
        first = rec.get("repair") or {}  # a run with --repair: train on the first pass's failure
        pred, error = first.get("first_pred", rec.get("pred")), first.get("first_error", rec.get("error"))
        if not first and rec.get("error_kind") not in REPAIRABLE_KINDS:
            continue
        counts["failing"] += 1
        q = questions[rec["qid"]]
        messages = build_repair_messages(q["messages"], failed_sql=pred, error=error_message(error), sql=q["sql"])
        examples.append({"id": f"{rec['qid']}-repair", "source": q.get("source", "repair"), "db_id": q["db_id"],
                         "dialect": q.get("dialect", "sqlite"), "question": q["question"], "sql": q["sql"],
                         "messages": messages, "repair_of": {"adapter": rec["adapter"], "pred": pred, "error": error}})
    return examples, counts


@dataclass
class RepairExamplesConfig:
    """The `t2s-fast prepare-repair` settings."""

    scored: Path = setting(help="scored.jsonl of an eval run on a TRAINING-split file (eval --suite jsonl "
                                "--questions FILE).")
    questions: Path = setting(help="The prepared file that run evaluated (e.g. stage1_train.jsonl); never Spider dev.")
    out: Path = setting(help="Repair examples to write (JSONL).")
    adapter: str | None = setting(None, "Which evaluated model's failures (needed when the run has several).")
    spider_dir: Path | None = setting(None, "Spider 1.0 folder: questions on its dev.json databases are refused "
                                            "(default: ../shared's copy).")


def write_repair_examples(cfg: RepairExamplesConfig) -> tuple[list[dict], dict]:
    """Build the repair examples of ``cfg`` and write them (atomically) to ``cfg.out``; (examples, counts)."""
    from t2s_fast import paths
    from t2s_fast.jsonl import write_jsonl

    examples, counts = build_repair_examples(cfg.scored, cfg.questions, adapter=cfg.adapter,
                                             spider_dir=cfg.spider_dir or paths.SPIDER1_DIR)
    write_jsonl(cfg.out, examples)
    return examples, counts
