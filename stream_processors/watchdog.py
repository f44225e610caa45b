"""The fetch watchdog: an assigned input partition whose events never reach the agents.

Around a rebalance, Faust's consumer sometimes loses a partition's events: aiokafka has fetched
them (its position is at the end of the partition) but Faust never hands them to the agents,
and nothing is committed for them; or aiokafka never fetches the partition at all
(faust-streaming #629). Either way the worker looks "ready", its agents wait, and nothing
says so -- seen here when a second worker joins the group.

Every `stall_seconds / 4` the watchdog compares, per assigned input partition, the next offset
Faust *delivered* (one past the last it handed on, else the committed offset) with the
partition's end. A delivered position below the end that does not move for `stall_seconds`
is a stall, and the worker repairs it: it seeks the partition back to the delivered position,
so the events are fetched again (at-least-once: nothing past them was committed). If the
same gap stays after that, either the gap holds no records (transaction markers, compacted
records: the watchdog then leaves that gap alone), or, when aiokafka is not fetching at all,
the worker asks the group to rebalance, and after `max_rejoins` exits with code 75 for its
supervisor to start it afresh.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("cctv.processors")

#: The worker's exit status when stalls go on after rebalancing (EX_TEMPFAIL: start me again).
EXIT_STALLED = 75


@dataclass
class StallWatch:
    """Pure: which partitions have had events waiting, at an unmoved position, for too long."""

    stall_seconds: float
    _since: dict[Hashable, tuple[int | None, float]] = field(default_factory=dict)

    def observe(
        self, now: float, positions: Mapping[Hashable, int | None], ends: Mapping[Hashable, int]
    ) -> list[Hashable]:
        stalled = []
        for tp, end in ends.items():
            position = positions.get(tp)
            if position is not None and position >= end:
                self._since.pop(tp, None)  # nothing waiting
                continue
            seen = self._since.get(tp)
            if seen is None or seen[0] != position:
                self._since[tp] = (position, now)  # first seen, or it moved: start counting
                continue
            if now - seen[1] >= self.stall_seconds:
                stalled.append(tp)
        return stalled

    def forget(self, tp: Hashable) -> None:
        self._since.pop(tp, None)

    def reset(self) -> None:
        self._since.clear()


def is_input(topic: str) -> bool:
    """An agent's input (not a table's changelog, not Faust's leader topic)."""
    return not (topic.endswith("-changelog") or topic.endswith("__assignor-__leader"))


def delivered_position(consumer: Any, tp: Any) -> int:
    """The next offset Faust would hand to the agents: one past the last it delivered, else the
    committed offset, else the partition's start (0)."""
    read = consumer._read_offset.get(tp)
    if read is not None:
        return int(read) + 1
    committed = consumer._committed_offset.get(tp)
    return int(committed) if committed else 0


class FetchWatchdog:
    """Runs `check` from a timer on every worker."""

    def __init__(self, app: Any, *, stall_seconds: float, max_rejoins: int = 2) -> None:
        self.app = app
        self.watch = StallWatch(stall_seconds)
        self.max_rejoins = max_rejoins
        self.rejoins = 0
        self.repaired: dict[Any, tuple[int, int]] = {}  # tp -> (position, end) sought back once
        self.settled: dict[Any, tuple[int, int]] = {}  # gaps that hold no records

    async def check(self) -> None:
        app = self.app
        consumer = app.consumer
        if app.rebalancing or app.in_recovery or not app.flow_control.is_active():
            self.watch.reset()
            return
        tps = [tp for tp in consumer.assignment() if is_input(tp.topic)]
        if not tps:
            return
        ends = await consumer.highwaters(*tps)
        if app.rebalancing or app.in_recovery:  # it started while we asked
            self.watch.reset()
            return
        positions = {tp: delivered_position(consumer, tp) for tp in tps}
        waiting = {
            tp: end for tp, end in ends.items() if self.settled.get(tp) != (positions.get(tp), end)
        }
        for tp in self.watch.observe(time.monotonic(), positions, waiting):
            await self._repair(tp, positions[tp], ends[tp])

    async def _repair(self, tp: Any, position: int, end: int) -> None:
        consumer = self.app.consumer
        gap = f"{tp.topic}[{tp.partition}]: delivered up to {position}, end {end}"
        self.watch.forget(tp)
        if self.repaired.get(tp) != (position, end):
            self.repaired[tp] = (position, end)
            log.error(
                "%s, unmoved for %.0f s: the consumer lost these events around a rebalance "
                "(faust-streaming #629); fetching them again from %d",
                gap,
                self.watch.stall_seconds,
                position,
            )
            await consumer.seek(tp, position)
            return
        fetching = await self._fetch_position(tp)
        if fetching is not None and fetching >= end:
            # Fetched again and nothing came: the gap holds no records (transaction markers,
            # records compacted away). Leave it until the partition moves on.
            self.settled[tp] = (position, end)
            log.warning("%s: no records in the gap after fetching it again; leaving it", gap)
            return
        if self.rejoins < self.max_rejoins:
            self.rejoins += 1
            log.error(
                "%s: still not fetched (fetch position %s); asking the group to rebalance "
                "(%d of %d)",
                gap,
                fetching,
                self.rejoins,
                self.max_rejoins,
            )
            thread = consumer._thread
            await thread.call_thread(_request_rejoin, thread)
            return
        log.critical(
            "%s: still not fetched after %d rebalances; stopping (exit code %d) so that the "
            "worker starts afresh -- nothing past these events was committed",
            gap,
            self.rejoins,
            EXIT_STALLED,
        )
        logging.shutdown()
        os._exit(EXIT_STALLED)

    async def _fetch_position(self, tp: Any) -> int | None:
        try:
            return await asyncio.wait_for(self.app.consumer.position(tp), timeout=5)
        except Exception:  # no valid position, or no answer
            return None


def _request_rejoin(thread: Any) -> None:
    # In the consumer's thread: aiokafka's group coordinator then rejoins the group, which
    # hands every member a fresh assignment (and Faust a fresh recovery).
    thread._ensure_consumer()._coordinator.request_rejoin()
