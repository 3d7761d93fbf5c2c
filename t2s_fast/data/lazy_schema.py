"""A schema whose tables are parsed only when a prompt needs them.

Some Spider 2.0 databases describe hundreds of tables in megabytes of DDL; parsing all of them with sqlglot
for every prompt would take minutes, and most of them never fit in a prompt anyway. Each entry carries a
cheap size estimate (its raw DDL length) so shortening can rule a level out before parsing or tokenizing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from t2s_fast.schema import Schema, Table, render_table


@dataclass
class SchemaEntry:
    name: str  # the table name shown in the prompt (qualified for BigQuery/Snowflake)
    est_chars: int  # roughly the rendered length; used only to skip levels that cannot fit
    loader: Callable[[], Table]
    match_names: frozenset[str]  # lower-case names under which gold SQL may refer to this table
    # A collapsed family of date-sharded tables (ga_sessions_20170101, ...) matches any of its shard names.
    shard_pattern: re.Pattern | None = None
    _table: Table | None = field(default=None, repr=False)

    def table(self) -> Table:
        if self._table is None:
            self._table = self.loader()
        return self._table

    def matches(self, name: str) -> bool:
        name = name.lower()
        return name in self.match_names or bool(self.shard_pattern and self.shard_pattern.fullmatch(name))


@dataclass
class LazySchema:
    db_id: str
    entries: list[SchemaEntry]
    # the whole schema's text per (sample values, dialect), rendered once (t2s_fast.data.schema_text)
    rendered: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_schema(cls, schema: Schema) -> LazySchema:
        entries = []
        for t in schema.tables:
            entries.append(
                SchemaEntry(
                    name=t.name,
                    est_chars=len(render_table(t)),
                    loader=(lambda t=t: t),
                    match_names=frozenset({t.name.lower(), t.name.split(".")[-1].lower()}),
                    _table=t,
                )
            )
        return cls(db_id=schema.db_id, entries=entries)

    def est_chars(self, entries: Iterable[SchemaEntry] | None = None) -> int:
        entries = self.entries if entries is None else entries
        return sum(e.est_chars + 2 for e in entries)

    def materialize(
        self,
        entries: Iterable[SchemaEntry] | None = None,
        *,
        keep_column: Callable[[Table, str], bool] | None = None,
    ) -> Schema:
        """A plain Schema of the chosen tables (and columns); keys that point outside it are left out."""
        entries = list(self.entries if entries is None else entries)
        tables = [e.table() for e in entries]
        kept_names = {t.name.lower() for t in tables}
        out = []
        for t in tables:
            cols = [c for c in t.columns if keep_column is None or keep_column(t, c.name)]
            col_names = {c.name for c in cols}
            fks = [
                fk
                for fk in t.foreign_keys
                if fk.ref_table.lower() in kept_names and all(c in col_names for c in fk.columns)
            ]
            pk = t.primary_key if all(c in col_names for c in t.primary_key) else []
            out.append(dataclasses.replace(t, columns=cols, foreign_keys=fks, primary_key=pk))
        return Schema(db_id=self.db_id, tables=out)
