"""Choosing by execution accuracy: which question set a choice may be made on, and the choice itself.

Spider dev is the final report and must never be the set an adapter, a checkpoint or a sweep variant is
chosen on. Spider 1.0's dev databases are disjoint from its training databases, so a question set is
Spider dev's when it is the spider1 suite's dev split, or when any of its questions is on one of the 20 dev
databases, or carries a dev question id (``dev-0001`` as `eval` numbers them, ``spider1-dev-1`` as
`prepare` would). ``stage1_valid.jsonl`` from `t2s-fast prepare` holds out whole *training* databases, so it
passes.
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


def spider_dev_reason(*, suite: str, split: str | None = None, questions: str | None = None) -> str | None:
    """Why this question set is Spider dev (None when it is not)."""
    if suite == "spider1" and not questions:
        return f"--suite spider1 --split {split} is Spider dev" if split == "dev" else None
    if not questions:
        return None
    from t2s_fast.jsonl import iter_numbered_jsonl

    path = Path(questions)
    if path.name == "dev.json":
        return f"--questions {questions} is Spider's dev.json"
    if not path.is_file():
        return None  # the loader reports the missing file with its own flag
    for lineno, rec in iter_numbered_jsonl(path):
        if rec.get("db_id") in SPIDER_DEV_DB_IDS:
            return f"--questions {questions}:{lineno} is on Spider dev database {rec['db_id']!r}"
        if _DEV_ID.match(str(rec.get("id") or "")):
            return f"--questions {questions}:{lineno} has the Spider dev question id {rec['id']!r}"
    return None


def refuse_spider_dev(*, suite: str, split: str | None = None, questions: str | None = None, what: str) -> None:
    """Raise a T2SError when ``what`` (e.g. "eval --checkpoints") would choose on Spider dev."""
    reason = spider_dev_reason(suite=suite, split=split, questions=questions)
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
