"""Rows as SQLAlchemy would insert them, as plain SQL and plain values, for the raw writers.

The columns, their Python-side scalar defaults and their bind processors (UTC datetimes, booleans,
blobs) are read from the SQLAlchemy table and dialect once; each row is then a tuple in column
order, so a raw ``executemany`` stores what ``conn.execute(insert(table), rows)`` stored
(tests/integration/test_raw_commit.py compares every row). A column a row does not name and that
has no Python-side default is left out of the statement, as SQLAlchemy leaves it, to the table
(NULL, a server default, an autoincrement id); rows naming different columns go in separate runs,
in order, so ids are still given out in the rows' order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect

Processor = Callable[[Any], Any] | None
_NO_DEFAULT = object()


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    default: Any  # the Python-side scalar default SQLAlchemy fills in, or _NO_DEFAULT
    process: Processor


class RawTable:
    """How SQLAlchemy would insert rows into one table, as plain SQL and plain values."""

    def __init__(
        self, table: Table, dialect: Dialect, *, or_ignore: bool = False, numbered: bool = False
    ) -> None:
        self.name = table.name
        self.or_ignore = or_ignore  # skip a row that conflicts, as ``outbox_repo.add`` does
        self.numbered = numbered  # $1, $2 (asyncpg) rather than ? (sqlite3)
        self.columns = [_column(c, dialect) for c in table.columns]
        self._sql: dict[tuple[str, ...], str] = {}

    def statements(self, rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """(SQL, parameters) per run of rows naming the same columns, in the rows' order."""
        runs: list[tuple[str, list[tuple[Any, ...]]]] = []
        last: tuple[str, ...] | None = None
        # Per column, the last value processed and its result: the rows of one notice share
        # their datetimes (one ``now``), so most bind processors run once per column, not per row.
        memo: list[tuple[Any, Any] | None] = [None] * len(self.columns)
        for row in rows:
            names, values = self._row(row, memo)
            if names != last:
                runs.append((self._statement(names), []))
                last = names
            runs[-1][1].append(values)
        return runs

    def _row(
        self, row: dict[str, Any], memo: list[tuple[Any, Any] | None]
    ) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        names: list[str] = []
        values: list[Any] = []
        for k, c in enumerate(self.columns):
            value = row.get(c.name, c.default)
            if value is _NO_DEFAULT:
                continue  # not given, no default: the column's own (NULL, server default, rowid)
            names.append(c.name)
            if c.process is not None:
                seen = memo[k]
                if seen is not None and seen[0] is value:  # the very same object: same result
                    value = seen[1]
                else:
                    processed = c.process(value)
                    memo[k] = (value, processed)
                    value = processed
            values.append(value)
        return tuple(names), tuple(values)

    def _statement(self, names: tuple[str, ...]) -> str:
        sql = self._sql.get(names)
        if sql is None:
            # Table and column names come from the schema, never from input; values are bound.
            columns = ", ".join(f'"{n}"' for n in names)
            marks = ", ".join(f"${i}" if self.numbered else "?" for i in range(1, len(names) + 1))
            verb = (
                "INSERT OR IGNORE INTO" if self.or_ignore and not self.numbered else "INSERT INTO"
            )
            tail = " ON CONFLICT DO NOTHING" if self.or_ignore and self.numbered else ""
            sql = " ".join((verb, f'"{self.name}"', f"({columns})", "VALUES", f"({marks}){tail}"))
            self._sql[names] = sql
        return sql


def _column(column: Any, dialect: Dialect) -> _Column:
    default = column.default
    if default is None:
        value = _NO_DEFAULT
    elif default.is_scalar:
        value = default.arg
    else:  # a callable or SQL default: none on these tables, and not guessed at
        raise TypeError(f"{column.table.name}.{column.name}: only scalar defaults are supported")
    return _Column(column.name, value, column.type.dialect_impl(dialect).bind_processor(dialect))
