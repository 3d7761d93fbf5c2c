"""One question with its gold SQL and the schema it is asked against, before it becomes a chat example."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from t2s_fast.data.lazy_schema import LazySchema


@dataclass
class SourceExample:
    id: str
    source: str  # "spider1" | "spider2"
    db_id: str
    dialect: str  # "sqlite" | "bigquery" | "snowflake"
    question: str
    sql: str  # gold SQL, surrounding whitespace stripped
    schema: LazySchema
    group: str  # split key: examples with the same group always land in the same split (held-out databases)
    external_knowledge: str | None = None
    db_path: Path | None = None  # the SQLite file, when there is one (question-matched values read it)

    def record(self, messages: list[dict[str, str]]) -> dict:
        """The JSONL line written for this example."""
        return {
            "id": self.id,
            "source": self.source,
            "db_id": self.db_id,
            "dialect": self.dialect,
            "question": self.question,
            "sql": self.sql,
            "messages": messages,
        }


@dataclass
class Dropped:
    id: str
    source: str
    db_id: str
    reason: str

    def as_dict(self) -> dict:
        return {"id": self.id, "source": self.source, "db_id": self.db_id, "reason": self.reason}
