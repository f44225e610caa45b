"""`cctv db migrate` and `cctv db status`: the ClickHouse schema, brought up to date and shown.

`migrate` makes the history tables match the Avro contracts, then applies every numbered
migration not applied yet (cctv/storage/migrations.py), printing each step. It is idempotent:
run it as often as you like, on chDB or on a server. A migration that failed half-way is
reported with the statement and the error (exit 1) and runs again, whole, on the next `migrate`.
`status` changes nothing: it lists missing tables and columns and every migration's state, and
exits 1 when something is pending (handy in a deployment check).
"""

from __future__ import annotations

import argparse
import json

from cctv.context import Context
from cctv.dates import format_be
from cctv.failpoints import Failpoints
from cctv.storage.migrations import Status, migrate, status


def run_migrate(ctx: Context, args: argparse.Namespace) -> int:
    store = ctx.open_store()
    try:
        applied = migrate(
            store,
            timezone=ctx.settings.clickhouse.day_timezone,
            progress=lambda line: print(line, flush=True),
            failpoints=Failpoints(ctx.settings.failpoints),
        )
    finally:
        store.engine.close()
    if applied:
        print(f"database {store.database} is up to date: applied migration(s) {applied}")
    else:
        print(f"database {store.database} is up to date: nothing to apply")
    return 0


def run_status(ctx: Context, args: argparse.Namespace) -> int:
    store = ctx.open_store()
    try:
        report = status(store, timezone=ctx.settings.clickhouse.day_timezone)
    finally:
        store.engine.close()
    if args.format == "json":
        print(json.dumps(_as_json(report), ensure_ascii=False, indent=2))
    else:
        print(render_status(report))
    return 0 if report.up_to_date else 1


def render_status(report: Status) -> str:
    lines = [f"database {report.database} on {report.engine}"]
    if report.missing_tables:
        lines.append(f"  missing tables: {', '.join(report.missing_tables)}")
    for table, columns in sorted(report.missing_columns.items()):
        lines.append(f"  {table}: missing column(s) {', '.join(columns)}")
    if not report.missing_tables and not report.missing_columns:
        lines.append("  history tables: match the Avro contracts")
    for m in report.migrations:
        when = f"  {format_be(m.applied_at)}" if m.applied_at else ""
        lines.append(f"  {m.version:>4}  {m.status:<11} {m.name}{when}")
        if m.error:
            lines.append(f"        error: {m.error}")
        if m.status == "changed":
            lines.append("        its statements changed after it was applied: add a new migration")
    lines.append("up to date" if report.up_to_date else "pending work: run `cctv db migrate`")
    return "\n".join(lines)


def _as_json(report: Status) -> dict:
    return {
        "database": report.database,
        "engine": report.engine,
        "up_to_date": report.up_to_date,
        "missing_tables": report.missing_tables,
        "missing_columns": report.missing_columns,
        "migrations": [
            {
                "version": m.version,
                "name": m.name,
                "status": m.status,
                "applied_at": m.applied_at.isoformat() if m.applied_at else None,
                "error": m.error or None,
            }
            for m in report.migrations
        ],
    }


def add_commands(sub: argparse._SubParsersAction, load_context) -> None:
    db = sub.add_parser("db", help="the ClickHouse schema: migrate, status").add_subparsers(
        metavar="ACTION"
    )
    p = db.add_parser("migrate", help="create/upgrade tables, rollups and views (idempotent)")
    p.set_defaults(handler=lambda args: run_migrate(load_context(), args))
    p = db.add_parser("status", help="what is applied and what is pending (exit 1 if pending)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=lambda args: run_status(load_context(), args))
