"""What the demo shows while it runs and when it ends: figures from Kafka, ClickHouse and the
dashboard, never from the processes' own say-so.

* events published: the inbound topics' end offsets, less where they stood when the demo began;
* rows in ClickHouse, provinces meeting their quota, open alerts: `cctv/figures.py`, read
  through the same read-only user as the dashboard;
* the dashboard: its `/api/overview` asked over HTTP, as a browser's page does.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from cctv import figures
from cctv import kafka as kafka_clients
from cctv.context import Context
from cctv.exceptions import CctvError
from cctv.storage.engines import Engine

_NO_LEADER_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}

INBOUND = {
    "cameras": "camera_registrations",
    "heartbeats": "camera_heartbeats",
    "selections": "selection_decisions",
    "projects": "project_submissions",
}


@dataclass
class Snapshot:
    """One look at the running system."""

    elapsed_seconds: float
    events: dict[str, int]  # per inbound kind, published since the demo began
    rows: dict[str, int]  # per history table
    provinces_met: int | None
    provinces_in_campaign: int | None
    status_counts: dict[str, int]
    open_alerts: int | None
    open_alerts_by_type: dict[str, int]
    projects: int | None
    late_projects: int | None
    dashboard: str  # "ok", or why not
    clickhouse_error: str | None = None

    @property
    def events_total(self) -> int:
        return sum(self.events.values())

    @property
    def rows_total(self) -> int:
        return sum(self.rows.values())

    def line(self) -> str:
        met = (
            f"{self.provinces_met}/{self.provinces_in_campaign}"
            if self.provinces_met is not None
            else "?"
        )
        alerts = "?" if self.open_alerts is None else f"{self.open_alerts:,}"
        return (
            f"{_clock(self.elapsed_seconds)} | events sent {self.events_total:,} | "
            f"rows in ClickHouse {self.rows_total:,} | provinces meeting quota {met} | "
            f"open alerts {alerts} | dashboard {self.dashboard}"
        )


@dataclass
class Watcher:
    """Takes snapshots of the running system; remembers how the dashboard answered."""

    ctx: Context
    open_reader: Callable[[], Engine]  # ClickHouse as the read-only user
    dashboard_url: str
    started: float = field(default_factory=time.monotonic)
    dashboard_checks: int = 0
    dashboard_answers: int = 0
    _base: dict[str, int] = field(default_factory=dict)
    _consumer: Any = None

    def __post_init__(self) -> None:
        self._consumer = kafka_clients.consumer_for_reading(
            self.ctx.settings.kafka, client_suffix="demo-progress"
        )
        self._base = self._ends()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _ends(self) -> dict[str, int]:
        ends = {}
        for kind, logical in INBOUND.items():
            spec = self.ctx.topics[logical]
            total = 0
            for partition in range(spec.partitions):
                total += self._end_offset(TopicPartition(spec.name, partition))
            ends[kind] = total
        return ends

    def _end_offset(self, tp: TopicPartition) -> int:
        """A partition's end offset. Right after `cctv topics apply` a new partition may have no
        leader yet (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE): asked again, for a while."""
        deadline = time.monotonic() + 30
        while True:
            try:
                return self._consumer.get_watermark_offsets(tp, timeout=10)[1]
            except KafkaException as exc:
                error = exc.args[0]
                waiting = error.retriable() or error.code() in _NO_LEADER_YET
                if not waiting or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def events(self) -> dict[str, int]:
        return {kind: end - self._base.get(kind, 0) for kind, end in self._ends().items()}

    def ask_dashboard(self) -> str:
        self.dashboard_checks += 1
        try:
            with urllib.request.urlopen(f"{self.dashboard_url}/api/overview", timeout=20) as r:
                json.load(r)
                status = r.status
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            return f"no answer ({exc})"
        if status != 200:
            return f"HTTP {status}"
        self.dashboard_answers += 1
        return "ok"

    def snapshot(self, *, now: dt.datetime | None = None) -> Snapshot:
        events = self.events()
        dashboard = self.ask_dashboard()
        database = self.ctx.settings.clickhouse.database
        try:
            engine = self.open_reader()
        except CctvError as exc:
            return self._without_clickhouse(events, dashboard, str(exc))
        try:
            rows = figures.history_rows(engine, database=database)
            overview = figures.national_overview(
                engine, database=database, settings=self.ctx.settings, now=now
            )
        except CctvError as exc:
            return self._without_clickhouse(events, dashboard, str(exc))
        finally:
            engine.close()
        return Snapshot(
            elapsed_seconds=time.monotonic() - self.started,
            events=events,
            rows=rows,
            provinces_met=overview.provinces_met,
            provinces_in_campaign=overview.provinces_in_campaign,
            status_counts=overview.status_counts,
            open_alerts=overview.open_alerts,
            open_alerts_by_type=overview.open_alerts_by_type,
            projects=overview.projects,
            late_projects=overview.late_projects,
            dashboard=dashboard,
        )

    def _without_clickhouse(self, events: dict[str, int], dashboard: str, error: str) -> Snapshot:
        return Snapshot(
            elapsed_seconds=time.monotonic() - self.started,
            events=events,
            rows={},
            provinces_met=None,
            provinces_in_campaign=None,
            status_counts={},
            open_alerts=None,
            open_alerts_by_type={},
            projects=None,
            late_projects=None,
            dashboard=dashboard,
            clickhouse_error=error,
        )


class ProgressLine:
    """The live summary: rewritten in place on a terminal, a new line each time otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._width = 0

    def show(self, text: str) -> None:
        if self.tty:
            self.out.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.out.write(f"[demo] {text}\n")
        self.out.flush()

    def end(self) -> None:
        if self.tty and self._width:
            self.out.write("\n")
            self.out.flush()
            self._width = 0


def summary_text(
    snap: Snapshot,
    *,
    watcher: Watcher,
    extra: dict[str, Any],
) -> str:
    """The closing summary for people."""
    lines = ["", "Summary / สรุป (figures read back from ClickHouse and the dashboard)"]
    events = ", ".join(f"{k} {n:,}" for k, n in snap.events.items())
    lines.append(f"  events sent to Kafka     {snap.events_total:,} ({events})")
    lines.append(f"  rows in ClickHouse       {snap.rows_total:,}")
    for table, n in snap.rows.items():
        if n:
            lines.append(f"      {table:28s} {n:>10,}")
    if snap.provinces_met is not None:
        shown = ", ".join(
            f"{k.lower().replace('_', ' ')} {n}"
            for k, n in snap.status_counts.items()
            if n and k != figures.OUTSIDE
        )
        lines.append(
            f"  provinces meeting quota  {snap.provinces_met} of {snap.provinces_in_campaign} "
            f"in the campaign ({shown})"
        )
        by_type = ", ".join(f"{k} {n}" for k, n in snap.open_alerts_by_type.items())
        lines.append(f"  open alerts              {snap.open_alerts:,} ({by_type or 'none'})")
        lines.append(f"  projects routed          {snap.projects:,} ({snap.late_projects:,} late)")
    else:
        lines.append(f"  ClickHouse did not answer: {snap.clickhouse_error}")
    for label, value in extra.items():
        lines.append(f"  {label:24s} {value}")
    lines.append(
        f"  dashboard                {watcher.dashboard_url} answered "
        f"{watcher.dashboard_answers} of {watcher.dashboard_checks} checks"
    )
    return "\n".join(lines)


def write_summary(path: Path, snap: Snapshot, *, watcher: Watcher, extra: dict[str, Any]) -> None:
    """The same summary as JSON, for scripts and tests (data_dir/demo/summary.json)."""
    data = asdict(snap) | {
        "events_total": snap.events_total,
        "rows_total": snap.rows_total,
        "dashboard_url": watcher.dashboard_url,
        "dashboard_checks": watcher.dashboard_checks,
        "dashboard_answers": watcher.dashboard_answers,
        "extra": extra,
    }
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"
