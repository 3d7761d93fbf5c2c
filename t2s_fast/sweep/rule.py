"""The sweep's choice: the highest held-out EX (ties: cheaper), among the candidates whose eval loss is at most
``max_eval_loss`` when the file sets one: a number, or a variant's name (its final adapter's eval loss, e.g. the
current stage-2 recipe's, so the chosen one is never worse at what stage 2 is for).

The choice is made from the candidates of this run every time (a re-run with a new cap chooses again from the
existing evaluations); it never keeps an earlier run's choice.
"""

from __future__ import annotations

from t2s_fast.evaluate.selection import choose_best

RULE = ("highest execution accuracy on the held-out set; ties go to the cheaper candidate (training dollars up "
        "to that checkpoint)")


def resolve_cap(max_eval_loss: float | str | None, candidates: list[dict]) -> tuple[float | None, str | None]:
    """(the cap as a number, None when there is none; an error message when a variant's name cannot be
    resolved: the variant has no final adapter with an eval loss)."""
    if not isinstance(max_eval_loss, str):
        return max_eval_loss, None
    final = next((c for c in candidates if c["name"] == f"{max_eval_loss}@final"), None)
    if final is None or final.get("eval_loss") is None:
        why = "was not evaluated (not trained?)" if final is None else "has no eval loss in its train_log.jsonl"
        return None, (f"max_eval_loss {max_eval_loss!r}: that variant's final adapter {why}, so the cap is unknown; "
                      "nothing is chosen")
    return final["eval_loss"], None


def rule_text(cap: float | None, source: str | None) -> str:
    if cap is None:
        return RULE
    of = f" (variant {source}'s final eval loss)" if source else ""
    return f"{RULE}, among the candidates whose eval loss is at most {cap:.4f}{of}"


def choose(max_eval_loss: float | str | None, candidates: list[dict]) -> tuple[dict | None, dict]:
    """(the chosen candidate or None, the rule: {"text", "max_eval_loss" (the number), "max_eval_loss_from"
    (the variant's name or None), "error" when a cap leaves nothing to choose}). With a cap every candidate
    gets "eligible"; one without an eval loss is not eligible."""
    source = max_eval_loss if isinstance(max_eval_loss, str) else None
    cap, error = resolve_cap(max_eval_loss, candidates)
    rule = {"text": rule_text(cap, source), "max_eval_loss": cap, "max_eval_loss_from": source}
    if error:
        return None, {**rule, "error": error}
    if cap is None:
        return choose_best(candidates), rule
    for c in candidates:
        c["eligible"] = c.get("eval_loss") is not None and c["eval_loss"] <= cap
    chosen = choose_best([c for c in candidates if c["eligible"]])
    if chosen is None and candidates:
        losses = [c["eval_loss"] for c in candidates if c.get("eval_loss") is not None]
        seen = (f"the lowest eval loss seen is {min(losses):.4f}" if losses
                else "no candidate has an eval loss (set train.eval_file)")
        of = f" ({source}'s final eval loss)" if source else ""
        rule["error"] = (f"no candidate is eligible under max_eval_loss {cap:.4f}{of}: {seen}; nothing is chosen "
                         "(raise max_eval_loss or remove it)")
    return chosen, rule
