"""`cctv sql "SELECT …"`: analysts' read-only queries against whichever engine is configured.

Read-only twice over: only a single SELECT / WITH / SHOW / DESCRIBE / EXPLAIN statement is
accepted, and SELECTs run with the engine's own `readonly = 1` setting, so even a function
that would write is refused by ClickHouse itself. Values keep their types on the way out:
decimals stay exact (money), timestamps are ISO 8601 UTC.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from cctv.context import Context
from cctv.reports import visible_width

FORMATS = ("table", "csv", "json", "parquet")
_READ = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.IGNORECASE)
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


class UsageError(Exception):
    """Bad command-line input; exit code 2."""


def check_read_only(sql: str) -> str:
    """The statement, stripped, if it is one read-only statement; UsageError otherwise."""
    text = _COMMENTS.sub(" ", sql).strip().rstrip(";").strip()
    if not text:
        raise UsageError("SQL: empty statement")
    if ";" in _strings_removed(text):
        raise UsageError("SQL: one statement at a time (found ';' inside)")
    if not _READ.match(text):
        word = text.split()[0]
        raise UsageError(
            f"SQL: {word.upper()} is not allowed: cctv sql is read-only "
            "(SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)"
        )
    return text


def _strings_removed(text: str) -> str:
    return re.sub(r"'(?:[^'\\]|\\.)*'", "''", text)


def run_sql(ctx: Context, sql: str, *, fmt: str, output: str | None) -> int:
    statement = check_read_only(sql)
    if fmt == "parquet" and not output:
        raise UsageError("--format parquet: give --output FILE (parquet is not for a terminal)")
    store = ctx.open_store()
    try:
        rows = store.engine.query_read_only(statement)
    finally:
        store.engine.close()
    data = render(rows, fmt)
    if output:
        Path(output).write_bytes(data)
        print(f"{len(rows)} row(s) written to {output} ({fmt})", file=sys.stderr)
    else:
        sys.stdout.write(data.decode("utf-8"))
        sys.stdout.flush()
    return 0


def render(rows: list[dict[str, Any]], fmt: str) -> bytes:
    if fmt == "json":
        return "".join(
            json.dumps(row, ensure_ascii=False, default=_json_value) + "\n" for row in rows
        ).encode("utf-8")
    if fmt == "csv":
        buffer = io.StringIO()
        if rows:
            writer = csv.writer(buffer)
            writer.writerow(rows[0].keys())
            for row in rows:
                writer.writerow([_text(v) for v in row.values()])
        return buffer.getvalue().encode("utf-8")
    if fmt == "parquet":
        return _parquet(rows)
    return _table(rows).encode("utf-8")


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: 10000001.00 stays 10000001.00
    if isinstance(value, dt.datetime | dt.date):
        return _text(value)
    return str(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # engines return UTC
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return json.dumps(list(value), ensure_ascii=False, default=_json_value)
    return str(value)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)\n"
    names = list(rows[0].keys())
    cells = [[_text(row[n]) for n in names] for row in rows]
    widths = [
        max(visible_width(n), *(visible_width(r[i]) for r in cells)) for i, n in enumerate(names)
    ]
    numeric = [all(_is_number(row[n]) for row in rows) for n in names]

    def line(values: list[str]) -> str:
        out = []
        for value, width, right in zip(values, widths, numeric, strict=True):
            pad = width - visible_width(value)
            out.append(" " * pad + value if right else value + " " * pad)
        return "  ".join(out).rstrip()

    lines = [line(names), "  ".join("-" * w for w in widths)]
    lines += [line(r) for r in cells]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines) + "\n"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        return b""
    columns = {}
    for name in rows[0]:
        values = [row[name] for row in rows]
        if any(isinstance(v, Decimal) for v in values):
            # One exact decimal type for the column (JSON gives 10000001 for 10000001.00).
            numbers = [None if v is None else Decimal(str(v)) for v in values]
            scale = max((-n.as_tuple().exponent for n in numbers if n is not None), default=0)
            quantum = Decimal(1).scaleb(-max(scale, 0))
            columns[name] = pa.array(
                [None if n is None else n.quantize(quantum) for n in numbers],
                type=pa.decimal128(38, max(scale, 0)),
            )
        else:
            columns[name] = pa.array(values)
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()
