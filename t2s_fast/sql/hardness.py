"""Spider hardness (easy / medium / hard / extra) of a gold query, by the official counting rules.

Ported from the Spider evaluator (taoyds/spider and taoyds/test-suite-sql-eval ``evaluation.py``:
``count_component1``, ``count_component2``, ``count_others``, ``Evaluator.eval_hardness``), which counts on
the dict that ``process_sql.get_sql`` builds. Here the same quantities are read from a sqlglot AST. The
official parser's view of a query, reproduced faithfully (quirks included):

* Only the top-level query is counted. For ``A UNION B`` the top level is ``A``; ``B`` is one nested query (an
  ORDER BY / LIMIT written after the set operation belongs to ``B`` in the official parse, so it is not
  counted). A subquery in FROM is a table unit, not a nested query.
* A condition is the flat list ``[cond, 'and'/'or', cond, ...]`` of the ON clauses (all joins), WHERE and
  HAVING; a ``cond_unit`` is ``(not_op, op_id, val_unit, val1, val2)``; ``not_op`` is set by ``NOT IN``,
  ``NOT LIKE``, ``NOT BETWEEN``.
* component1: +1 each for WHERE, GROUP BY, ORDER BY, LIMIT; + (table units - 1) for joins; +1 per OR and
  per LIKE in ON/WHERE/HAVING.
* component2: the nested queries: subqueries used as a condition's value (``x IN (SELECT ..)``,
  ``x > (SELECT ..)``) in ON/WHERE/HAVING, plus INTERSECT / UNION / EXCEPT.
* others: +1 if more than one aggregate, +1 if more than one SELECT item, +1 if more than one WHERE
  condition, +1 if more than one GROUP BY column. The aggregate count (``count_agg``) looks at element 0 of
  each unit, so: a SELECT item counts when it starts with MAX/MIN/COUNT/SUM/AVG; ORDER BY counts the
  aggregates of both operands of each ``val_unit``; for WHERE and HAVING conditions element 0 is ``not_op``,
  so NOT-conditions count (never aggregates); and every 'and'/'or' in HAVING counts too (a non-empty string
  is "not 0").
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

HARDNESS_LEVELS = ("easy", "medium", "hard", "extra")
_AGGS = (exp.Max, exp.Min, exp.Count, exp.Sum, exp.Avg)
_ARITH = (exp.Add, exp.Sub, exp.Mul, exp.Div)


@dataclass
class _Cond:
    """One flattened condition list: its leaves (cond_units) and its connectives."""

    leaves: list[exp.Expression]
    n_and: int = 0
    n_or: int = 0

    @property
    def length(self) -> int:  # len(sql['where']) in the official dict
        return len(self.leaves) + self.n_and + self.n_or


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _flatten(node: exp.Expression | None) -> _Cond:
    cond = _Cond(leaves=[])
    if node is None:
        return cond

    def walk(n):
        n = _unparen(n)
        if isinstance(n, (exp.And, exp.Or)):
            walk(n.this)
            if isinstance(n, exp.And):
                cond.n_and += 1
            else:
                cond.n_or += 1
            walk(n.expression)
        else:
            cond.leaves.append(n)

    walk(node)
    return cond


def _negated(leaf: exp.Expression) -> tuple[bool, exp.Expression]:
    """(not_op, inner predicate): ``NOT x IN ..``/``x NOT LIKE ..`` set not_op (sqlglot writes NOT LIKE as
    Like(negate=True))."""
    if isinstance(leaf, exp.Not):
        return True, _unparen(leaf.this)
    return bool(leaf.args.get("negate")), leaf


def _is_like(leaf: exp.Expression) -> bool:
    return isinstance(_negated(leaf)[1], exp.Like)


def _n_subquery_values(leaf: exp.Expression) -> int:
    """How many of the condition's values (val1, val2) are nested queries."""
    _, pred = _negated(leaf)
    values = []
    if isinstance(pred, exp.In):
        values = [pred.args.get("query")] + list(pred.expressions)
    elif isinstance(pred, exp.Between):
        values = [pred.args.get("low"), pred.args.get("high")]
    elif isinstance(pred, exp.Binary):
        values = [pred.expression]
    return sum(1 for v in values if v is not None and isinstance(_unparen(v), (exp.Subquery, exp.Select,
                                                                               exp.SetOperation)))


def _leftmost(node: exp.Expression) -> exp.Expression:
    node = _unparen(node)
    while isinstance(node, _ARITH):
        node = _unparen(node.this)
    return node


def _order_aggs(term: exp.Expression) -> int:
    # val_unit = (unit_op, col_unit1, col_unit2): one arithmetic operator at most; each operand may be an agg.
    term = _unparen(term)
    operands = [term.this, term.expression] if isinstance(term, _ARITH) else [term]
    return sum(1 for o in operands if isinstance(_unparen(o), _AGGS))


def _top_select(tree: exp.Expression) -> tuple[exp.Select | None, int]:
    """The top-level SELECT of the official parse and the number of set operations hanging off it."""
    n_iuen = 0
    node = _unparen(tree)
    while isinstance(node, (exp.SetOperation, exp.Subquery)):
        if isinstance(node, exp.SetOperation):
            n_iuen = 1  # the official dict holds one of intersect/union/except; the rest nests inside it
            node = node.this
        else:
            node = node.this
        node = _unparen(node)
    return (node if isinstance(node, exp.Select) else None), n_iuen


def hardness_counts(sql: str, dialect: str = "sqlite") -> tuple[int, int, int]:
    """(component1, component2, others) as the official ``count_*`` functions compute them."""
    tree = sqlglot.parse_one(sql, read=dialect)
    select, n_iuen = _top_select(tree)
    if select is None:
        raise ValueError(f"not a SELECT query: {sql[:80]!r}")

    joins = select.args.get("joins") or []
    n_table_units = (1 if select.args.get("from_") or select.args.get("from") else 0) + len(joins)
    on = [_flatten(j.args.get("on")) for j in joins]
    where = _flatten(select.args.get("where").this if select.args.get("where") else None)
    having = _flatten(select.args.get("having").this if select.args.get("having") else None)
    conds = on + [where, having]
    group = select.args.get("group")
    group_exprs = list(group.expressions) if group else []
    order = select.args.get("order")

    comp1 = 0
    comp1 += 1 if where.leaves else 0
    comp1 += 1 if group_exprs else 0
    comp1 += 1 if order else 0
    comp1 += 1 if select.args.get("limit") else 0
    comp1 += max(0, n_table_units - 1)
    comp1 += sum(c.n_or for c in conds)
    comp1 += sum(1 for c in conds for leaf in c.leaves if _is_like(leaf))

    comp2 = n_iuen + sum(_n_subquery_values(leaf) for c in conds for leaf in c.leaves)

    agg = 0
    for item in select.expressions:
        item = item.this if isinstance(item, exp.Alias) else item
        agg += 1 if isinstance(_leftmost(item), _AGGS) else 0
    agg += sum(1 for leaf in where.leaves if _negated(leaf)[0])
    if order:
        agg += sum(_order_aggs(o.this if isinstance(o, exp.Ordered) else o) for o in order.expressions)
    agg += sum(1 for leaf in having.leaves if _negated(leaf)[0]) + having.n_and + having.n_or
    others = 0
    others += 1 if agg > 1 else 0
    others += 1 if len(select.expressions) > 1 else 0
    others += 1 if where.length > 1 else 0
    others += 1 if len(group_exprs) > 1 else 0
    return comp1, comp2, others


def hardness_from_counts(comp1: int, comp2: int, others: int) -> str:
    """``Evaluator.eval_hardness``, verbatim."""
    if comp1 <= 1 and others == 0 and comp2 == 0:
        return "easy"
    if (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0):
        return "medium"
    if (
        (others > 2 and comp1 <= 2 and comp2 == 0)
        or (2 < comp1 <= 3 and others <= 2 and comp2 == 0)
        or (comp1 <= 1 and others == 0 and comp2 <= 1)
    ):
        return "hard"
    return "extra"


def spider_hardness(sql: str, dialect: str = "sqlite") -> str:
    """easy / medium / hard / extra, or 'unknown' for text sqlglot cannot parse as a SELECT query."""
    try:
        return hardness_from_counts(*hardness_counts(sql, dialect))
    except (SqlglotError, ValueError, RecursionError):
        return "unknown"


# The official counting applied to a Spider ``sql`` dict (dev.json's field), for validating the port above.
def official_hardness_from_dict(sql: dict) -> str:
    def count_agg(units):
        return len([u for u in units if u[0] != 0])

    conds = sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]
    ao = sql["from"]["conds"][1::2] + sql["where"][1::2] + sql["having"][1::2]
    c1 = sum(bool(x) for x in (sql["where"], sql["groupBy"], sql["orderBy"])) + (sql["limit"] is not None)
    c1 += max(0, len(sql["from"]["table_units"]) - 1)
    c1 += ao.count("or") + sum(1 for cu in conds if cu[1] == 9)  # WHERE_OPS.index('like') == 9
    c2 = sum(1 for cu in conds for v in (cu[3], cu[4]) if isinstance(v, dict))
    c2 += sum(sql[k] is not None for k in ("intersect", "except", "union"))
    a = count_agg(sql["select"][1]) + count_agg(sql["where"][::2]) + count_agg(sql["groupBy"])
    if sql["orderBy"]:
        a += count_agg([u[1] for u in sql["orderBy"][1] if u[1]] + [u[2] for u in sql["orderBy"][1] if u[2]])
    a += count_agg(sql["having"])
    o = (a > 1) + (len(sql["select"][1]) > 1) + (len(sql["where"]) > 1) + (len(sql["groupBy"]) > 1)
    return hardness_from_counts(c1, c2, o)
