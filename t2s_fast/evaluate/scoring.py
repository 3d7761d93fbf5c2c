"""Scoring for an evaluation run: the self-consistency vote over execution results, and the official execution
match of each chosen prediction. Shared by the harness, the repair pass and `t2s-fast infer --repair`."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from t2s_fast.evaluate.config import EvalConfig
from t2s_fast.evaluate.predictions import PredictionStore, prediction_key
from t2s_fast.evaluate.questions import Question

NOT_EXECUTABLE = "not_executable"  # error kind for questions whose SQL cannot be run here


def majority(results: list) -> tuple[int, dict]:
    """Self-consistency over execution results: (index of the chosen sample, vote). The results are grouped by
    the Spider 1.0 comparison (order ignored) and the earliest sample of the largest group wins (ties go to the
    earliest group); a result that is None or an error does not vote. With no valid result: (0, valid 0)."""
    from t2s_fast.sql.compare import spider1_results_match

    groups: list[tuple[list, list[int]]] = []
    for idx, res in enumerate(results):
        if res is None or not res.ok:
            continue
        for rows, members in groups:
            if spider1_results_match(rows, res.rows or [], order_matters=False):
                members.append(idx)
                break
        else:
            groups.append((res.rows or [], [idx]))
    if not groups:
        return 0, {"valid": 0, "votes": 0, "groups": 0}
    best = max(groups, key=lambda g: (len(g[1]), -g[1][0]))
    return best[1][0], {"valid": sum(len(g[1]) for g in groups), "votes": len(best[1]), "groups": len(groups)}


def choose_by_vote(samples: list[dict], results: list) -> tuple[dict, dict]:
    """The sample ``majority`` chooses among ``samples`` (their execution results in ``results``), and the vote."""
    index, vote = majority(results)
    return samples[index], vote


def execute_question_samples(cfg: EvalConfig, voting: list[tuple[Question, list[dict]]]) -> list[list]:
    """``execute_samples`` over each voting question's database, with the run's --workers, --timeout and
    --keep-distinct."""
    return execute_samples([(q.db_path, samples) for q, samples in voting], workers=cfg.workers,
                           timeout_s=cfg.timeout, keep_distinct=cfg.keep_distinct)


def execute_samples(groups: list[tuple[Path, list[dict]]], *, workers: int, timeout_s: float,
                    keep_distinct: bool = False) -> list[list]:
    """Per (database file, samples) group, each sample's ExecResult: every sample of every group through one
    sandboxed executor pool (``workers`` processes), each prepared exactly as the scorer prepares a prediction
    (official post-processing, DISTINCT handling), so the vote groups results by the rule the score then
    applies. A sample that does not prepare (empty SQL) gets None."""
    from t2s_fast.sql.executor import run_jobs
    from t2s_fast.sql.scorer import ScoreConfig, prepare_pred

    score_cfg = ScoreConfig(spider_dir=Path("."), workers=workers, timeout=timeout_s, keep_distinct=keep_distinct)
    jobs, where = [], []
    for gi, (db_path, samples) in enumerate(groups):
        for si, sample in enumerate(samples):
            sql, _error = prepare_pred(sample.get("sql"), score_cfg)
            if sql is not None:
                where.append((gi, si))
                jobs.append((db_path, sql))
    results = [[None] * len(samples) for _, samples in groups]
    if jobs:
        for (gi, si), res in zip(where, run_jobs(jobs, workers=max(1, workers), timeout_s=timeout_s)):
            results[gi][si] = res
    return results



def choose_predictions(cfg: EvalConfig, questions: list[Question], store: PredictionStore) -> dict[tuple[str, str],
                                                                                                   dict]:
    """{(adapter, qid): the prediction to score} (the majority-vote sample with --n-samples > 1)."""
    chosen, voting, keys = {}, [], []
    for q in questions:
        for adapter in cfg.adapter_names:
            samples = [store.records[prediction_key(adapter, q.qid, s)] for s in range(cfg.n_samples)]
            if cfg.n_samples == 1 or q.db_path is None or q.not_executable:
                chosen[(adapter, q.qid)] = dict(samples[0])
            else:
                voting.append((q, samples))
                keys.append((adapter, q.qid))
    for key, (q, samples), results in zip(keys, voting, execute_question_samples(cfg, voting) if voting else []):
        pick, vote = choose_by_vote(samples, results)
        chosen[key] = dict(pick, vote=vote)
    return chosen



def score_predictions(cfg: EvalConfig, questions: list[Question], chosen: dict[tuple[str, str], dict]) -> list[dict]:
    """One scored record per (adapter, question): exec_match, error_kind, hardness, and the prediction."""
    from t2s_fast.sql.scorer import ScoreConfig, score_records

    by_qid = {q.qid: q for q in questions}
    executable, others = [], []
    for (adapter, qid), pred in chosen.items():
        q = by_qid[qid]
        rec = {"adapter": adapter, "qid": qid, "db_id": q.db_id, "question": q.question, "gold": q.gold,
               "pred": pred["sql"], "raw": pred["raw"], "extraction": pred["extraction"],
               "extraction_changed": pred["extraction_changed"], "n_tokens": pred["n_tokens"],
               "finish": pred.get("finish", "")}
        if "vote" in pred:
            rec["vote"] = pred["vote"]
        custom = q.extra.get("scorer") is not None
        (others if custom or q.not_executable or q.db_path is None else executable).append((q, rec))
    scored = []
    # Score per database folder (the scorer looks databases up as <db_root>/<db_id>/<db_id>.sqlite).
    by_root = defaultdict(list)
    for q, rec in executable:
        by_root[q.db_path.parent.parent].append(rec)
    for root, recs in by_root.items():
        scfg = ScoreConfig(spider_dir=str(root), workers=cfg.workers, timeout=cfg.timeout,
                           keep_distinct=cfg.keep_distinct)
        scored.extend(score_records(recs, scfg))
    for q, rec in others:
        if q.extra.get("scorer") is not None and not q.not_executable:
            scored.append(q.extra["scorer"](q, rec, cfg))
            continue
        scored.append(dict(rec, exec_match=None, error_kind=NOT_EXECUTABLE, error=q.not_executable or "no database",
                           hardness=q.extra.get("hardness", "n/a")))
    order = {(a, q.qid): i for i, (a, q) in enumerate((a, q) for q in questions for a in cfg.adapter_names)}
    scored.sort(key=lambda r: order[(r["adapter"], r["qid"])])
    return scored
