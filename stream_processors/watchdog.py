"""The fetch watchdog: an assigned partition with events waiting that the consumer never fetches.

After a rebalance, Faust's consumer (aiokafka underneath) sometimes never fetches some of the
partitions it was given: the worker is "ready", its agents wait, the partition's events sit in
Kafka, and nothing says so (faust-streaming #629, open; seen here when a second worker joins).
This watchdog compares, for each assigned input partition, the consumer's fetch position with
the partition's end: a position that stays below the end for `stall_seconds` is a stall. The
worker then asks the group to rebalance again, which gives the consumer a fresh assignment; if
stalls go on, it stops with an error (exit code 75) so that its supervisor starts it afresh.
Nothing is lost either way: nothing past the stalled events was committed.
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

    def reset(self) -> None:
        self._since.clear()


def is_input(topic: str) -> bool:
    """An agent's input (not a table's changelog, not Faust's leader topic)."""
    return not (topic.endswith("-changelog") or topic.endswith("__assignor-__leader"))


class FetchWatchdog:
    """Runs `check` from a timer on every worker."""

    def __init__(self, app: Any, *, stall_seconds: float, max_rejoins: int = 2) -> None:
        self.app = app
        self.watch = StallWatch(stall_seconds)
        self.max_rejoins = max_rejoins
        self.rejoins = 0

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
        positions: dict[Any, int | None] = {}
        for tp in tps:
            try:
                positions[tp] = await asyncio.wait_for(consumer.position(tp), timeout=5)
            except Exception:  # no valid position (or no answer): counts as not moving
                positions[tp] = None
        if app.rebalancing or app.in_recovery:  # it started while we asked
            self.watch.reset()
            return
        stalled = self.watch.observe(time.monotonic(), positions, ends)
        if not stalled:
            return
        detail = ", ".join(
            f"{tp.topic}[{tp.partition}] at {positions.get(tp)} of {ends.get(tp)}" for tp in stalled
        )
        if self.rejoins < self.max_rejoins:
            self.rejoins += 1
            log.error(
                "fetch stalled for %.0f s with events waiting: %s (faust-streaming #629); "
                "asking the group to rebalance (%d of %d)",
                self.watch.stall_seconds,
                detail,
                self.rejoins,
                self.max_rejoins,
            )
            self.watch.reset()
            thread = consumer._thread
            await thread.call_thread(_request_rejoin, thread)
            return
        log.critical(
            "fetch still stalled after %d rebalances: %s; stopping (exit code %d) so that the "
            "worker starts afresh -- nothing past these events was committed",
            self.rejoins,
            detail,
            EXIT_STALLED,
        )
        logging.shutdown()
        os._exit(EXIT_STALLED)


def _request_rejoin(thread: Any) -> None:
    # In the consumer's thread: aiokafka's group coordinator then rejoins the group, which
    # hands every member a fresh assignment (and Faust a fresh recovery).
    thread._ensure_consumer()._coordinator.request_rejoin()
