"""A batch channel: a Faust topic whose events reach their agent as lists, not one at a time.

Faust hands each event to an agent through a queue and the agent's Stream: per event a queue
put and get, the stream's iteration, its sensors and the current-event context. Measured here
(docs/BENCHMARKS.md, health notes), that is ~30 µs of the ~75 µs a bare Faust agent spends on
a heartbeat. The heartbeats carry a national fleet's volume and the health agent works on them
in batches anyway, so they come through a `BatchTopic`:

* it is subscribed through Faust's conductor like any topic: the same consumer, group,
  partition assignment, offsets, commits and rebalances; the conductor's per-message delivery
  appends the event (a plain `faust.Event` over the raw bytes) to a list, and `take` hands the
  agent that list;
* **rebalances**: the buffer is one of the flow control's queues, so a rebalance empties it as
  it empties a stream's queue (Faust seeks every partition back to its committed offset and the
  events come again); `take` also drops events of an older consumer generation, as the stream
  does;
* **back-pressure**: past `maxsize` buffered events, a partition's fetching is paused (Faust's
  own on_pressure_high) until the agent has taken the buffer; at twice that, the conductor waits;
* **acks**: each event taken is tracked as unacked (a rebalance waits for it, as for a stream's)
  and is acked by the agent's DeliveryLedger once what it caused is delivered. The conductor
  gave each message one reference; the ledger's ack releases it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
from faust.events import Event


class _Buffer:
    """The list behind a BatchTopic; also what Faust's flow control clears on a rebalance."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: list[Event] = []
        self._want = 0  # events a waiting `take` needs to wake up
        self._waiter: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None
        self._paused: dict[Any, Callable[[], None]] = {}  # tp -> Faust's on_pressure_drop

    # -- Faust's side (the conductor) ---------------------------------------------------------

    def full(self) -> bool:
        return len(self.items) >= 2 * self.maxsize

    def qsize(self) -> int:
        return len(self.items)

    def put_nowait_enhanced(
        self,
        value: Event,
        *,
        on_pressure_high: Callable[[], None],
        on_pressure_drop: Callable[[], None],
    ) -> None:
        self.items.append(value)
        if len(self.items) >= self.maxsize:
            tp = value.message.tp
            if tp not in self._paused:
                self._paused[tp] = on_pressure_drop
                on_pressure_high()  # Faust stops fetching this partition for now
        self._wake()

    async def put(self, value: Event) -> None:
        """The conductor's way in when `full()`: wait for the agent to take the buffer."""
        while self.full():
            if self._space is None or self._space.done():
                self._space = asyncio.get_running_loop().create_future()
            await self._space
        self.items.append(value)
        self._wake()

    def clear(self) -> None:
        """A rebalance: Faust seeks back to the committed offsets, the events come again."""
        self.items = []
        self._release()

    # -- the agent's side ---------------------------------------------------------------------

    async def wait_for(self, count: int, timeout: float | None) -> None:
        """Until `count` events are buffered, or `timeout` seconds passed."""
        if len(self.items) >= count:
            return
        self._want = count
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._waiter, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiter = None

    def drain(self, limit: int) -> list[Event]:
        items = self.items
        if len(items) <= limit:
            self.items = []
        else:
            items, self.items = items[:limit], items[limit:]
        if len(self.items) < self.maxsize // 2:
            self._release()
        return items

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and len(self.items) >= self._want:
            waiter.set_result(None)

    def _release(self) -> None:
        paused, self._paused = self._paused, {}
        for on_pressure_drop in paused.values():
            on_pressure_drop()  # Faust fetches the partition again
        if self._space is not None and not self._space.done():
            self._space.set_result(None)


class BatchTopic(faust.Topic):
    """Raw-bytes events of `topics`, for an agent that takes them as lists (`take`)."""

    _buffer: _Buffer

    def _compile_decode(self) -> None:
        # Keys and values stay bytes (the agents decode with our Avro codec): a plain Event,
        # without Faust's serializer lookups.
        app = self.app

        async def decode(message: Any, *, propagate: bool = False) -> Event:
            return Event(app, message.key, message.value, message.headers, message)

        self.decode = decode  # type: ignore[method-assign]

    @property
    def queue(self) -> _Buffer:  # type: ignore[override]
        return self._buffer

    async def put(self, value: Any) -> None:
        await self._buffer.put(value)

    async def take(self, max_events: int, within: float) -> list[Event]:
        """The next batch: waits for a first event, then up to `within` seconds for
        `max_events`; events of an earlier consumer generation (before a rebalance) are
        dropped, the others tracked as unacked until their ledger acks them."""
        buffer = self._buffer
        await buffer.wait_for(1, None)
        await buffer.wait_for(max_events, within)
        app = self.app
        events = buffer.drain(max_events)
        if not app.flow_control.is_active():
            return []
        generation = app.consumer_generation_id
        track = app.consumer.track_message
        taken = []
        for event in events:
            message = event.message
            if message.generation_id == generation:
                if not message.tracked:
                    message.tracked = True
                    track(message)
                taken.append(event)
        return taken


def batch_topic(app: faust.App, names: list[str], *, maxsize: int) -> BatchTopic:
    """A BatchTopic over `names` (raw bytes), registered with the app's conductor now."""
    topic = BatchTopic(
        app,
        topics=names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    topic._buffer = _Buffer(maxsize)
    app.flow_control.manage_queue(topic._buffer)  # type: ignore[arg-type]
    app.topics.add(topic)
    return topic
