"""Result comparison for execution accuracy, ported rule by rule from the official evaluators.

Spider 1.0 -- the test-suite evaluation (taoyds/test-suite-sql-eval, ``exec_eval.py``; it is what
``evaluation.py --etype exec`` calls and what published Spider EX numbers use):

* ``result_eq``: two empty results are equal; different row counts or column counts are not; otherwise the
  results match if some permutation of the predicted columns makes the rows equal -- as a sequence when order
  matters, as a multiset (bag) of rows otherwise. Column names are ignored.
* ``quick_rej``: before trying permutations, each row is "unordered" (its values sorted by
  ``str(value) + str(type(value))``); differing bags of unordered rows reject at once.
* ``get_constraint_permutation``: with more than 3 columns, 20 sampled predicted rows prune the column
  permutations to those where every sampled value occurs in the candidate gold column.
* Values are compared with Python ``==`` (so ``1 == 1.0``; ``None`` only equals ``None``); no float tolerance.
* ``eval_exec_match``: order matters only when the gold SQL contains ORDER BY (``'order by' in g_str.lower()``);
  DISTINCT is removed from both queries first (``parse.remove_distinct`` drops every ``distinct`` token,
  including inside ``COUNT(DISTINCT x)``) unless ``--keep_distinct``; ``postprocess`` joins ``> =``, ``< =``,
  ``! =``; ``replace_cur_year`` turns ``YEAR(CURDATE())`` into 2020.

Spider 2.0 -- xlang-ai/Spider2, ``spider2-lite/evaluation_suite/evaluate.py``:

* ``compare_pandas_table``: the gold table is restricted to ``condition_cols`` (column indices) when given;
  every remaining gold column vector must equal *some* predicted column vector (a predicted column may serve
  several gold columns; extra predicted columns and all column names are ignored).
* ``vectors_match``: with ``ignore_order`` both vectors are sorted by ``(x is None, str(x), is_number)``;
  lengths must agree; two missing values (NaN) match; two numbers match within ``math.isclose(abs_tol=1e-2)``;
  anything else must be ``==``.
* ``compare_multi_pandas_table``: with several gold CSVs (``<id>_a.csv``, ``_b`` ...) any one matching is
  enough; ``condition_cols`` is then either one list per gold table or one list shared by all.
* Both sides are read back from CSV by pandas (``pd.read_csv``), so a predicted result is first passed through
  the same text round trip here (``table_from_rows``): per column, numbers if every non-empty cell parses as a
  number, else text; empty cells are missing. pandas is not a dependency; the csv module does the reading.
"""

from __future__ import annotations

import csv
import math
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from itertools import product
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Tokenizer, TokenType

# ---------------------------------------------------------------------------------------------------------
# Spider 1.0 (test-suite-sql-eval exec_eval.py)


def _unorder_row(row: tuple) -> tuple:
    return tuple(sorted(row, key=lambda x: str(x) + str(type(x))))


def _quick_rej(result1: list[tuple], result2: list[tuple], order_matters: bool) -> bool:
    s1 = [_unorder_row(row) for row in result1]
    s2 = [_unorder_row(row) for row in result2]
    if order_matters:
        return s1 == s2
    return set(s1) == set(s2)


def _multiset_eq(l1: list, l2: list) -> bool:
    if len(l1) != len(l2):
        return False
    counts: dict = defaultdict(int)
    for e in l1:
        counts[e] += 1
    for e in l2:
        counts[e] -= 1
        if counts[e] < 0:
            return False
    return True


def _constraint_permutations(tab1_sets_by_columns: list[set], result2: list[tuple]):
    num_cols = len(result2[0])
    perm_constraints = [set(range(num_cols)) for _ in range(num_cols)]
    if num_cols <= 3:
        return product(*perm_constraints)
    # 20 sampled rows prune impossible column mappings (exec_eval.get_constraint_permutation). The pruning
    # only removes mappings that cannot match, so the answer does not depend on the sample; a fixed seed
    # keeps the work reproducible.
    rng = random.Random(0)
    for _ in range(20):
        row = rng.choice(result2)
        for tab1_col in range(num_cols):
            for tab2_col in set(perm_constraints[tab1_col]):
                if row[tab2_col] not in tab1_sets_by_columns[tab1_col]:
                    perm_constraints[tab1_col].remove(tab2_col)
    return product(*perm_constraints)


def spider1_results_match(gold_rows: Sequence[tuple], pred_rows: Sequence[tuple], *, order_matters: bool) -> bool:
    """test-suite-sql-eval ``result_eq(gold, pred, order_matters)``, rule for rule (see the module docstring)."""
    result1 = [tuple(r) for r in gold_rows]
    result2 = [tuple(r) for r in pred_rows]
    if len(result1) == 0 and len(result2) == 0:
        return True
    if len(result1) != len(result2):
        return False
    num_cols = len(result1[0])
    if len(result2[0]) != num_cols:
        return False
    if not _quick_rej(result1, result2, order_matters):
        return False
    tab1_sets_by_columns = [{row[i] for row in result1} for i in range(num_cols)]
    for perm in _constraint_permutations(tab1_sets_by_columns, result2):
        if len(perm) != len(set(perm)):
            continue
        if num_cols == 1:
            result2_perm = result2
        else:
            result2_perm = [tuple(element[i] for i in perm) for element in result2]
        if order_matters:
            if result1 == result2_perm:
                return True
        elif set(result1) == set(result2_perm) and _multiset_eq(result1, result2_perm):
            return True
    return False


_TOKENIZER = Tokenizer()


def strip_distinct(sql: str) -> str:
    """Remove every DISTINCT keyword token, as ``parse.remove_distinct`` does (it drops each sqlparse token
    whose text is ``distinct``, so ``COUNT(DISTINCT x)`` becomes ``COUNT( x)`` too).

    sqlglot's tokenizer finds the keyword tokens (never inside a string literal or a quoted identifier); they
    are cut out of the original text, which is otherwise kept byte for byte. Text that cannot be tokenized is
    returned unchanged (it will fail to execute anyway).
    """
    try:
        tokens = _TOKENIZER.tokenize(sql)
    except SqlglotError:
        return sql
    spans = [(t.start, t.end + 1) for t in tokens if t.token_type == TokenType.DISTINCT]
    if not spans:
        return sql
    out, pos = [], 0
    for start, end in spans:
        out.append(sql[pos:start])
        pos = end
    out.append(sql[pos:])
    return "".join(out)


def gold_has_order_by(sql: str, dialect: str = "sqlite") -> bool:
    """Whether row order matters: the gold SQL has an ORDER BY anywhere (exec_eval.eval_exec_match uses
    ``'order by' in g_str.lower()``, which also fires for an ORDER BY in a subquery or window). sqlglot finds
    the same clauses without being fooled by spacing or by 'order by' inside a string literal; text sqlglot
    cannot parse falls back to the official substring test."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError:
        return "order by" in sql.lower()
    return tree.find(exp.Order) is not None


_CUR_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)


def official_postprocess(sql: str) -> str:
    """exec_eval.postprocess (``> =`` -> ``>=`` ...) and exec_eval.replace_cur_year, applied to both queries."""
    sql = sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")
    return _CUR_YEAR.sub("2020", sql)


# ---------------------------------------------------------------------------------------------------------
# Spider 2.0 (Spider2 evaluate.py)

SPIDER2_ABS_TOL = 1e-2

Table = list[list]  # a table as a list of column vectors


def _is_missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _sort_key(x):
    # evaluate.vectors_match sorts by (x is None, str(x), isinstance(x, (int, float))); pandas holds a missing
    # cell as NaN, never None, so a missing value sorts as str(nan) == 'nan', a float.
    if _is_missing(x):
        return (False, "nan", True)
    return (False, str(x), isinstance(x, (int, float)))


def _vectors_match(v1: list, v2: list, tol: float, ignore_order: bool) -> bool:
    if ignore_order:
        v1, v2 = sorted(v1, key=_sort_key), sorted(v2, key=_sort_key)
    if len(v1) != len(v2):
        return False
    for a, b in zip(v1, v2):
        if _is_missing(a) and _is_missing(b):
            continue
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            if _is_missing(a) or _is_missing(b) or not math.isclose(float(a), float(b), abs_tol=tol):
                return False
        elif a != b:
            return False
    return True


def spider2_results_match(
    gold_table: Table,
    pred_table: Table,
    *,
    condition_cols: Sequence[int] | None = None,
    ignore_order: bool = True,
    abs_tol: float = SPIDER2_ABS_TOL,
) -> bool:
    """Spider2 ``compare_pandas_table(pred, gold, condition_cols, ignore_order)`` on column-vector tables."""
    gold_cols = [gold_table[i] for i in condition_cols] if condition_cols else list(gold_table)
    return all(any(_vectors_match(g, p, abs_tol, ignore_order) for p in pred_table) for g in gold_cols)


def spider2_match_multi(
    pred_table: Table,
    gold_tables: Sequence[Table],
    *,
    condition_cols=None,
    ignore_order: bool = True,
    abs_tol: float = SPIDER2_ABS_TOL,
) -> bool:
    """Spider2 evaluate.py: one gold CSV -> ``compare_pandas_table``; several -> ``compare_multi_pandas_table``
    (any gold matching is enough; ``condition_cols`` one list per gold, or one list shared by all)."""
    if not gold_tables:
        return False
    if len(gold_tables) == 1:
        cols = condition_cols
        if cols and all(isinstance(c, list) for c in cols):  # [[...]] written for a single gold
            cols = cols[0]
        return spider2_results_match(gold_tables[0], pred_table, condition_cols=cols or None,
                                     ignore_order=ignore_order, abs_tol=abs_tol)
    if condition_cols in ([], [[]], [None], None):
        per_gold = [[] for _ in gold_tables]
    elif not all(isinstance(c, list) for c in condition_cols):
        per_gold = [list(condition_cols) for _ in gold_tables]
    else:
        per_gold = list(condition_cols) + [[]] * (len(gold_tables) - len(condition_cols))
    return any(
        spider2_results_match(gold, pred_table, condition_cols=per_gold[i] or None, ignore_order=ignore_order,
                              abs_tol=abs_tol)
        for i, gold in enumerate(gold_tables)
    )


def _parse_number(text: str):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value


_BOOL_TEXT = {"true": True, "false": False}


def _infer_column(cells: list[str]) -> list:
    """One CSV column as pandas.read_csv types it: empty -> missing; all numbers -> numbers (ints become
    floats when the column also holds floats or missing cells); all True/False -> bools; otherwise text."""
    present = [c for c in cells if c != ""]
    if present and all(c.lower() in _BOOL_TEXT for c in present) and any(c != "" for c in cells):
        if len(present) == len(cells):
            return [_BOOL_TEXT[c.lower()] for c in cells]
        return [_BOOL_TEXT[c.lower()] if c else None for c in cells]
    numbers = [_parse_number(c) if c else None for c in cells]
    if all(n is not None for n, c in zip(numbers, cells) if c):
        if any(isinstance(n, float) for n in numbers) or len(present) < len(cells):
            return [float(n) if n is not None else None for n in numbers]
        return numbers
    return [c if c else None for c in cells]


def table_from_csv_text(rows: list[list[str]]) -> tuple[list[str], Table]:
    """(header, column vectors) from already-split CSV rows (first row = header)."""
    if not rows:
        return [], []
    header, body = rows[0], rows[1:]
    width = len(header)
    columns = [[(r[i] if i < len(r) else "") for r in body] for i in range(width)]
    return header, [_infer_column(col) for col in columns]


def read_csv_table(path: str | Path) -> tuple[list[str], Table]:
    """A gold (or predicted) result CSV as (header, column vectors), typed as pandas would type it."""
    with open(path, newline="", encoding="utf-8") as fh:
        return table_from_csv_text(list(csv.reader(fh)))


def _csv_cell(value) -> str:
    # What DataFrame.to_csv writes: missing -> empty, bytes as their repr, numbers via str().
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bytes):
        return repr(value)
    return str(value)


def table_from_rows(columns: Sequence[str], rows: Sequence[tuple]) -> Table:
    """An executed result (rows) as column vectors after the to_csv/read_csv round trip Spider2 applies to
    predicted results (evaluate.get_sqlite_result writes the result to CSV, then pd.read_csv reads it)."""
    width = len(columns) if columns else (len(rows[0]) if rows else 0)
    return [_infer_column([_csv_cell(row[i]) for row in rows]) for i in range(width)]
