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


# A query is unfinished when its text so far ends like this: a blank line there cannot end it.
_OPEN_END = re.compile(r"(?:[,(=<>+\-*/|]|\b(?:SELECT|FROM|WHERE|AND|OR|NOT|ON|JOIN|BY|AS|IN|HAVING|UNION|ALL|"
                       r"INTERSECT|EXCEPT|WITH|SET|VALUES|CASE|WHEN|THEN|ELSE|LIKE|BETWEEN|DISTINCT))\s*$",
                       re.IGNORECASE)
# A common table expression's next entry: `name AS (` or `name(col, ...) AS (`.
_CTE_ENTRY = re.compile(r"^[\w\"`]+\s*(?:\([^)]*\)\s*)?AS\s*\(", re.IGNORECASE)


def _blank_line_ends_query(so_far: str, rest: str, depth: int) -> bool:
    """At a blank line: does the query end here? Not inside parentheses (a WITH query's bodies), not after a
    comma, operator or keyword that needs more, and not before a line that continues SQL."""
    if not rest or depth > 0 or _OPEN_END.search(so_far):
        return False
    return not (_SQL_CONTINUATION.match(rest) or _CTE_ENTRY.match(rest))


def _first_statement(text: str) -> str:
    """Text up to the first ';' outside quotes; prose after a blank line ends the query too (see
    `_blank_line_ends_query`)."""
    out = []
    quote = None
    depth = 0
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
        elif ch in "()":
            depth = max(0, depth + (1 if ch == "(" else -1))
        elif ch == "\n" and re.match(r"\n[ \t]*\n", text[i:]):
            if _blank_line_ends_query("".join(out), text[i:].lstrip(), depth):
                break
        out.append(ch)
        i += 1
    return "".join(out).strip()


def _unfenced_sql(cleaned: str) -> tuple[str, str]:
    """(sql, method) of text without a usable fence: from the first statement keyword, else the text itself."""
    match = _SQL_START.search(cleaned)
    if match is None:
        return _normalize(cleaned), "none"
    sql = _first_statement(cleaned[match.start(1):])
    return sql, ("plain" if match.start(1) == 0 or not cleaned[:match.start(1)].strip() else "keyword")


def extract(text: str) -> Extraction:
    raw = text or ""
    cleaned = _THINK_BLOCK.sub("", raw)
    if "</think>" in cleaned.lower():  # an opened-before-the-reply think block: keep what follows its end
        cleaned = cleaned[cleaned.lower().rfind("</think>") + len("</think>"):]
    cleaned = _THINK_TAG.sub("", cleaned).strip()

    fences = [(lang.lower(), body) for lang, body in _FENCE.findall(cleaned)] if "```" in cleaned else []
    fences = [(lang, body) for lang, body in fences if body.strip()]
    with_sql = [body for lang, body in fences if _SQL_START.search(body)]
    sql_tagged = [body for lang, body in fences if lang in ("sql", "sqlite")]
    if with_sql or sql_tagged:
        sql, method = _first_statement((with_sql or sql_tagged)[0]), "fence"
    else:
        # No fence holds SQL: a reply that ends in a lone closing ``` (the SQL before it, the opening fence
        # never written), or one whose fence holds prose; the SQL is outside the fences, if anywhere.
        sql, method = _unfenced_sql(cleaned.replace("```", "\n\n") if "```" in cleaned else cleaned)
        if method == "none" and fences:
            sql, method = _first_statement(fences[0][1]), "fence"
    sql = _normalize(sql)
    changed = sql != _normalize(raw)
    if method == "plain" and changed:
        method = "keyword"  # text after the SQL (or a think block) was cut
    return Extraction(sql=sql, method=method, changed=changed)


def extract_sql(text: str) -> str:
    """The SQL in a model reply (see `extract` for the rules)."""
    return extract(text).sql
