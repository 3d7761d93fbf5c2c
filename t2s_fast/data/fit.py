"""Prepare's fitting: each example's whole conversation (prompt + gold SQL, rendered with the chat template)
within ``max_seq_length`` tokens, its schema text from `t2s_fast.data.schema_text.schema_text` with the gold
SQL, so training sees the schema text eval and infer build for the same question.

The whole-schema level of every example is measured in one batched tokenizer call; only the examples that do
not fit there are shortened one by one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from t2s_fast.data.example import SourceExample
from t2s_fast.data.schema_text import Budget, SchemaText, first_level_text, measure_many, schema_text
from t2s_fast.data.shorten import DropExample
from t2s_fast.prompt import build_messages, render_conversation


@dataclass
class Fitted:
    messages: list[dict[str, str]]
    n_tokens: int
    level: str
    schema_tables: int


def conversation_messages(ex: SourceExample, schema_text: str) -> list[dict[str, str]]:
    return build_messages(dialect=ex.dialect, db_id=ex.db_id, schema=schema_text, question=ex.question,
                          external_knowledge=ex.external_knowledge, sql=ex.sql)


class SchemaFitter:
    """Fits examples into ``max_tokens`` tokens of conversation, counting the question-matched values it shows."""

    def __init__(self, tokenizer, max_tokens: int, question_values=None):
        """``question_values``: a ``t2s_fast.schema_values.QuestionValueMatcher`` (the --question-values
        lever) whose matches join the sample values at level ``full``; None = off."""
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.question_values = question_values
        self.values_stats = {"examples_with_values": 0, "values": 0, "seconds": 0.0}

    def budget(self, ex: SourceExample) -> Budget:
        """The whole conversation with a schema text, in tokens, within max_tokens."""
        return Budget(self.max_tokens, self.tokenizer,
                      frame=lambda text: render_conversation(self.tokenizer, conversation_messages(ex, text)))

    def _question_matches(self, ex: SourceExample, budget: Budget) -> dict:
        if (self.question_values is None or ex.db_path is None or ex.dialect != "sqlite"
                or budget.rules_out(ex.schema.est_chars())):  # level full is out: its values are never shown
            return {}
        t0 = time.perf_counter()
        matches = self.question_values.match(ex.db_path, ex.question)
        self.values_stats["seconds"] += time.perf_counter() - t0
        if matches:
            self.values_stats["examples_with_values"] += 1
            self.values_stats["values"] += sum(len(v) for v in matches.values())
        return matches

    def fit_all(self, examples: Sequence[SourceExample]) -> list[Fitted | DropExample]:
        """Each example fitted, or the DropExample saying why it cannot be."""
        budgets = [self.budget(ex) for ex in examples]
        matches = [self._question_matches(ex, b) for ex, b in zip(examples, budgets)]
        firsts = [first_level_text(ex.schema, ex.dialect, b, m) for ex, b, m in zip(examples, budgets, matches)]
        measure_many([(b, t) for b, t in zip(budgets, firsts) if t is not None])  # one batched call
        out: list[Fitted | DropExample] = []
        for ex, b, m in zip(examples, budgets, matches):
            try:
                out.append(self._fitted(ex, schema_text(ex.schema, ex.dialect, b, ex.sql, question_values=m)))
            except DropExample as exc:
                out.append(exc)
        return out

    def _fitted(self, ex: SourceExample, st: SchemaText) -> Fitted:
        tables = len(ex.schema.entries) if st.level == "full" else st.text.count("CREATE TABLE ")
        return Fitted(conversation_messages(ex, st.text), int(st.size), st.level, tables)
