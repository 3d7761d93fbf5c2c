"""One model for a report's sections, and its two formatters: Markdown (to read or paste) and HTML (one
self-contained page).

A report module says once what a section holds (a heading, a paragraph, bullets, a table, a figure); the
formatters say how each block looks in each medium. So report.md and report.html cannot drift apart: a figure
added to one is in the other. The one difference by design is the figure: HTML shows the chart, Markdown the
figure's table where it has one (a chart cannot be pasted).

Inline text is a ``str`` (plain), a ``Code``, a ``Bold``, or a list of those, concatenated.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Bold:
    text: Inline


@dataclass(frozen=True)
class Break:
    """A line break (HTML); a space in Markdown, where a table cell or bullet is one line."""


Inline = Union[str, Code, Bold, Break, list]


@dataclass
class Cell:
    """A table cell: ``num`` right-aligns it (HTML); ``mark`` colours it ("ok" / "bad"); ``pre`` keeps its
    line breaks (SQL)."""

    text: Inline
    num: bool = False
    mark: str | None = None
    pre: Inline | None = None


@dataclass
class Heading:
    text: Inline
    level: int = 2


@dataclass
class Paragraph:
    text: Inline


@dataclass
class Bullets:
    items: list[Inline]


@dataclass
class Note:
    """A highlighted box of remarks the reader must not miss (missing databases, questions not executed)."""

    items: list[list[Inline]]  # each item: its lines


@dataclass
class Table:
    header: list[Inline]
    rows: list[list[Cell | Inline]]
    caption: Inline | None = None  # a sentence above the table


@dataclass
class Figure:
    """A chart under its own heading. ``plot`` returns the base64 PNG; it runs only when HTML is rendered with
    plots. ``table``: what Markdown shows in the chart's place (None: the section is HTML-only). ``heading``:
    False for a chart that belongs to the section above it."""

    title: str
    id: str
    plot: Callable[[], str]
    table: Table | None = None
    heading: bool = True


@dataclass
class QuestionList:
    """Questions with each model's SQL and verdict: nested bullets in Markdown (the first ``md_limit``), a table
    in HTML (every row). ``columns``: (key in a row's "results", the column's name)."""

    rows: list[dict]
    columns: list[tuple[str, str]]
    md_limit: int = 50


Block = Union[Heading, Paragraph, Bullets, Note, Table, Figure, QuestionList]


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)


# ---------------------------------------------------------------- Markdown
def md_escape(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_inline(x: Inline, *, in_table: bool = False) -> str:
    if isinstance(x, list):
        return "".join(md_inline(p, in_table=in_table) for p in x)
    if isinstance(x, Code):
        return f"`{md_escape(x.text) if in_table else x.text}`"
    if isinstance(x, Bold):
        return f"**{md_inline(x.text, in_table=in_table)}**"
    if isinstance(x, Break):
        return " "
    return md_escape(x) if in_table else str(x)


def _md_cell(c) -> str:
    return md_inline(c.text if isinstance(c, Cell) else c, in_table=True)


def _md_table(t: Table) -> list[str]:
    out = [md_inline(t.caption), ""] if t.caption is not None else []
    out += ["| " + " | ".join(md_inline(h, in_table=True) for h in t.header) + " |",
            "|" + "---|" * len(t.header)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    return out


def _md_questions(q: QuestionList) -> list[str]:
    out = []
    for row in q.rows[:q.md_limit]:
        out.append(f"- `{row['qid']}` ({row['db_id']}, {row.get('hardness')}): {md_escape(row['question'])}")
        out.append(f"  - gold: `{md_escape(row.get('gold'))}`")
        names = dict(q.columns)
        for key, res in row["results"].items():
            mark = "✓" if res["match"] else "✗"
            out.append(f"  - {mark} {names.get(key, key)}: `{md_escape(res['sql'])}`")
    if len(q.rows) > q.md_limit:
        out.append(f"- ... {len(q.rows) - q.md_limit} more in report.html / report.json")
    return out


def _md_block(b) -> list[str]:
    if isinstance(b, Heading):
        return ["#" * b.level + " " + md_inline(b.text)]
    if isinstance(b, Paragraph):
        return [md_inline(b.text)]
    if isinstance(b, Bullets):
        return [f"- {md_inline(item)}" for item in b.items]
    if isinstance(b, Note):
        out = []
        for item in b.items:
            out += [md_inline(line) for line in item] + [""]
        return out[:-1]
    if isinstance(b, Table):
        return _md_table(b)
    if isinstance(b, Figure):
        if b.table is None:
            return []
        return ([f"## {b.title}", ""] if b.heading else []) + _md_table(b.table)
    if isinstance(b, QuestionList):
        return _md_questions(b)
    raise TypeError(f"not a report block: {b!r}")


def to_markdown(doc: Document) -> str:
    out = [f"# {doc.title}"]
    for b in doc.blocks:
        lines = _md_block(b)
        if lines:
            out += [""] + lines
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- HTML
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right} .ok{background:#e6f4ea} .bad{background:#fce8e6}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em} pre{white-space:pre-wrap;margin:0}
.note{background:#fff8e1;border:1px solid #f0d080;padding:.6em 1em;border-radius:4px}
img.plot{max-width:100%;border:1px solid #eee}
"""


def e(text) -> str:
    return html.escape("" if text is None else str(text))


def html_inline(x: Inline) -> str:
    if isinstance(x, list):
        return "".join(html_inline(p) for p in x)
    if isinstance(x, Code):
        return f"<code>{e(x.text)}</code>"
    if isinstance(x, Bold):
        return f"<b>{html_inline(x.text)}</b>"
    if isinstance(x, Break):
        return "<br>"
    return e(x)


def _html_cell(c) -> str:
    c = c if isinstance(c, Cell) else Cell(c)
    classes = " ".join(k for k in ("num" if c.num else "", c.mark or "") if k)
    attr = f" class='{classes}'" if classes else ""
    body = html_inline(c.text) + (f"<pre>{html_inline(c.pre)}</pre>" if c.pre is not None else "")
    return f"<td{attr}>{body}</td>"


def _html_table(t: Table) -> str:
    caption = f"<p>{html_inline(t.caption)}</p>" if t.caption is not None else ""
    head = "<tr>" + "".join(f"<th>{html_inline(h)}</th>" for h in t.header) + "</tr>"
    rows = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in t.rows)
    return f"{caption}<table>{head}{rows}</table>"


def _html_questions(q: QuestionList) -> str:
    if not q.rows:
        return "<p>None.</p>"
    rows = []
    for row in q.rows:
        cells = [Cell([Code(row["qid"]), f" {row['db_id']} ({row.get('hardness')})", Break(), row["question"]]),
                 Cell("", pre=row.get("gold"))]
        for key, _ in q.columns:
            res = row["results"].get(key)
            if res is None:
                cells.append(Cell(""))
                continue
            verdict = "✓ match" if res["match"] else "✗ " + (res.get("error_kind") or "wrong result")
            cells.append(Cell(Bold(verdict), mark="ok" if res["match"] else "bad", pre=res["sql"]))
        rows.append(cells)
    return _html_table(Table(["question", "gold"] + [name for _, name in q.columns], rows))


def _html_block(b, plots: bool) -> str:
    if isinstance(b, Heading):
        return f"<h{b.level}>{html_inline(b.text)}</h{b.level}>"
    if isinstance(b, Paragraph):
        return f"<p>{html_inline(b.text)}</p>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{html_inline(item)}</li>" for item in b.items) + "</ul>"
    if isinstance(b, Note):
        return "<div class='note'>" + "<br>".join(" ".join(html_inline(line) for line in item)
                                                    for item in b.items) + "</div>"
    if isinstance(b, Table):
        return _html_table(b)
    if isinstance(b, Figure):
        if not plots:
            return ""
        heading = f"<h2>{e(b.title)}</h2>" if b.heading else ""
        return f"{heading}<img class='plot' id='{b.id}' alt='{e(b.title)}' src='data:image/png;base64,{b.plot()}'>"
    if isinstance(b, QuestionList):
        return _html_questions(b)
    raise TypeError(f"not a report block: {b!r}")


def to_html(doc: Document, *, plots: bool = True) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(doc.title)}</title>"
             f"<style>{CSS}</style></head><body>", f"<h1>{e(doc.title)}</h1>"]
    parts += [p for p in (_html_block(b, plots) for b in doc.blocks) if p]
    parts.append("</body></html>")
    return "\n".join(parts)
