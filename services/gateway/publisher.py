"""Publishing a request's records and knowing, within a bound, that Kafka holds every one.

One idempotent producer (acks=all) per process; a thread serves its delivery reports. Each
request counts its own acknowledgements, so one slow request never waits for another's
records, and the answer is 202 only once Kafka confirmed each record of the request.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaException

from cctv import kafka as kafka_clients
from cctv.settings import KafkaSettings


class NotDelivered(Exception):
    """Kafka did not confirm every record of a request within the bound, or refused one."""


class _Batch:
    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int) -> None:
        self._loop = loop
        self._remaining = expected
        self._lock = threading.Lock()
        self.failures: list[str] = []
        self.done: asyncio.Future[None] = loop.create_future()
        if expected == 0:
            self.done.set_result(None)

    def on_delivery(self, err: Any, msg: Any) -> None:  # the poll thread
        with self._lock:
            if err is not None:
                self.failures.append(f"{msg.topic()}: {err}")
            self._remaining -= 1
            finished = self._remaining == 0
        if finished:
            self._loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class Publisher:
    def __init__(self, settings: KafkaSettings, *, timeout: float, linger_ms: int = 1) -> None:
        self.timeout = timeout
        # Records still unacknowledged when the request gives up are dropped by librdkafka
        # soon after, instead of landing minutes later behind a 503.
        self.producer = kafka_clients.producer(
            settings,
            client_suffix="gateway",
            **{"message.timeout.ms": max(1000, int(timeout * 1000)), "linger.ms": linger_ms},
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="gateway-producer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.1)

    async def publish(self, messages: list[tuple[str, bytes, bytes]]) -> None:
        """Produce (topic, key, value) messages; return once Kafka acknowledged all of them,
        raise NotDelivered otherwise (some may still have been written: the caller's answer
        must tell the client to resend, which the event ids make harmless)."""
        batch = _Batch(asyncio.get_running_loop(), len(messages))
        try:
            for topic, key, value in messages:
                self.producer.produce(topic, key=key, value=value, on_delivery=batch.on_delivery)
        except (BufferError, KafkaException) as exc:
            raise NotDelivered(f"the producer refused a record: {exc}") from exc
        try:
            await asyncio.wait_for(asyncio.shield(batch.done), self.timeout)
        except TimeoutError:
            raise NotDelivered(
                f"Kafka did not acknowledge {len(messages)} record(s) within {self.timeout:g} s"
            ) from None
        if batch.failures:
            raise NotDelivered(
                f"Kafka refused {len(batch.failures)} record(s): {batch.failures[0]}"
            )

    def reachable(self, timeout: float = 2.0) -> bool:
        """Whether a broker answers a metadata request now (blocking: call from a thread)."""
        try:
            self.producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.producer.flush(self.timeout)
