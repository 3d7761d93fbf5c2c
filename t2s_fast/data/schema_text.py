"""The one way a schema becomes the prompt's schema text: `schema_text(schema, dialect, budget, gold=None)`.

`prepare` (training), `eval` (Spider 1.0 and Spider 2.0) and `infer` all call it, so a question is shown the
same schema text, quoted the same way for its dialect (``t2s_fast.schema.quote_identifier``), wherever it is
asked. When the whole schema does not fit the budget, it is shortened level by level (``t2s_fast.data.shorten``
explains the levels), trying them in order until one fits:

    full              every table, every column, sample values (and question-matched values, when given)
    no_sample_values  every table, every column
    with the gold SQL (training): gold_tables, gold_columns, gold_fields; none fits: ``DropExample``
    without it (eval, infer): the leading tables that fit, ``first_<n>_of_<m>_tables``

The budget counts tokens when it has a tokenizer (exact: the text it measures is rendered and tokenized), and
estimates ``CHARS_PER_TOKEN`` characters per token when it has none. A level whose raw size is more than
``SKIP_CHARS_PER_TOKEN`` characters per available token is ruled out without rendering or tokenizing it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from t2s_fast.data.lazy_schema import LazySchema
from t2s_fast.data.shorten import (
    LEVELS,
    DropExample,
    GoldRefs,
    column_keeper,
    gold_refs,
    prune_struct_type,
    used_entries,
)
from t2s_fast.schema import Schema, render_schema

CHARS_PER_TOKEN = 3.0  # the estimate without a tokenizer: conservative for CREATE TABLE text with Qwen's tokenizer
SKIP_CHARS_PER_TOKEN = 12  # no SQL schema text packs more characters than this into one token


def count_tokens(tokenizer, texts: Sequence[str]) -> list[int]:
    """Token counts in one batched call of the fast (Rust) tokenizer."""
    if not texts:
        return []
    enc = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
    return [len(ids) for ids in enc["input_ids"]]


@dataclass
class Budget:
    """How much schema text fits: ``frame(schema text)`` (the text around it too, e.g. the whole rendered
    conversation) may be at most ``max_tokens`` tokens; without a tokenizer, tokens are estimated from
    characters. Sizes are remembered per schema text, so a text measured in a batch is not measured again."""

    max_tokens: int
    tokenizer: object | None = None
    frame: Callable[[str], str] = lambda text: text
    _sizes: dict[str, float] = field(default_factory=dict, repr=False)

    def rules_out(self, est_chars: int) -> bool:
        """True when a text of about ``est_chars`` characters cannot fit (decided without rendering it)."""
        per_token = SKIP_CHARS_PER_TOKEN if self.tokenizer is not None else CHARS_PER_TOKEN
        return est_chars > per_token * self.max_tokens

    def size(self, text: str) -> float:
        if text not in self._sizes:
            self.remember(text, self._measure([self.frame(text)])[0])
        return self._sizes[text]

    def remember(self, text: str, size: float) -> None:
        self._sizes[text] = size

    def _measure(self, framed: list[str]) -> list[float]:
        if self.tokenizer is None:
            return [len(t) / CHARS_PER_TOKEN for t in framed]
        return count_tokens(self.tokenizer, framed)


def measure_many(pairs: Sequence[tuple[Budget, str]]) -> None:
    """Measure many (budget, schema text) pairs sharing one tokenizer in one batched call; each budget remembers
    its size, so `schema_text` does not measure them again."""
    todo = [(b, t) for b, t in pairs if t not in b._sizes]
    if not todo:
        return
    framed = [b.frame(t) for b, t in todo]
    for (b, t), n in zip(todo, todo[0][0]._measure(framed)):
        b.remember(t, n)


@dataclass(frozen=True)
class SchemaText:
    text: str
    level: str  # which level fitted (module docstring)
    size: float | None  # what the budget measured (tokens of the framed text); None without a budget


def whole_text(schema: LazySchema, dialect: str, *, sample_values: bool = True,
               question_values: dict | None = None) -> str:
    """Every table and column; rendered once per (sample values, dialect) unless there are question values."""
    if question_values:  # per question: not remembered
        return render_schema(schema.materialize(), sample_values=sample_values, dialect=dialect,
                             question_values=question_values)
    key = (sample_values, dialect)
    if key not in schema.rendered:
        schema.rendered[key] = render_schema(schema.materialize(), sample_values=sample_values, dialect=dialect)
    return schema.rendered[key]


def first_level_text(schema: LazySchema, dialect: str, budget: Budget | None,
                     question_values: dict | None = None) -> str | None:
    """The text of level ``full``, or None when the budget rules it out by size alone."""
    if budget is not None and budget.rules_out(schema.est_chars()):
        return None
    return whole_text(schema, dialect, question_values=question_values)


def schema_text(schema: Schema | LazySchema, dialect: str, budget: Budget | None, gold: str | None = None, *,
                question_values: dict | None = None) -> SchemaText:
    """The prompt's schema text at the first level that fits ``budget`` (None: no limit, level ``full``).

    ``gold``: the gold SQL (training only), which keeps the tables and columns it reads when the schema must be
    shortened; without it the leading tables that fit are kept. ``question_values``: {(table, column): values
    matching the question} (``t2s_fast.schema_values``), shown at level ``full``. Raises ``DropExample`` when
    ``gold`` is given and no level fits."""
    lazy = schema if isinstance(schema, LazySchema) else LazySchema.from_schema(schema)
    if budget is None:
        return SchemaText(whole_text(lazy, dialect, question_values=question_values), "full", None)
    refs, tried = None, []
    for level in LEVELS if gold is not None else LEVELS[:2]:
        if level.startswith("gold") and refs is None:
            refs = gold_refs(gold, dialect)
        if level == "full":
            text = first_level_text(lazy, dialect, budget, question_values)
        else:
            text = _shorter_text(lazy, dialect, level, budget, refs)
            text = text if text and text.strip() else None
        if text is None:
            continue
        size = budget.size(text)
        if size <= budget.max_tokens:
            return SchemaText(text, level, size)
        if level != "full":  # the reason lists the shortened levels tried (as it always has)
            tried.append(f"{level}={size}")
    if gold is None:
        return _leading_tables(lazy, dialect, budget)
    raise _drop(lazy, refs, tried, budget.max_tokens)


def _shorter_text(schema: LazySchema, dialect: str, level: str, budget: Budget, refs: GoldRefs | None) -> str | None:
    """The text of a level after ``full``, or None when it is ruled out (too big, empty, or the same as a level
    already tried)."""
    if level == "no_sample_values":
        return None if budget.rules_out(schema.est_chars()) else whole_text(schema, dialect, sample_values=False)
    entries = used_entries(schema, refs)
    if not entries:
        return None
    if level == "gold_tables":
        if budget.rules_out(schema.est_chars(entries)) or len(entries) == len(schema.entries):
            return None  # same as no_sample_values, already tried
        return render_schema(schema.materialize(entries), sample_values=False, dialect=dialect)
    narrowed = schema.materialize(entries, keep_column=column_keeper(refs))
    if level == "gold_columns":
        return render_schema(narrowed, sample_values=False, dialect=dialect)
    if not any("struct<" in c.type.lower() for t in narrowed.tables for c in t.columns):
        return None  # no nested types: same as gold_columns, already tried
    for t in narrowed.tables:
        t.columns = [dataclasses.replace(c, type=prune_struct_type(c.type, refs.identifiers)) for c in t.columns]
    return render_schema(narrowed, sample_values=False, dialect=dialect)


def _leading_tables(schema: LazySchema, dialect: str, budget: Budget) -> SchemaText:
    """Without the gold SQL: the leading tables whose estimated size fits (at least one), no sample values."""
    max_chars = int(CHARS_PER_TOKEN * budget.max_tokens)
    kept, used = [], 0
    for entry in schema.entries:
        if used + entry.est_chars + 2 > max_chars:
            break
        kept.append(entry)
        used += entry.est_chars + 2
    kept = kept or schema.entries[:1]
    text = render_schema(schema.materialize(kept), sample_values=False, dialect=dialect)
    return SchemaText(text, f"first_{len(kept)}_of_{len(schema.entries)}_tables", None)


def _drop(schema: LazySchema, refs: GoldRefs | None, tried: list[str], max_tokens: int) -> DropExample:
    if refs is not None and not used_entries(schema, refs):
        return DropExample("the gold SQL names no table of the schema, and the whole schema is too long")
    if tried:
        return DropExample(f"schema too long even at the shortest level (tokens per level tried: {', '.join(tried)};"
                           f" max {max_tokens})")
    return DropExample(f"schema too long at every level (max {max_tokens} tokens)")
