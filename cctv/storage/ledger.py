"""The sink's ledger: what each batch was about to write, recorded in ClickHouse before it writes.

ClickHouse has no transaction across tables or partitions: a batch whose rows span three months
is three parts, and a crash can leave any subset of them behind. Resuming "after the highest
offset stored" would then skip the parts that did not land; resuming at Kafka's committed offset
would insert the ones that did a second time. The ledger makes the resume point exact on every
engine (18.16 has no insert deduplication):

1. Before a batch's first insert, one ledger row per (topic, partition, table) says: rows of
   offsets `start_offset .. last_offset` are about to be written to `table`, in `months`.
   (One insert into an unpartitioned-by-time, single-day table: one part, atomic.)
2. When a partition is assigned, or after a failed batch, the sink asks the ledger which
   entries reach past the committed offset. Those offsets are *in doubt*: it reads from the
   table exactly which of them are stored (a bounded read: one batch's offsets, in the months
   the ledger names, through the skip indexes on modern engines) and, when it consumes them
   again, skips those and writes the rest. Every offset ends in ClickHouse exactly once.

`start_offset` is where the batch began in that partition (the committed position then), so
the newest entry of a partition is also a floor below which everything was handled: a sink
whose consumer group lost its committed offsets resumes there, not from the beginning.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from cctv.storage.engines import Engine
from cctv.storage.tables import TableSpec, month_bounds

LEDGER_TABLE = "_sink_ledger"
_COLUMNS = (
    "batch_id",
    "written_at",
    "sink_group",
    "topic",
    "partition",
    "table",
    "start_offset",
    "last_offset",
    "rows",
    "months",
)


def ledger_table_sql(database: str) -> str:
    # Partitioned by day so old entries are dropped a partition at a time (18.16 has no TTL).
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{LEDGER_TABLE}\n(\n"
        "    `batch_id` String,\n"
        "    `written_at` DateTime('UTC'),\n"
        "    `sink_group` String,\n"
        "    `topic` String,\n"
        "    `partition` Int32,\n"
        "    `table` String,\n"
        "    `start_offset` Int64,\n"
        "    `last_offset` Int64,\n"
        "    `rows` UInt32,\n"
        "    `months` Array(UInt32)\n"
        ")\nENGINE = MergeTree()\n"
        "PARTITION BY toYYYYMMDD(written_at)\n"
        "ORDER BY (topic, partition, last_offset)"
    )


@dataclass(frozen=True)
class Entry:
    """One batch's rows of one source partition for one table."""

    topic: str
    partition: int
    table: str
    start_offset: int  # the partition's position when the batch began: all before it handled
    last_offset: int  # the highest offset with a row in this table
    rows: int
    months: tuple[int, ...]  # toYYYYMM partitions written; empty = not known (read them all)


@dataclass
class InDoubt:
    """Offsets of one source partition that may or may not be in ClickHouse."""

    resume: int  # consume from here
    last: int  # offsets resume..last are in doubt; -1 when nothing is
    # table -> the months written, or None when some entry did not know them (read them all)
    tables: dict[str, set[int] | None] = field(default_factory=dict)


class Ledger:
    def __init__(self, engine: Engine, *, database: str, sink_group: str):
        self.engine = engine
        self.database = database
        self.sink_group = sink_group
        self._table = f"{database}.{LEDGER_TABLE}"

    def record(self, batch_id: str, entries: Iterable[Entry]) -> None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        rows = [
            (
                batch_id,
                now,
                self.sink_group,
                e.topic,
                e.partition,
                e.table,
                e.start_offset,
                e.last_offset,
                e.rows,
                list(e.months),
            )
            for e in entries
        ]
        if rows:
            self.engine.insert(self._table, _COLUMNS, rows)

    def in_doubt(self, topic: str, partition: int, committed: int | None) -> InDoubt:
        """Where to resume a partition whose committed offset is `committed` (None: the group
        has none), and which offsets past it may already be stored."""
        where = f"topic = {_quote(topic)} AND partition = {int(partition)}"
        # A batch starts where the previous one was committed, so start offsets only grow and
        # the highest is a floor below which every offset was handled -- whichever sink group
        # handled it. (Positions, not clocks: sinks on other hosts may disagree on the time.)
        latest = self.engine.query(
            f"SELECT max(start_offset) AS start, count() AS n FROM {self._table} WHERE {where}"
        )
        floor = int(latest[0]["start"]) if latest and int(latest[0]["n"]) else None
        if committed is None and floor is None:
            return InDoubt(resume=-1, last=-1)  # nothing known: Kafka's reset policy decides
        resume = max(x for x in (committed, floor) if x is not None)
        rows = self.engine.query(
            f"SELECT table, start_offset, last_offset, months FROM {self._table} "
            f"WHERE {where} AND last_offset >= {int(resume)}"
        )
        doubt = InDoubt(resume=resume, last=-1)
        for row in rows:
            doubt.last = max(doubt.last, int(row["last_offset"]))
            months = {int(m) for m in row["months"]}
            table = row["table"]
            known = doubt.tables.get(table, set())
            doubt.tables[table] = known | months if known is not None and months else None
        return doubt

    def stored_offsets(
        self,
        spec: TableSpec,
        *,
        topic: str,
        partition: int,
        first: int,
        last: int,
        months: Iterable[int] | None,
    ) -> set[int]:
        """Offsets first..last of a source partition that have a row in `spec`'s table."""
        conditions = [
            f"_topic = {_quote(topic)}",
            f"_partition = {int(partition)}",
            f"_offset >= {int(first)}",
            f"_offset <= {int(last)}",
        ]
        if months:
            # Ranges on the partition key's column: both engines prune whole months with them.
            ranges = []
            for month in sorted(set(months)):
                start, end = month_bounds(month)
                ranges.append(
                    f"({spec.time_column} >= toDateTime('{start:%Y-%m-%d %H:%M:%S}', 'UTC') AND "
                    f"{spec.time_column} < toDateTime('{end:%Y-%m-%d %H:%M:%S}', 'UTC'))"
                )
            conditions.append("(" + " OR ".join(ranges) + ")")
        rows = self.engine.query(
            f"SELECT _offset FROM {self.database}.{spec.name} WHERE {' AND '.join(conditions)}"
        )
        return {int(r["_offset"]) for r in rows}

    def prune(self, *, keep_days: int) -> list[str]:
        """Drop whole days of entries older than `keep_days`; returns the partitions dropped."""
        cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(days=keep_days)).strftime("%Y%m%d")
        parts = self.engine.query(
            f"SELECT DISTINCT partition FROM system.parts WHERE database = {_quote(self.database)}"
            f" AND table = {_quote(LEDGER_TABLE)} AND active"
        )
        dropped = []
        for row in parts:
            name = str(row["partition"]).strip("'")
            if name.isdigit() and name < cutoff:
                self.engine.execute(f"ALTER TABLE {self._table} DROP PARTITION {name}")
                dropped.append(name)
        return dropped


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
