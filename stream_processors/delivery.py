"""Delivery before commit: an input event counts as processed only once Kafka confirmed every
record it caused -- its outputs, its dead letter, its tables' changelog entries.

Faust's `topic.send()` only schedules a record; a failed delivery marks that record's future and
nothing else, and the at-least-once commit (which flushes the producer, but does not look at
the outcome) can then move the source offset past the event: its output is lost for good.

So the agents iterate their streams without Faust's automatic acks (`stream.noack()`), hand each
event and the futures of its records to a `DeliveryLedger`, and the ledger acks events -- which
is what makes an offset committable -- once those futures succeeded, strictly in input order.
In order because Faust commits the offset after the first run of acked offsets and, one past the
committed offset, treats a missing ack as a gap it may skip (faust-streaming issue #606):
acking out of order could commit past an event whose delivery is still open. The agent does not
wait for the broker between events; only the commit waits, which is what batching needs.

A failed delivery is a platform failure: the ledger acks nothing from then on (so no commit
passes the event) and crashes the app; at-least-once redelivers the event after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import TP
from faust.utils import json as faust_json
from mode.utils.compat import want_bytes

from cctv.exceptions import KafkaError
from cctv.failpoints import DISARMED, Failpoints

log = logging.getLogger("cctv.processors")


class DeliveryError(KafkaError):
    """Kafka did not confirm a record the worker produced; the worker must stop."""


class LostEventError(KafkaError):
    """An input event never reached its agent (offsets skipped); the worker must stop."""


class ConfirmedTable(faust.Table):
    """A Faust table that hands out the futures of its changelog records.

    Faust sends a changelog record for every write and forgets its future; a record that fails
    leaves the local store ahead of the changelog with nobody told. Here the agent collects the
    futures of its writes (`take_changelog_futures`) and the ledger waits for them too.
    """

    #: Entries a cached table keeps in memory before it starts over (a bound, not a target).
    CACHE_MAX_KEYS = 500_000

    def __init__(
        self,
        *args: Any,
        cached: bool = False,
        encode: Callable[[Any], bytes] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._changelog_futures: list[asyncio.Future] = []
        # Value -> the JSON bytes written (store and changelog); Faust's JSON codec by default.
        self._encode = encode or _faust_json
        # Read-through cache of what this process read and wrote (read_as / write_as): a
        # RocksDB read and JSON decode per event was a tenth of the quota agent's time. Emptied
        # on every rebalance (`forget_cache`), since a partition that moved away and back may
        # have changed. A rule may change a cached value in place (the health buckets) only if
        # it raises before it changes anything: a plan that fails half-way is dead-lettered,
        # and a value it had already changed would stay changed here.
        self._cache: dict[Any, Any] | None = {} if cached else None

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        fut = super().send_changelog(*args, **kwargs)
        self._changelog_futures.append(fut)
        return fut

    def take_changelog_futures(self) -> list[asyncio.Future]:
        futures, self._changelog_futures = self._changelog_futures, []
        return futures

    def read_as(self, event: faust.EventT, key: Any) -> Any:
        """`self.get(key)` for a key of `event`'s partition. Faust's stores pick the partition
        from the *current* event; in a batch that is the last event taken, which may be of
        another partition (the store would answer "no such key")."""
        cache = self._cache
        if cache is not None and key in cache:
            return cache[key]
        token = _current_event.set(weakref.ref(event))
        try:
            value = self.get(key)
        finally:
            _current_event.reset(token)
        if isinstance(value, bytes):  # the memory store keeps what write_as gave it, encoded
            value = faust_json.loads(value)
        self._remember(key, value)
        return value

    def write_as(self, event: faust.EventT, key: Any, value: Any) -> None:
        """`self[key] = value` into `event`'s partition (store and changelog), as `read_as`.

        The value is encoded here, once, with Faust's own JSON codec (same bytes as the table's
        serializer would write): Faust passes bytes through unencoded to both the store and the
        changelog, where it would otherwise encode the value twice -- the JSON of the health
        agent's bucket values was the largest single cost of a batch."""
        data = None if value is None else self._encode(value)
        token = _current_event.set(weakref.ref(event))
        try:
            self[key] = data
        finally:
            _current_event.reset(token)
        self._remember(key, value)

    def _remember(self, key: Any, value: Any) -> None:
        if self._cache is not None:
            if len(self._cache) >= self.CACHE_MAX_KEYS:
                self._cache.clear()
            self._cache[key] = value

    def forget_cache(self) -> None:
        if self._cache is not None:
            self._cache.clear()


@dataclass
class _Pending:
    events: list[faust.EventT]
    open: int = 0  # records whose delivery is not confirmed yet


@dataclass
class DeliveryLedger:
    """One agent's events in input order, each acked when its records are confirmed."""

    name: str
    #: The agent's stream (None for a BatchTopic's agent, stream_processors/batch_channel.py).
    stream: faust.StreamT | None
    on_failure: Callable[[BaseException], None]
    failpoints: Failpoints = DISARMED
    #: The input's offsets have no holes (an internal topic of ours: no compaction, no
    #: transaction markers), so a skipped offset means an event went missing.
    contiguous: bool = False
    _queue: deque[_Pending] = field(default_factory=deque)
    _confirmed: dict[TP, int] = field(default_factory=dict)
    _last_seen: dict[TP, int] = field(default_factory=dict)
    failure: BaseException | None = None

    def check_sequence(self, event: faust.EventT) -> None:
        """Raise LostEventError if, on a contiguous input, offsets were skipped since the last
        event of the partition. An event that never reached the agent is never acked, and
        Faust then commits past it when it sits right after the committed offset
        (faust-streaming #606): processing the next one would lose it for good. Stopping
        instead makes the restart read from the committed offset, the missing one included."""
        tp, offset = event.message.tp, event.message.offset
        last = self._last_seen.get(tp)
        if self.contiguous and last is not None and offset > last + 1:
            raise LostEventError(
                f"{self.name}: {tp.topic}[{tp.partition}] went from offset {last} to {offset}; "
                f"{offset - last - 1} event(s) never reached the agent"
            )
        self._last_seen[tp] = offset  # lower than before: Faust sought back (a replay)

    def forget_positions(self) -> None:
        """After a rebalance the partitions restart wherever their committed offsets are."""
        self._last_seen.clear()

    def track(self, event: faust.EventT, futures: Iterable[asyncio.Future]) -> None:
        """Ack `event` once every future succeeded and every earlier event was acked."""
        self.track_many([event], futures)

    def track_many(self, events: list[faust.EventT], futures: Iterable[asyncio.Future]) -> None:
        """Ack `events` (a batch, in input order) once every future of the batch succeeded and
        every earlier event was acked: one entry, one callback per record, not per event."""
        entry = _Pending(list(events))
        self._queue.append(entry)
        for fut in futures:
            entry.open += 1
            fut.add_done_callback(lambda done, entry=entry: self._on_done(entry, done))
        self._ack_ready()

    def confirmed_through(self, tp: TP) -> int | None:
        """Highest offset of `tp` whose event and all before it are confirmed (this process)."""
        return self._confirmed.get(tp)

    @property
    def open(self) -> int:
        """Events waiting for a confirmation."""
        return len(self._queue)

    def _on_done(self, entry: _Pending, fut: asyncio.Future) -> None:
        if fut.cancelled():
            self._fail(entry, asyncio.CancelledError("record send was cancelled"))
            return
        exc = fut.exception()
        if exc is not None:
            self._fail(entry, exc)
            return
        entry.open -= 1
        self._ack_ready()

    def _ack_ready(self) -> None:
        while self._queue and self._queue[0].open == 0 and self.failure is None:
            for event in self._queue.popleft().events:
                _ack(self.stream, event)
                self._confirmed[event.message.tp] = event.message.offset
                self.failpoints.hit("worker.after_delivery")

    def halt(self, failure: BaseException) -> None:
        """Ack nothing more: the worker is stopping on a platform failure (here or elsewhere).
        An ack after it could let the commit on the way out pass the failed event."""
        if self.failure is None:
            self.failure = failure

    def _fail(self, entry: _Pending, exc: BaseException) -> None:
        if self.failure is not None:
            return
        msg = entry.events[0].message
        failure = DeliveryError(
            f"{self.name}: Kafka did not confirm a record produced for "
            f"{msg.topic}[{msg.partition}]@{msg.offset}: {exc!r}; stopping before its offset "
            "is committed"
        )
        failure.__cause__ = exc
        self.halt(failure)
        log.critical("%s", failure)
        self.on_failure(failure)


def _faust_json(value: Any) -> bytes:
    return want_bytes(faust_json.dumps(value))


def _ack(stream: faust.StreamT | None, event: faust.EventT) -> None:
    # What `Stream.ack` does (it is a coroutine only by signature): the last ack of a message
    # makes its offset committable; the sensors keep Faust's monitor counts right.
    message = event.message
    last = event.ack()
    sensors = event.app.sensors
    sensors.on_stream_event_out(message.tp, message.offset, stream, event)
    if last:
        sensors.on_message_out(message.tp, message.offset, message)
