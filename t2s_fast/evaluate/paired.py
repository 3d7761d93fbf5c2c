"""Per-question files and paired comparisons: is a difference in execution accuracy more than noise?

Every evaluation writes its per-question file, ``scored.jsonl.gz`` (one line per adapter and question: the
prediction, the verdict ``exec_match``, the error kind and the hardness), beside ``scored.jsonl``. It is the
file to commit with a report: anyone can re-score it, and two runs on the same questions can be compared
question by question.

`paired_bootstrap(a, b)` compares two variants on the questions both answered (matched by question id): the
difference in EX (b minus a), its 95% paired bootstrap interval (questions resampled with replacement, seeded),
and the discordant counts (right -> wrong, wrong -> right). A difference whose interval holds 0 is called noise.
`t2s-fast report RUN_A RUN_B` prints it for every adapter present in both runs; `ablate` and `sweep` give it
for each winner against its baseline.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.jsonl import atomic_open

PER_QUESTION_FILE = "scored.jsonl.gz"
PLAIN_FILE = "scored.jsonl"
N_BOOT = 10_000
LEVEL = 0.95
# records left out of EX (as `t2s_fast.sql.scorer.summarize` leaves them out): data problems, not the model's
_NOT_COUNTED = ("no_database", "gold_error")


# ---------------------------------------------------------------- the per-question file
def write_per_question(out_dir: str | Path, records: list[dict]) -> Path:
    """``out_dir/scored.jsonl.gz``: the scored lines gzipped, written atomically, with no time stamp in the
    gzip header (the same lines give the same bytes)."""
    path = Path(out_dir) / PER_QUESTION_FILE
    with atomic_open(path, "wb", encoding=None) as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
        for rec in records:
            gz.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def per_question_path(run: str | Path) -> Path:
    """The per-question file of a run folder (``scored.jsonl.gz``, else ``scored.jsonl``), or the file given."""
    run = Path(run)
    if run.is_file():
        return run
    for name in (PER_QUESTION_FILE, PLAIN_FILE):
        if (run / name).is_file():
            return run / name
    raise T2SError(f"{run}: no per-question file ({PER_QUESTION_FILE} or {PLAIN_FILE}); a paired comparison needs "
                   "each question's verdict (runs made by `t2s-fast eval` write it)")


def read_per_question(run: str | Path) -> list[dict]:
    """The scored lines of a run folder or per-question file (gzipped or not); errors name the file and line."""
    path = per_question_path(run)
    opener = gzip.open if path.name.endswith(".gz") else open
    out = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise T2SError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
                if not isinstance(rec, dict) or "adapter" not in rec or "qid" not in rec:
                    raise T2SError(f"{path}:{lineno}: not a scored line (needs 'adapter' and 'qid')")
                out.append(rec)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise T2SError(f"{path}: cannot read it ({exc})") from None
    return out


def adapters_of(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["adapter"] for r in records))


def verdicts(records: list[dict], adapter: str) -> dict[str, bool]:
    """{question id: right or wrong} of one adapter, over the questions its EX counts (executed, with a
    database and a gold query that runs)."""
    return {str(r["qid"]): bool(r["exec_match"]) for r in records
            if r["adapter"] == adapter and r.get("exec_match") is not None and r.get("error_kind") not in _NOT_COUNTED}


def ex_of(records: list[dict], adapter: str) -> tuple[int, int]:
    """(correct, n) of one adapter: its EX is correct / n, as its report computes it."""
    v = verdicts(records, adapter)
    return sum(v.values()), len(v)


# ---------------------------------------------------------------- the paired bootstrap
def paired_bootstrap(a: dict[str, bool], b: dict[str, bool], *, n_boot: int = N_BOOT, seed: int = 0,
                     level: float = LEVEL, label_a: str = "A", label_b: str = "B") -> dict:
    """EX of b minus EX of a on the questions both have, with its paired bootstrap interval.

    Resampling n questions with replacement only changes how many of the discordant ones are drawn: each
    question adds +1 (wrong -> right), -1 (right -> wrong) or 0, so one resample is a multinomial draw of n
    over those three kinds. The interval is the ``level`` central percentile range of ``n_boot`` such draws
    (seeded: the same input gives the same interval)."""
    import numpy as np

    common = [q for q in a if q in b]
    n = len(common)
    if n == 0:
        raise T2SError(f"{label_a} and {label_b} share no question: nothing to compare")
    right_to_wrong = sum(1 for q in common if a[q] and not b[q])
    wrong_to_right = sum(1 for q in common if b[q] and not a[q])
    ex_a = sum(a[q] for q in common) / n
    ex_b = sum(b[q] for q in common) / n
    diff = (wrong_to_right - right_to_wrong) / n
    rng = np.random.default_rng(seed)
    rest = n - right_to_wrong - wrong_to_right
    draws = rng.multinomial(n, [wrong_to_right / n, right_to_wrong / n, rest / n], size=n_boot)
    diffs = (draws[:, 0] - draws[:, 1]) / n
    tail = (1 - level) / 2
    low, high = (float(x) for x in np.quantile(diffs, [tail, 1 - tail]))
    return {"a": label_a, "b": label_b, "n": n, "ex_a": ex_a, "ex_b": ex_b, "diff": diff,
            "ci_low": low, "ci_high": high, "level": level, "n_boot": n_boot, "seed": seed,
            "right_to_wrong": right_to_wrong, "wrong_to_right": wrong_to_right,
            "only_a": len(a) - n, "only_b": len(b) - n, "noise": low <= 0.0 <= high}


def compare_adapters(records_a: list[dict], adapter_a: str, records_b: list[dict], adapter_b: str, *,
                     label_a: str | None = None, label_b: str | None = None, seed: int = 0) -> dict:
    """The paired comparison of adapter_a in one per-question file with adapter_b in another (or the same)."""
    va, vb = verdicts(records_a, adapter_a), verdicts(records_b, adapter_b)
    for name, v, recs in ((adapter_a, va, records_a), (adapter_b, vb, records_b)):
        if not v:
            known = ", ".join(adapters_of(recs)) or "none"
            raise T2SError(f"adapter {name!r}: no scored question in its per-question file (adapters: {known})")
    return paired_bootstrap(va, vb, seed=seed, label_a=label_a or adapter_a, label_b=label_b or adapter_b)


def compare_runs(run_a: str | Path, run_b: str | Path, *, seed: int = 0) -> list[dict]:
    """One paired comparison per adapter present in both runs (run_b minus run_a)."""
    ra, rb = read_per_question(run_a), read_per_question(run_b)
    both = [name for name in adapters_of(ra) if name in set(adapters_of(rb))]
    if not both:
        raise T2SError(f"{run_a} and {run_b} have no adapter in common (adapters: {', '.join(adapters_of(ra))} / "
                       f"{', '.join(adapters_of(rb))})")
    out = []
    for name in both:
        c = compare_adapters(ra, name, rb, name, label_a=f"{run_a}: {name}", label_b=f"{run_b}: {name}", seed=seed)
        out.append({**c, "adapter": name, "run_a": str(run_a), "run_b": str(run_b)})
    return out


def compare_files(run_a: str | Path, adapter_a: str, run_b: str | Path, adapter_b: str, *, label_a: str,
                  label_b: str) -> dict:
    """A winner (b) against its baseline (a), each an adapter in a run folder; the files named in the result."""
    c = compare_adapters(read_per_question(run_a), adapter_a, read_per_question(run_b), adapter_b,
                         label_a=label_a, label_b=label_b)
    return {**c, "file_a": str(per_question_path(run_a)), "file_b": str(per_question_path(run_b))}


# ---------------------------------------------------------------- words and tables
def verdict(c: dict) -> str:
    """"noise" when the interval holds 0, else "gain" or "loss"."""
    return "noise" if c["noise"] else ("gain" if c["diff"] > 0 else "loss")


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def describe(c: dict) -> str:
    """One line: '<b> vs <a>: +3.0 pts [95% CI +1.2, +4.8], 12 right->wrong, 41 wrong->right, n 972: gain'."""
    return (f"{c['b']} vs {c['a']}: {100 * c['ex_b']:.1f}% vs {100 * c['ex_a']:.1f}%, {_pts(c['diff'])} pts "
            f"[{int(100 * c['level'])}% CI {_pts(c['ci_low'])}, {_pts(c['ci_high'])}], {c['right_to_wrong']} "
            f"right->wrong, {c['wrong_to_right']} wrong->right, n {c['n']}: {verdict(c)}")


TABLE_HEAD = [("| baseline | compared | n | EX baseline | EX compared | Δ (pts) | 95% paired bootstrap CI "
               "| right→wrong | wrong→right | verdict |"), "|---|---|---|---|---|---|---|---|---|---|"]


def table_row(c: dict) -> str:
    return (f"| {c['a']} | {c['b']} | {c['n']} | {100 * c['ex_a']:.1f}% | {100 * c['ex_b']:.1f}% | {_pts(c['diff'])} "
            f"| [{_pts(c['ci_low'])}, {_pts(c['ci_high'])}] | {c['right_to_wrong']} | {c['wrong_to_right']} "
            f"| {verdict(c)} |")


NOTE = ("Δ is the compared variant's EX minus the baseline's on the questions both answered (matched by question "
        f"id); the interval resamples those questions with replacement ({N_BOOT:,} draws, seed 0). A difference "
        "whose interval holds 0 is noise.")


def markdown_table(comparisons: list[dict]) -> list[str]:
    return [*TABLE_HEAD, *(table_row(c) for c in comparisons), "", NOTE]


def write_run_comparisons(run_dirs: list[str | Path], target: Path) -> tuple[list[str], Path | None]:
    """The first run against each other run, per adapter in both: printed lines, and paired.md/json in
    ``target`` (None when no pair could be compared: a run without a per-question file is named instead)."""
    from t2s_fast.jsonl import write_json

    lines, comparisons = [], []
    for other in run_dirs[1:]:
        try:
            found = compare_runs(run_dirs[0], other)
        except T2SError as exc:
            lines.append(f"no paired comparison of {run_dirs[0]} and {other}: {exc}")
            continue
        comparisons += found
        lines += [describe(c) for c in found]
    if not comparisons:
        return lines, None
    write_json(target / "paired.json", {"comparisons": comparisons})
    with atomic_open(target / "paired.md") as fh:
        fh.write("\n".join(["# t2s-fast: paired comparison of evaluation runs", "", *markdown_table(comparisons)])
                 + "\n")
    return lines, target / "paired.md"
