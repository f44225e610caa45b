"""The agents' output records go to Kafka through librdkafka (confluent-kafka), not Faust's
aiokafka producer.

Measured on this machine (2026-11-28): aiokafka costs ~16 µs of the worker's main thread per
record -- building the batch, the request, the response and a future in Python, on the same
event loop as the agents -- against ~4 µs for librdkafka's `produce`, whose batching and I/O
run in its own C threads. The rules' agents send about three records per decision and the
health agent one or two per heartbeat, so that was a fifth of a worker's time.

Delivery is confirmed per batch: `send_batch` returns one future for all the records of an
agent's batch, resolved once librdkafka confirmed each of them (or failed with the first
error), and the delivery ledger acks the batch's events only then. The producer is idempotent
with acks=all (cctv.kafka.producer) and uses Java's partitioner, so a keyed record lands where
Faust (and every other producer of ours) would put it.

Delivery reports are served by `poll`, on the event loop's thread: `run` polls while records
are outstanding, and every `send_batch` polls once without waiting. Tables' changelog records
still go through Faust (its recovery reads them back); only the agents' own outputs come here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import KafkaException, Producer

from cctv import kafka as kafka_clients
from cctv.exceptions import KafkaError
from cctv.settings import Settings

log = logging.getLogger("cctv.processors")

#: How long `run` sleeps between polls while deliveries are outstanding, and when idle.
BUSY_POLL_SECONDS = 0.002
IDLE_POLL_SECONDS = 0.05


class _Countdown:
    """librdkafka's delivery callback for one batch: resolves its future after the last."""

    __slots__ = ("future", "left")

    def __init__(self, future: asyncio.Future, left: int) -> None:
        self.future, self.left = future, left

    def __call__(self, err: Any, msg: Any) -> None:
        if self.future.done():
            return
        if err is not None:
            self.future.set_exception(
                KafkaError(f"delivery to {msg.topic()}[{msg.partition()}] failed: {err}")
            )
            return
        self.left -= 1
        if self.left == 0:
            self.future.set_result(None)


class OutputProducer:
    """One librdkafka producer for every agent of a worker (created on first use)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: Producer | None = None

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = kafka_clients.producer(
                self._settings.kafka,
                client_suffix="worker-out",
                **{"linger.ms": self._settings.processors.producer_linger_ms},
            )
        return self._producer

    def send_batch(self, records: list[tuple[str, bytes | None, bytes]]) -> list[asyncio.Future]:
        """Queue `records` (topic, key, value); one future for all of them (none if empty)."""
        if not records:
            return []
        future = asyncio.get_running_loop().create_future()
        on_delivery = _Countdown(future, len(records))
        producer = self.producer
        produce = producer.produce
        for topic, key, value in records:
            while True:
                try:
                    produce(topic, value, key, on_delivery=on_delivery)
                    break
                except BufferError:  # librdkafka's queue is full: let it drain, then retry
                    producer.poll(0.05)
                except KafkaException as exc:
                    raise KafkaError(f"could not queue a record for {topic}: {exc}") from exc
        producer.poll(0)
        return [future]

    def outstanding(self) -> int:
        return 0 if self._producer is None else len(self._producer)

    async def run(self) -> None:
        """Serve delivery reports for as long as the worker runs."""
        while True:
            if self._producer is not None:
                self._producer.poll(0)
            await asyncio.sleep(BUSY_POLL_SECONDS if self.outstanding() else IDLE_POLL_SECONDS)

    def flush(self, timeout: float) -> int:
        """Wait up to `timeout` s for what is queued; the number of records still undelivered
        (their events were not acked: at-least-once sends them again after a restart)."""
        if self._producer is None:
            return 0
        left = self._producer.flush(timeout)
        if left:
            log.warning(
                "%d output record(s) not confirmed at shutdown; their events are "
                "processed again after the restart",
                left,
            )
        return left
