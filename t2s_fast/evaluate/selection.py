"""Choosing by execution accuracy: which question set a choice may be made on, and the choice itself.

Spider dev is the final report and must never be the set an adapter, a checkpoint or a sweep variant is
chosen on. It is recognised by its content, whatever its file or split is called: a question set is Spider
dev's when it is the spider1 suite's dev split, or when any of its questions is on one of the 20 dev databases,
carries a dev question id (``dev-0001`` as `eval` numbers them, ``spider1-dev-1`` as `prepare` would), or is
one of dev's (database, question) pairs (`evaluate/spider_dev.py` holds their fingerprint). That holds for a
``--questions`` file and for a spider1 split file (``--split valid`` with a copy of dev.json as valid.json).
``stage1_valid.jsonl`` from `t2s-fast prepare` holds out whole *training* databases, so it passes.
"""

from __future__ import annotations

import re
from pathlib import Path

from t2s_fast.errors import T2SError

# The 20 databases of Spider 1.0 dev (dev.json), none of which is a training database.
SPIDER_DEV_DB_IDS = frozenset({
    "battle_death", "car_1", "concert_singer", "course_teach", "cre_Doc_Template_Mgt", "dog_kennels",
    "employee_hire_evaluation", "flight_2", "museum_visit", "network_1", "orchestra", "pets_1", "poker_player",
    "real_estate_properties", "singer", "student_transcripts_tracking", "tvshow", "voter_1", "world_1", "wta_1",
})
_DEV_ID = re.compile(r"^(spider1-)?dev-\d+$")


def _dev_reason(rec: dict, where: str) -> str | None:
    """Why one question (a prepared line or a Spider item) is Spider dev's, or None."""
    from t2s_fast.evaluate.spider_dev import is_spider_dev_question

    db_id = rec.get("db_id")
    if db_id in SPIDER_DEV_DB_IDS:
        return f"{where} is on Spider dev database {db_id!r}"
    if _DEV_ID.match(str(rec.get("id") or "")):
        return f"{where} has the Spider dev question id {rec['id']!r}"
    if db_id is not None and rec.get("question") is not None and is_spider_dev_question(db_id, rec["question"]):
        return f"{where} is Spider dev's question {rec['question']!r} on {db_id!r}"
    return None


def _split_file_reason(spider_dir: str | None, split: str | None) -> str | None:
    """A spider1 split file (``<spider_dir>/<split>.json``) that holds a Spider dev question."""
    if not spider_dir or not split:
        return None
    from t2s_fast.jsonl import read_json

    path = Path(spider_dir) / f"{split}.json"
    if not path.is_file():
        return None  # the loader reports the missing file with its own flags
    data = read_json(path)
    for i, item in enumerate(data if isinstance(data, list) else []):
        if isinstance(item, dict):
            reason = _dev_reason(item, f"--suite spider1 --split {split} ({path}, question {i})")
            if reason:
                return reason
    return None


def spider_dev_reason(*, suite: str, split: str | None = None, questions: str | None = None,
                      spider_dir: str | None = None) -> str | None:
    """Why this question set is Spider dev (None when it is not)."""
    if suite == "spider1" and not questions:
        if split == "dev":
            return f"--suite spider1 --split {split} is Spider dev"
        return _split_file_reason(spider_dir, split)
    if not questions:
        return None
    from t2s_fast.jsonl import iter_numbered_jsonl

    path = Path(questions)
    if path.name == "dev.json":
        return f"--questions {questions} is Spider's dev.json"
    if not path.is_file():
        return None  # the loader reports the missing file with its own flag
    for lineno, rec in iter_numbered_jsonl(path):
        reason = _dev_reason(rec, f"--questions {questions}:{lineno}")
        if reason:
            return reason
    return None


def refuse_spider_dev(*, suite: str, split: str | None = None, questions: str | None = None,
                      spider_dir: str | None = None, what: str) -> None:
    """Raise a T2SError (exit 2) when ``what`` (e.g. "eval --checkpoints") would choose on Spider dev."""
    reason = spider_dev_reason(suite=suite, split=split, questions=questions, spider_dir=spider_dir)
    if reason:
        raise T2SError(f"{what} chooses by execution accuracy and refuses Spider dev ({reason}): Spider dev is the "
                       "final report, never the set to choose on. Use a held-out set instead, e.g. --suite heldout "
                       "--questions data/prepared/stage1_valid.jsonl (whole Spider training databases held out by "
                       "`t2s-fast prepare`)")


def choose_best(candidates: list[dict], *, tie: str = "cost_usd") -> dict | None:
    """The candidate with the highest ``ex``; ties go to the lower ``tie`` figure (``cost_usd``; the ablation:
    ``generated_tokens``), then to the earlier one. Candidates without an EX (nothing executable) are never chosen."""
    scored = [(i, c) for i, c in enumerate(candidates) if c.get("ex") is not None]
    if not scored:
        return None
    inf = float("inf")
    return min(scored, key=lambda ic: (-ic[1]["ex"], ic[1].get(tie) if ic[1].get(tie) is not None
                                       else inf, ic[0]))[1]
