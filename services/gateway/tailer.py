"""A compacted topic kept in memory: read from the beginning, then followed, in a thread.

Each gateway replica keeps the API keys and the idempotency replies this way. `ready` is set
once the table holds everything the topic held when the replica started (its end offsets then),
so a replica never answers from a partial view; afterwards new records arrive within the tail
latency (a fetch waits at most `fetch.wait.max.ms`, 100 ms here).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from cctv import kafka as kafka_clients
from cctv.settings import KafkaSettings
from schemas.codec import AvroCodec

log = logging.getLogger("cctv.gateway")

T = TypeVar("T")


class TopicTable(Generic[T]):
    """The latest value per Kafka key of one topic, decoded with `convert`."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        topic: str,
        codec: AvroCodec,
        convert: Callable[[dict[str, Any]], T],
        client_suffix: str,
    ) -> None:
        self.topic = topic
        self._settings = settings
        self._codec = codec
        self._convert = convert
        self._suffix = client_suffix
        self._values: dict[str, T] = {}
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tail-{topic}", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def get(self, key: str) -> T | None:
        with self._lock:
            return self._values.get(key)

    def snapshot(self) -> dict[str, T]:
        with self._lock:
            return dict(self._values)

    def put(self, key: str, value: T) -> None:
        """What this replica just wrote itself (it will also read it back from the topic)."""
        with self._lock:
            self._values[key] = value

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as exc:  # Kafka unreachable, topic missing: retry, say so
                self.error = str(exc)
                log.warning("reading %s: %s; retrying", self.topic, exc)
                self._stop.wait(2.0)

    def _follow(self) -> None:
        consumer = kafka_clients.consumer(
            self._settings,
            group_id=f"cctv-gateway-{uuid.uuid4().hex[:8]}",  # never committed: names the client
            client_suffix=self._suffix,
            **{"fetch.wait.max.ms": 100},
        )
        try:
            try:
                metadata = consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
            except KafkaException as exc:
                raise RuntimeError(f"Kafka unreachable: {exc}") from exc
            if metadata is None or metadata.error is not None or not metadata.partitions:
                raise RuntimeError(f"topic not found ({metadata.error if metadata else ''})")
            partitions = sorted(metadata.partitions)
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5)[1]
                for p in partitions
            }
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            pending = {p for p, end in ends.items() if end > 0}
            if not pending:
                self._mark_ready()
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None:
                    if pending:
                        tps = [TopicPartition(self.topic, p) for p in sorted(pending)]
                        for tp in consumer.position(tps):
                            if tp.offset >= ends[tp.partition]:
                                pending.discard(tp.partition)
                        if not pending:
                            self._mark_ready()
                    continue
                if msg.error():
                    continue
                self._apply(msg.key(), msg.value())
                if pending and msg.offset() + 1 >= ends.get(msg.partition(), 0):
                    pending.discard(msg.partition())
                    if not pending:
                        self._mark_ready()
        finally:
            consumer.close()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode("utf-8", errors="replace")
        if value is None:  # tombstone
            with self._lock:
                self._values.pop(name, None)
            return
        try:
            converted = self._convert(self._codec.decode(value).record)
        except Exception as exc:  # not ours to stop on; say so and go on
            log.error("%s: cannot read the record of key %r: %s", self.topic, name, exc)
            return
        with self._lock:
            self._values[name] = converted

    def _mark_ready(self) -> None:
        if not self.ready.is_set():
            self.error = None
            self.ready.set()
            log.info("%s: %d entries loaded", self.topic, len(self._values))


def wait_ready(tables: list[TopicTable[Any]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    return all(t.ready.wait(max(0.0, deadline - time.monotonic())) for t in tables)
