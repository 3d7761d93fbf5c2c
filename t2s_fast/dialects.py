"""The SQL dialects' rules, in one place: which dialect a Spider 2.0 question is in, how each dialect quotes a
name in the prompt's schema text, and where its SQL can run.

The schema renderer (`t2s_fast.schema`) quotes through `quote_identifier`, for training, eval and infer alike;
the Spider 2.0 reader (`t2s_fast.data.spider2`) and the eval questions (`t2s_fast.evaluate.questions`) take a
question's dialect from `dialect_of`.
"""

from __future__ import annotations

from t2s_fast.errors import T2SError

# Why a question of this dialect is not executed here (only SQLite runs locally).
CLOUD_REASON = {"bigquery": "a BigQuery question: it runs only on Google BigQuery (cloud credentials), not locally",
                "snowflake": "a Snowflake question: it runs only on Snowflake (cloud account), not locally"}


def dialect_of(instance_id: str) -> str:
    """A Spider 2.0 question's dialect from its id prefix: ``local*`` SQLite, ``bq*``/``ga*`` BigQuery, ``sf*``
    Snowflake (Spider2-snow questions are all Snowflake, whatever their id)."""
    if instance_id.startswith("local"):
        return "sqlite"
    if instance_id.startswith(("bq", "ga")):
        return "bigquery"
    if instance_id.startswith("sf"):
        return "snowflake"
    raise T2SError(f"Spider 2.0 instance_id {instance_id!r}: unknown prefix (expected local, bq, ga or sf)")


def _is_plain(name: str, *, allow_dots: bool = True) -> bool:
    extra = "_." if allow_dots else "_"
    return bool(name) and (name[0].isalpha() or name[0] == "_") and all(c.isalnum() or c in extra for c in name)


def quote_identifier(name: str, dialect: str | None = None) -> str:
    """Quote an identifier the way ``dialect`` needs it, and only when it needs it, so names stay readable.

    - BigQuery: backticks around the whole path (`bigquery-public-data.dataset.table` has hyphens).
    - Snowflake: unquoted names fold to upper case, so every part of a dotted name that is not already
      upper case (or has other characters) is double-quoted, as the gold SQL must write it.
    - SQLite (default): double quotes when the name is not a plain identifier.
    """
    d = (dialect or "sqlite").lower()
    if d == "bigquery":
        return name if _is_plain(name) else "`" + name.replace("`", "\\`") + "`"
    if d == "snowflake":
        return ".".join(
            part if _is_plain(part, allow_dots=False) and part == part.upper() else '"' + part.replace('"', '""') + '"'
            for part in name.split(".")
        )
    return name if _is_plain(name) else '"' + name.replace('"', '""') + '"'
