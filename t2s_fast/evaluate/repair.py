"""Repair of predictions that fail to execute (`t2s-fast eval --repair resample|error-feedback`).

After the first pass is scored, every (adapter, question) whose chosen SQL did not execute (error kind parse,
runtime or timeout, on a question scored by the official Spider rules) gets ``--repair-k`` more completions
in one generation pass over all failing questions:

- ``resample``: the same prompt again, sampled at ``--repair-temperature``;
- ``error-feedback``: the repair prompt of ``t2s_fast.prompt.build_repair_messages`` (the question's prompt
  plus the failed SQL and SQLite's error message), the format `t2s-fast prepare-repair` trains on.

The completions are executed like self-consistency samples (one executor pool, prepared as the scorer
prepares a prediction) and, among those that execute, the harness's majority vote picks one (a single one
that executes is kept; ties go to the earliest). When none executes the first prediction stays. The chosen
SQL then simply replaces the prediction and is scored by the official rules, like any other.

Repair completions live in predictions.jsonl beside the first pass, under sample indices offset by
``SAMPLE_OFFSET[strategy]`` and with a ``repair`` field, so a re-run resumes them and never confuses them with
first-pass samples; ``--repair-k`` may grow on a re-run (only the missing samples are generated).
"""

from __future__ import annotations

import time
from collections import defaultdict

from t2s_fast.errors import T2SError
from t2s_fast.evaluate.config import MAX_REPAIR_K, REPAIR_STRATEGIES  # noqa: F401 - importable from here too
from t2s_fast.evaluate.predictions import prediction_key, text_sha

SAMPLE_OFFSET = {"resample": 1000, "error-feedback": 2000}
REPAIRABLE_KINDS = ("parse", "runtime", "timeout")  # the prediction did not execute (not: wrong result)


def error_message(error: str | None) -> str:
    """The database's own message in a scored record's error: "runtime: no such column: x" -> "no such column: x"."""
    err = error or ""
    kind = next((k for k in REPAIRABLE_KINDS if err.startswith(f"{k}: ")), None)
    return err[len(kind) + 2:] if kind else err


def is_repairable(rec: dict, q) -> bool:
    """A scored prediction that did not execute, on a question the official Spider scorer scores."""
    return (rec.get("error_kind") in REPAIRABLE_KINDS and q.db_path is not None and not q.not_executable
            and q.extra.get("scorer") is None)


def repair_key(strategy: str, adapter: str, qid: str, k: int) -> str:
    return prediction_key(adapter, qid, SAMPLE_OFFSET[strategy] + k)


def repair_requests(strategy: str, adapter: str, qid: str, prompt: str, k: int) -> list:
    """The ``k`` repair requests of one failing prediction: one prompt, samples 0..k-1, each with its own seed
    (from its key, so a resumed run samples as an uninterrupted one). `infer --repair` asks the same."""
    from t2s_fast.evaluate.generation import _request_seed
    from t2s_fast.generate.base import GenRequest

    keys = [repair_key(strategy, adapter, qid, i) for i in range(k)]
    return [GenRequest(key=key, adapter=adapter, prompt=prompt, seed=_request_seed(key)) for key in keys]


def repair_prompt(cfg, q, rec: dict, prompts: dict[str, str], tokenizer, cache: dict, matcher) -> str:
    """The prompt of one repair request: the question's own prompt (resample) or the error-feedback prompt."""
    if cfg.repair == "resample":
        return prompts[q.qid]
    from t2s_fast.evaluate.generation import question_messages
    from t2s_fast.prompt import build_repair_messages, render_prompt

    messages = question_messages(q, cache, cfg.sample_values, matcher)
    repair = build_repair_messages(messages, failed_sql=rec.get("pred"), error=error_message(rec.get("error")))
    return render_prompt(tokenizer, repair)


def plan_repair(cfg, questions: list, scored: list[dict], prompts: dict[str, str], tokenizer):
    """(failing [(adapter, question, scored record)], repair requests): K requests per failing prediction, longest
    prompt first (ties by key), so a resumed run forms the batches an uninterrupted one would."""
    from t2s_fast.schema_values import make_matcher

    by_qid = {q.qid: q for q in questions}
    failing = [(rec["adapter"], by_qid[rec["qid"]], rec) for rec in scored if is_repairable(rec, by_qid[rec["qid"]])]
    cache: dict = {}
    matcher = make_matcher(cfg.question_values) if cfg.repair == "error-feedback" else None
    requests = []
    for adapter, q, rec in failing:
        prompt = repair_prompt(cfg, q, rec, prompts, tokenizer, cache, matcher)
        requests.extend(repair_requests(cfg.repair, adapter, q.qid, prompt, cfg.repair_k))
    requests.sort(key=lambda r: (-len(r.prompt), r.key))
    return failing, requests


def check_repair_records(store, strategy: str, temperature: float, requests: list) -> None:
    """Refuse to mix repair samples decoded at another temperature, or made from another prompt."""
    for rec in store.records.values():
        if rec.get("repair") == strategy and rec.get("repair_temperature") != temperature:
            raise T2SError(f"{store.path}: it holds --repair {strategy} samples made with --repair-temperature "
                           f"{rec.get('repair_temperature')}, not {temperature}. Use another --out-dir, or --force")
    for r in requests:
        store.check_prompt(r.key, text_sha(r.prompt))


def choose_repairs(cfg, failing: list, store) -> dict[tuple[str, str], tuple[dict | None, dict]]:
    """{(adapter, qid): (the sample that replaces the prediction or None, vote)}: all candidates of all failing
    predictions run through one executor pool; the harness's self-consistency vote picks among those that run."""
    from t2s_fast.evaluate.scoring import choose_by_vote, execute_question_samples

    groups = [(q, [store.records[repair_key(cfg.repair, adapter, q.qid, k)] for k in range(cfg.repair_k)])
              for adapter, q, _rec in failing]
    out = {}
    executed = execute_question_samples(cfg, groups) if groups else []
    for (adapter, q, _rec), (_q, samples), results in zip(failing, groups, executed):
        pick, vote = choose_by_vote(samples, results)
        out[(adapter, q.qid)] = (pick if vote["valid"] else None, vote)
    return out


def repair_predictions(cfg, questions: list, scored: list[dict], store, tokenizer, prompts: dict[str, str], *,
                       backend: str, tokenizer_dir: str, generator=None,
                       model_path: str | None = None) -> tuple[list[dict], dict]:
    """Run (or resume) the repair pass over ``scored`` (the first pass, scored); returns the scored records with
    repaired predictions replaced and re-scored, and the repair summary for report.json."""
    import dataclasses

    from t2s_fast.evaluate.generation import gen_settings, generate_predictions
    from t2s_fast.evaluate.scoring import score_predictions

    failing, requests = plan_repair(cfg, questions, scored, prompts, tokenizer)
    check_repair_records(store, cfg.repair, cfg.repair_temperature, requests)
    settings = dataclasses.replace(gen_settings(cfg), temperature=cfg.repair_temperature)  # else as the first pass
    gen_stats = generate_predictions(cfg, store, requests, backend=backend, tokenizer_dir=tokenizer_dir,
                                     generator=generator, settings=settings, model_path=model_path,
                                     tag={"repair": cfg.repair, "repair_temperature": cfg.repair_temperature})
    t0 = time.perf_counter()
    picks = choose_repairs(cfg, failing, store)
    replaced = {key: dict(pick, n_tokens=rec["n_tokens"]) for (adapter, q, rec) in failing
                for key in [(adapter, q.qid)] if (pick := picks[key][0]) is not None}
    rescored = {(r["adapter"], r["qid"]): r for r in score_predictions(cfg, questions, replaced)} if replaced else {}
    first_by_key = {(adapter, q.qid): rec for adapter, q, rec in failing}
    final = []
    for rec in scored:
        key = (rec["adapter"], rec["qid"])
        if key not in first_by_key:
            final.append(rec)
            continue
        tokens = sum(store.records[repair_key(cfg.repair, key[0], key[1], k)]["n_tokens"] for k in range(cfg.repair_k))
        info = {"strategy": cfg.repair, "first_pred": rec["pred"], "first_error": rec["error"],
                "repaired": key in rescored, "vote": picks[key][1], "tokens": tokens}
        final.append(dict(rescored.get(key, rec), repair=info))
    summary = repair_summary(cfg, scored, final, store, gen_stats, time.perf_counter() - t0)
    return final, summary


def repair_summary(cfg, before: list[dict], after: list[dict], store, gen_stats: dict, execute_seconds: float) -> dict:
    """EX before and after repair per adapter, failing / repaired / fixed counts, and the repair's extra cost."""
    from t2s_fast.evaluate.names import display_name
    from t2s_fast.sql.scorer import summarize

    def ex(recs):
        executable = [r for r in recs if r.get("exec_match") is not None]
        return summarize(executable)["ex"] if executable else None

    by_before, by_after = defaultdict(list), defaultdict(list)
    for r in before:
        by_before[r["adapter"]].append(r)
    for r in after:
        by_after[r["adapter"]].append(r)
    rows = [b for b in store.timings() if b.get("repair") == cfg.repair]
    seconds, all_tokens = sum(b["seconds"] for b in rows), sum(b["tokens"] for b in rows)
    adapters = {}
    for name in cfg.adapter_names:
        repaired = [r for r in by_after[name] if "repair" in r]
        tokens = sum(r["repair"]["tokens"] for r in repaired)
        adapters[name] = {
            "display_name": display_name(name), "ex_before": ex(by_before[name]), "ex_after": ex(by_after[name]),
            "correct_before": sum(1 for r in by_before[name] if r.get("exec_match")),
            "correct_after": sum(1 for r in by_after[name] if r.get("exec_match")),
            "failing": len(repaired), "repaired": sum(1 for r in repaired if r["repair"]["repaired"]),
            "fixed": sum(1 for r in repaired if r.get("exec_match")),
            "still_failing": sum(1 for r in repaired if r.get("error_kind") in REPAIRABLE_KINDS),
            "extra_tokens": tokens,
            "extra_generation_seconds_share": round(seconds * tokens / all_tokens, 3) if all_tokens else 0.0,
        }
    return {
        "strategy": cfg.repair, "k": cfg.repair_k, "temperature": cfg.repair_temperature,
        "repairable_error_kinds": list(REPAIRABLE_KINDS),
        "requests": cfg.repair_k * sum(a["failing"] for a in adapters.values()),
        "generation_seconds": round(seconds, 3), "generated_tokens": all_tokens,
        "this_session": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in gen_stats.items()},
        "execute_and_rescore_seconds_this_session": round(execute_seconds, 3),
        "adapters": adapters,
    }
