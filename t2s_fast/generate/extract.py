"""Pull the SQL out of a model's reply.

Fine-tuned models answer with bare SQL, but base models and early checkpoints wrap it: a ```sql fence, a
sentence before ("Here is the query:") or after ("This query counts ..."), or a stray Qwen3 <think> block
even with thinking disabled. `extract` records which rule fired and whether the SQL differs from the raw
text, so a report can say how often extraction mattered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_THINK_TAG = re.compile(r"</?think>", re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
# Where a query starts: a statement keyword at the start of a line or after a label such as "SQL:".
_SQL_START = re.compile(r"(?im)(?:^|(?<=:)|(?<=:\s))[ \t]*\b(SELECT|WITH|INSERT|UPDATE|DELETE|CREATE|PRAGMA|VALUES)\b")
# Words that may open a line that continues a query after a blank line.
_SQL_CONTINUATION = re.compile(
    r"^(?:SELECT|FROM|WHERE|GROUP|ORDER|HAVING|LIMIT|OFFSET|UNION|INTERSECT|EXCEPT|JOIN|INNER|LEFT|RIGHT|FULL|"
    r"CROSS|NATURAL|ON|AND|OR|NOT|AS|WITH|WINDOW|QUALIFY|CASE|WHEN|THEN|ELSE|END|[(),*]|--)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Extraction:
    sql: str
    method: str  # "plain", "fence", "keyword" or "none" (no SQL found: the cleaned text is returned)
    changed: bool  # whether the SQL differs from the raw reply (ignoring outer whitespace and a final ';')


def _normalize(text: str) -> str:
    return text.strip().rstrip(";").strip()


def _first_statement(text: str) -> str:
    """Text up to the first ';' outside quotes; prose after a blank line ends the query too."""
    out = []
    quote = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == ";":
            break
        elif ch == "\n" and re.match(r"\n[ \t]*\n", text[i:]):
            rest = text[i:].lstrip()
            if rest and not _SQL_CONTINUATION.match(rest):
                break
        out.append(ch)
        i += 1
    return "".join(out).strip()


def extract(text: str) -> Extraction:
    raw = text or ""
    cleaned = _THINK_BLOCK.sub("", raw)
    if "</think>" in cleaned.lower():  # an opened-before-the-reply think block: keep what follows its end
        cleaned = cleaned[cleaned.lower().rfind("</think>") + len("</think>"):]
    cleaned = _THINK_TAG.sub("", cleaned).strip()

    fences = [(lang.lower(), body) for lang, body in _FENCE.findall(cleaned)] if "```" in cleaned else []
    if fences:
        sql_fences = [body for lang, body in fences if lang in ("sql", "sqlite", "") and body.strip()]
        body = (sql_fences or [b for _, b in fences if b.strip()] or [""])[0]
        sql, method = _first_statement(body), "fence"
    else:
        match = _SQL_START.search(cleaned)
        if match is None:
            sql, method = _normalize(cleaned), "none"
        else:
            sql = _first_statement(cleaned[match.start(1):])
            method = "plain" if match.start(1) == 0 or not cleaned[:match.start(1)].strip() else "keyword"
    sql = _normalize(sql)
    changed = sql != _normalize(raw)
    if method == "plain" and changed:
        method = "keyword"  # text after the SQL (or a think block) was cut
    return Extraction(sql=sql, method=method, changed=changed)


def extract_sql(text: str) -> str:
    """The SQL in a model reply (see `extract` for the rules)."""
    return extract(text).sql
