"""`cctv publish KIND FILE`: a file of records -> cctv.publishing -> a report for people."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from cctv import kafka as kafka_clients
from cctv.context import Context
from cctv.exceptions import CctvError
from cctv.publishing import publish_records, topic_for_kind
from cctv.records import read_rows


def publish_file(ctx: Context, *, kind: str, path: str, fmt: str | None = None) -> int:
    """Publish the records of `path` (or - for standard input); exit code 1 if any was
    rejected. Prints what was published, and every rejected record with its line."""
    topic = topic_for_kind(kind)  # an unknown kind fails before anything is opened
    fmt = fmt or ("csv" if path.lower().endswith(".csv") else "jsonl")
    source = sys.stdin if path == "-" else _open(path)
    producer = kafka_clients.producer(ctx.settings.kafka, client_suffix="publish")
    with source:
        report = publish_records(
            ctx,
            producer,
            topic=topic,
            rows=read_rows(source, fmt),
            source=f"file:{Path(path).name}",
            on_progress=lambda n: print(f"  ... {n} records published", file=sys.stderr),
        )
    print(f"published {report.published} {report.schema_name} record(s) to {report.topic}")
    if report.rejected:
        print(
            f"rejected {len(report.rejected)} record(s) (also sent to {report.dead_letter_topic}):",
            file=sys.stderr,
        )
        print("\n".join(f"  line {r.line}: {r.reason}" for r in report.rejected), file=sys.stderr)
        return 1
    return 0


def _open(path: str) -> TextIO:
    try:
        return open(path, encoding="utf-8-sig", newline="")  # utf-8-sig: Excel's BOM
    except OSError as exc:
        raise CctvError(f"cannot read {path}: {exc.strerror}") from exc
