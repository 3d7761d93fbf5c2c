"""Question-matched database values for the schema prompt (the `--question-values N` lever, OmniSQL-style).

Beside the few sampled values per column, the prompt can show the text values of the database that match
words of the question ("singers from France" -> 'France' in singer.country), so the model writes the literal
the data really holds. For each column, its distinct text values (read once per database, read-only, at most
``MAX_ROWS_SCANNED`` rows per column) are compared with every 1..``MAX_NGRAM``-word n-gram of the question by
rapidfuzz's normalized Indel similarity (``fuzz.ratio`` after lower-casing and dropping punctuation); a value
matches when its best score reaches ``MATCH_THRESHOLD``. Caps: ``per_column`` values per column (the knob),
``MAX_TOTAL_VALUES`` per prompt (best scores first), values longer than ``MAX_VALUE_CHARS`` are never
candidates, and a shown value is cut like a sample value (``t2s_fast.schema.MAX_SAMPLE_CHARS``).

Only SQLite databases have values to match (Spider 1.0, a user's ``--db``); Spider 2.0 schemas come from
metadata files and get none. rapidfuzz is imported only when the lever is on.
"""

from __future__ import annotations

import re
from pathlib import Path

from t2s_fast.errors import T2SError

MATCH_THRESHOLD = 85.0  # rapidfuzz fuzz.ratio, 0-100
MAX_NGRAM = 4  # longest question n-gram compared, in words
MAX_ROWS_SCANNED = 20_000  # rows read per column when collecting its distinct values
MAX_DISTINCT_PER_COLUMN = 5_000  # distinct text values kept per column
MAX_VALUE_CHARS = 60  # longer values (descriptions, notes) are not candidates
MAX_TOTAL_VALUES = 20  # matched values shown in one prompt, over all columns
MIN_VALUE_CHARS = 2  # after normalization; one-letter codes ('M', 'F') match too much

# n-grams made only of these words are not compared (they would match values such as 'The' or 'A').
_STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or not no is are was were be been has have had do does did "
    "what which who whom whose when where why how many much all any each every that this these those there "
    "their its it as than then more most less least list show give find name names number me i".split()
)
_WORD = re.compile(r"\w+(?:['.\-]\w+)*", re.UNICODE)

# {(table lower, column lower): [matched values, best first]}
Matches = dict[tuple[str, str], list[str]]


def question_ngrams(question: str, max_n: int = MAX_NGRAM) -> list[str]:
    """Every 1..max_n-word n-gram of the question, in order of appearance, without stop-word-only ones."""
    words = _WORD.findall(question)
    out: dict[str, None] = {}
    for n in range(1, max_n + 1):
        for i in range(len(words) - n + 1):
            gram = words[i:i + n]
            if all(w.lower() in _STOPWORDS for w in gram):
                continue
            out[" ".join(gram)] = None
    return list(out)


def read_text_values(db_path: str | Path, *, max_rows: int = MAX_ROWS_SCANNED,
                     max_distinct: int = MAX_DISTINCT_PER_COLUMN) -> dict[tuple[str, str], list[str]]:
    """{(table, column): distinct text values} of a SQLite file, opened read-only (the executor's opener),
    reading at most ``max_rows`` rows of each column."""
    import sqlite3

    from t2s_fast.sql.executor import open_readonly

    try:
        conn = open_readonly(db_path)
    except sqlite3.Error as exc:
        raise T2SError(f"{db_path}: cannot open the database to match question values ({exc})") from None
    out: dict[tuple[str, str], list[str]] = {}
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
        for table in tables:
            qt = _quote(table)
            for row in conn.execute(f"PRAGMA table_info({qt})").fetchall():
                col = row[1]
                qc = _quote(col)
                try:
                    values = conn.execute(
                        f"SELECT DISTINCT v FROM (SELECT {qc} AS v FROM {qt} LIMIT {int(max_rows)}) "
                        f"WHERE typeof(v) = 'text' AND length(v) BETWEEN 1 AND {MAX_VALUE_CHARS} "
                        f"LIMIT {int(max_distinct)}").fetchall()
                except sqlite3.DatabaseError:
                    continue  # a broken column (bad collation, corrupt page) only loses its values
                if values:
                    out[(table, col)] = [v[0] for v in values]
    except sqlite3.DatabaseError as exc:
        raise T2SError(f"{db_path}: not a readable SQLite database ({exc})") from None
    finally:
        conn.close()
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def match_values(question: str, column_values: dict[tuple[str, str], list[str]], *, per_column: int,
                 threshold: float = MATCH_THRESHOLD, max_total: int = MAX_TOTAL_VALUES) -> Matches:
    """The values that match the question's n-grams, at most ``per_column`` per column and ``max_total`` in
    all; the best scores win (ties: table, column and value order of the database)."""
    from rapidfuzz import fuzz, process, utils

    grams = [g for g in (utils.default_process(g) for g in question_ngrams(question)) if g]
    if per_column <= 0 or not grams:
        return {}
    found: list[tuple[float, int, int, tuple[str, str], str]] = []
    for ci, (key, values) in enumerate(column_values.items()):
        cands = [(vi, v) for vi, v in enumerate(values) if len(utils.default_process(v)) >= MIN_VALUE_CHARS]
        if not cands:
            continue
        scores = process.cdist([v for _, v in cands], grams, scorer=fuzz.ratio, processor=utils.default_process,
                               score_cutoff=threshold, workers=1)
        best = scores.max(axis=1)
        hits = sorted(((-float(s), vi, v) for (vi, v), s in zip(cands, best) if s >= threshold))[:per_column]
        found += [(s, ci, vi, key, v) for s, vi, v in hits]
    found.sort(key=lambda f: (f[0], f[1], f[2]))
    out: Matches = {}
    for _s, _ci, _vi, (table, col), value in found[:max_total]:
        out.setdefault((table.lower(), col.lower()), []).append(value)
    return out


class QuestionValueMatcher:
    """Matches questions against databases, reading each database's values once (the `--question-values`
    lever; ``per_column`` > 0)."""

    def __init__(self, per_column: int):
        if per_column < 1:
            raise T2SError(f"--question-values {per_column}: must be at least 1 to match values (0 = off)")
        import importlib.util

        if importlib.util.find_spec("rapidfuzz") is None:
            raise T2SError("--question-values needs the 'rapidfuzz' package: pip install 'rapidfuzz>=3.9,<4'")
        self.per_column = per_column
        self._values: dict[str, dict[tuple[str, str], list[str]]] = {}

    def settings(self) -> dict:
        """What the matched values depend on (recorded with runs and prepared data)."""
        return {"per_column": self.per_column, "threshold": MATCH_THRESHOLD, "max_ngram": MAX_NGRAM,
                "max_total": MAX_TOTAL_VALUES, "max_value_chars": MAX_VALUE_CHARS,
                "max_rows_scanned": MAX_ROWS_SCANNED, "max_distinct_per_column": MAX_DISTINCT_PER_COLUMN,
                "scorer": "rapidfuzz.fuzz.ratio (default_process)"}

    def match(self, db_path: str | Path, question: str) -> Matches:
        key = str(Path(db_path).resolve())
        if key not in self._values:
            self._values[key] = read_text_values(db_path)
        return match_values(question, self._values[key], per_column=self.per_column)


def make_matcher(per_column: int) -> QuestionValueMatcher | None:
    """None when the lever is off (0), so callers render exactly what they rendered before it existed."""
    if per_column < 0:
        raise T2SError(f"--question-values {per_column}: must be 0 (off) or more")
    return QuestionValueMatcher(per_column) if per_column else None
