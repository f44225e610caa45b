"""`InsertContext`: one batch of the sink -- rows waiting for ClickHouse, dead letters waiting for
Kafka, and the source positions they account for -- cut by size and by age, flushed together.

Every consumed message ends up in exactly one of three places in a batch: a row of a table, a
dead letter, or "already stored" (an offset a crashed batch had written, skipped on replay).
All of them advance the partition's position, so once a batch is flushed, "every message before
position N of a partition is in ClickHouse or on the dead-letter topic" holds: that is the
moment offsets may be committed. What the batch is about to write is described, per source
partition and table, by `ledger_entries()` (see cctv/storage/ledger.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cctv.storage.ledger import Entry
from cctv.storage.tables import TableSpec


@dataclass(frozen=True)
class Source:
    """The Kafka message a row or dead letter came from (kept to dead-letter a row later)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None


@dataclass
class Block:
    """The rows of one table in a batch, and the message each row came from. `kind` says what
    a row is: "rows" (a tuple of column values) or "avro" (the message's Avro frame, for the
    chDB passthrough; see services/sink/avro_passthrough.py)."""

    spec: TableSpec
    kind: str = "rows"
    rows: list[Any] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)  # Source, or the Kafka message itself
    months: list[int] = field(default_factory=list)  # toYYYYMM of each row, 0 if unknown

    def by_month(self) -> Iterator[tuple[list[Any], list[Any]]]:
        """(rows, sources) of each month, in month order: one ClickHouse partition each."""
        indexes: dict[int, list[int]] = {}
        for i, month in enumerate(self.months):
            indexes.setdefault(month, []).append(i)
        for _, chosen in sorted(indexes.items()):
            yield [self.rows[i] for i in chosen], [self.sources[i] for i in chosen]


@dataclass
class _Span:
    start: int
    last: int = -1
    rows: int = 0
    months: set[int] = field(default_factory=set)
    months_known: bool = True


class InsertContext:
    def __init__(
        self, *, max_rows: int, max_seconds: float, clock: Callable[[], float] = time.monotonic
    ):
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self._clock = clock
        self._blocks: dict[tuple[str, str], Block] = {}
        # Next offset to commit per (topic, partition): every message before it is accounted for.
        self._positions: dict[tuple[str, int], int] = {}
        # Where the batch began per (topic, partition): the committed position then.
        self._starts: dict[tuple[str, int], int] = {}
        self._spans: dict[tuple[str, str, int], _Span] = {}
        self.dead_letters: list[tuple[bytes | None, bytes]] = []
        self.skipped = 0
        self._opened_at: float | None = None

    # -- filling -------------------------------------------------------------------------
    def add(
        self,
        spec: TableSpec,
        row: Sequence[Any],
        *,
        topic: str,
        partition: int,
        offset: int,
        month: int | None = None,
        source: Any = None,
        start: int | None = None,
        kind: str = "rows",
    ) -> None:
        """A row for `spec`'s table. `month` is its toYYYYMM partition (None: unknown);
        `start` is the partition's position before this batch (default: this offset)."""
        block = self._blocks.get((spec.name, kind))
        if block is None:
            block = self._blocks[(spec.name, kind)] = Block(spec, kind)
        block.rows.append(row)
        block.months.append(month or 0)
        if source is not None:
            block.sources.append(source)
        self.account(topic=topic, partition=partition, offset=offset, start=start)
        span = self._spans.get((spec.name, topic, partition))
        if span is None:
            span = self._spans[(spec.name, topic, partition)] = _Span(
                start=self._starts[(topic, partition)]
            )
        span.last = offset
        span.rows += 1
        if month is None:
            span.months_known = False
        else:
            span.months.add(month)

    def add_dead_letter(
        self,
        key: bytes | None,
        value: bytes,
        *,
        topic: str,
        partition: int,
        offset: int,
        start: int | None = None,
    ) -> None:
        """An encoded dead letter for a message that has no row."""
        self.dead_letters.append((key, value))
        self.account(topic=topic, partition=partition, offset=offset, start=start)

    def skip(self, *, topic: str, partition: int, offset: int, start: int | None = None) -> None:
        """A message whose row is already stored (written by a batch that did not commit)."""
        self.skipped += 1
        self.account(topic=topic, partition=partition, offset=offset, start=start)

    def account(self, *, topic: str, partition: int, offset: int, start: int | None = None) -> None:
        """A message handled (row, dead letter or skip): the partition's position moves."""
        if self._opened_at is None:
            self._opened_at = self._clock()
        key = (topic, partition)
        if key not in self._starts:
            self._starts[key] = offset if start is None else start
        self._positions[key] = offset + 1

    # -- reading -------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return sum(len(b.rows) for b in self._blocks.values())

    @property
    def messages(self) -> int:
        return self.rows + len(self.dead_letters) + self.skipped

    def due(self) -> bool:
        if self._opened_at is None:
            return False
        if any(len(b.rows) >= self.max_rows for b in self._blocks.values()):
            return True
        return self._clock() - self._opened_at >= self.max_seconds

    def room(self) -> int:
        """How many more rows the fullest table takes before the batch is due by size."""
        fullest = max((len(b.rows) for b in self._blocks.values()), default=0)
        return max(self.max_rows - fullest, 1)

    def blocks(self) -> Iterator[Block]:
        return iter([b for b in self._blocks.values() if b.rows])

    def positions(self) -> dict[tuple[str, int], int]:
        return dict(self._positions)

    def ledger_entries(self) -> list[Entry]:
        return [
            Entry(
                topic=topic,
                partition=partition,
                table=table,
                start_offset=span.start,
                last_offset=span.last,
                rows=span.rows,
                months=tuple(sorted(span.months)) if span.months_known else (),
            )
            for (table, topic, partition), span in self._spans.items()
        ]

    def clear(self) -> None:
        self._blocks.clear()
        self._positions.clear()
        self._starts.clear()
        self._spans.clear()
        self.dead_letters = []
        self.skipped = 0
        self._opened_at = None
