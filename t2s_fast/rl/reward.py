"""The execution reward: each completion's SQL runs through the project's sandboxed executor and is compared with
the gold result exactly as `eval` scores it (`sql.scorer.score_records`: the official evaluator's preparation,
read-only connections with an authorizer, a per-query time limit, row and byte caps, worker processes that a
hang or a crash cannot take down).

Shapes (`--reward`):
- ``arctic`` (default, Arctic-Text2SQL-R1's): 1 if the result matches the gold's, 0.1 if the SQL executes, 0
  otherwise (no SQL, a parse error, a runtime error, a timeout, a result over the caps);
- ``binary``: 1 if it matches, else 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from t2s_fast.generate.extract import extract_sql
from t2s_fast.sql.scorer import ScoreConfig, score_records

SHAPES = {"arctic": (1.0, 0.1, 0.0), "binary": (1.0, 0.0, 0.0)}  # (match, executes, fails)


def reward_of(scored: dict, shape: str = "arctic") -> float:
    """One scored record's reward. A result over the row/byte caps is wrong (not a match), but it did execute."""
    match, executes, fails = SHAPES[shape]
    if scored["exec_match"]:
        return match
    return executes if scored["error_kind"] is None else fails


def completion_text(completion) -> str:
    """TRL hands a completion as a string (text prompts) or a list of messages (conversational ones)."""
    if isinstance(completion, list):
        return completion[-1]["content"] if completion else ""
    return str(completion)


@dataclass
class ExecutionReward:
    """A TRL reward function: ``reward(prompts, completions, gold=..., db_id=..., **kw) -> [float]``. It keeps
    what the step record reports: seconds spent scoring and the share of matches and of failures."""

    db_root: str
    shape: str = "arctic"
    workers: int = 8
    timeout_s: float = 5.0
    stats: list = field(default_factory=list)

    def __post_init__(self):
        self.__name__ = "execution_reward"  # TRL names a reward function's metrics by its __name__
        self._cfg = ScoreConfig(spider_dir=self.db_root, workers=self.workers, timeout=self.timeout_s)

    def score(self, completions: list, gold: list[str], db_id: list[str]) -> list[dict]:
        records = [{"db_id": d, "gold": g, "pred": extract_sql(completion_text(c))}
                   for c, g, d in zip(completions, gold, db_id)]
        return score_records(records, self._cfg)

    def __call__(self, prompts=None, completions=None, gold=None, db_id=None, pass_rate=None, **kwargs) -> list[float]:
        """``pass_rate`` (a dataset column, optional): the starting adapter's share of right samples for each
        completion's prompt in the filter pass; its mean is what the match rate should be while the policy is
        still the starting adapter (a check that the weights reach the generation engine)."""
        t0 = time.perf_counter()
        scored = self.score(completions, gold, db_id)
        rewards = [reward_of(s, self.shape) for s in scored]
        n = max(1, len(rewards))
        self.stats.append({"seconds": time.perf_counter() - t0, "n": len(rewards),
                           "match": sum(s["exec_match"] for s in scored) / n,
                           "fails": sum(s["error_kind"] is not None for s in scored) / n,
                           "start_match": sum(pass_rate) / n if pass_rate else None})
        return rewards

    def take_stats(self) -> dict:
        """What was scored since the last call: seconds, completions, match and failure shares."""
        rows, self.stats = self.stats, []
        n = sum(r["n"] for r in rows)
        if not n:
            return {}
        out = {"reward_s": round(sum(r["seconds"] for r in rows), 3),
               "match_rate": round(sum(r["match"] * r["n"] for r in rows) / n, 4),
               "fail_rate": round(sum(r["fails"] * r["n"] for r in rows) / n, 4)}
        if all(r["start_match"] is not None for r in rows):
            out["start_match_rate"] = round(sum(r["start_match"] * r["n"] for r in rows) / n, 4)
        return out
