"""`InsertContext`: rows waiting for ClickHouse, batched by size and by age, flushed together.

All tables flush at once, so "every message up to offset N of a partition is in ClickHouse or in
the dead-letter topic" holds right after a flush: that is the moment offsets may be committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cctv.storage.tables import TableSpec


@dataclass
class Block:
    spec: TableSpec
    rows: list[Sequence[Any]] = field(default_factory=list)


class InsertContext:
    def __init__(
        self, *, max_rows: int, max_seconds: float, clock: Callable[[], float] = time.monotonic
    ):
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self._clock = clock
        self._blocks: dict[str, Block] = {}
        # Next offset to commit per (topic, partition): every message before it is accounted for.
        self._positions: dict[tuple[str, int], int] = {}
        self._opened_at: float | None = None

    def add(
        self, spec: TableSpec, row: Sequence[Any], *, topic: str, partition: int, offset: int
    ) -> None:
        self._blocks.setdefault(spec.name, Block(spec)).rows.append(row)
        self.account(topic=topic, partition=partition, offset=offset)

    def account(self, *, topic: str, partition: int, offset: int) -> None:
        """A message handled without a row (e.g. sent to the dead-letter topic)."""
        if self._opened_at is None:
            self._opened_at = self._clock()
        self._positions[(topic, partition)] = offset + 1

    @property
    def rows(self) -> int:
        return sum(len(b.rows) for b in self._blocks.values())

    def due(self) -> bool:
        if self._opened_at is None:
            return False
        if any(len(b.rows) >= self.max_rows for b in self._blocks.values()):
            return True
        return self._clock() - self._opened_at >= self.max_seconds

    def blocks(self) -> Iterator[Block]:
        return iter(list(self._blocks.values()))

    def positions(self) -> dict[tuple[str, int], int]:
        return dict(self._positions)

    def clear(self) -> None:
        self._blocks.clear()
        self._positions.clear()
        self._opened_at = None
