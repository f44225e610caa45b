"""The ClickHouse sink: Kafka topics -> decoded rows -> ClickHouse, committing only what landed.

Guarantees:
- An offset is committed only after every message before it is in ClickHouse or in the
  dead-letter topic (acknowledged by Kafka).
- Each row stores its (topic, partition, offset). On partition assignment the sink starts after
  the highest offset ClickHouse already holds, so a crash between insert and commit does not
  insert the batch twice: on an 18.16 server there are no insert dedup tokens, and this works on
  every engine alike.
- A batch that fails to insert is retried unchanged (with backoff) until it lands or the sink is
  told to stop; nothing after it is consumed meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_INVALID, KafkaException, TopicPartition

from cctv import kafka as kafka_clients
from cctv.deadletter import dead_letter
from cctv.exceptions import CctvError, StorageError
from cctv.settings import Settings
from cctv.storage.store import SourcePosition, Store
from cctv.storage.tables import TableSpec, table_for_schema
from cctv.topics import TopicRegistry, TopicSpec
from schemas.codec import AvroCodec
from schemas.errors import SchemaError

log = logging.getLogger("cctv.sink")
PROCESSOR = "sink"


@dataclass
class SinkStats:
    consumed: int = 0
    inserted: int = 0
    dead_lettered: int = 0
    flushes: int = 0
    by_table: dict[str, int] = field(default_factory=dict)


class ClickHouseSink:
    def __init__(
        self,
        *,
        settings: Settings,
        topics: TopicRegistry,
        codec: AvroCodec,
        store: Store,
        on_flush: Callable[[SinkStats], None] | None = None,
    ):
        from services.sink.batch import InsertContext

        self.settings = settings
        self.codec = codec
        self.store = store
        self.stats = SinkStats()
        self._on_flush = on_flush
        self._stop = threading.Event()
        self._specs: dict[str, tuple[TopicSpec, TableSpec]] = {}
        for logical in settings.sink.topics:
            spec = topics[logical]
            self._specs[spec.name] = (spec, table_for_schema(spec.schema_name))
        self._dlq_topic = topics["dead_letters"].name
        self._batch = InsertContext(
            max_rows=settings.sink.batch_max_rows, max_seconds=settings.sink.batch_max_seconds
        )
        self._assigned = False
        self._consumer = kafka_clients.consumer(
            settings.kafka,
            group_id=settings.sink.group_id,
            client_suffix="sink",
            **{"session.timeout.ms": int(settings.sink.session_timeout_seconds * 1000)},
        )
        self._producer = kafka_clients.producer(settings.kafka, client_suffix="sink-dlq")

    # -- lifecycle -------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, *, max_idle_seconds: float | None = None) -> SinkStats:
        """Consume until stopped (or idle for `max_idle_seconds`), then flush and commit."""
        self._consumer.subscribe(
            list(self._specs), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                msg = self._consumer.poll(self.settings.sink.poll_timeout_seconds)
                if msg is None:
                    # Idle time counts only once partitions are ours: after a crash the group
                    # may wait for the dead member's session to expire before assigning.
                    if not self._assigned:
                        idle_since = time.monotonic()
                    elif max_idle_seconds is not None:
                        if time.monotonic() - idle_since >= max_idle_seconds:
                            break  # the flush below writes what is still batched
                elif msg.error():
                    log.warning("kafka: %s", msg.error())
                else:
                    idle_since = time.monotonic()
                    self._handle(msg)
                if self._batch.due():
                    self.flush()
            self.flush()
        finally:
            self._consumer.close()
        return self.stats

    # -- per message -----------------------------------------------------------------------
    def _handle(self, msg: Any) -> None:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        self.stats.consumed += 1
        topic_spec, table = self._specs[topic]
        try:
            decoded = self.codec.decode(msg.value() or b"", expected=topic_spec.schema_name)
            row = self.store.build_row(
                table,
                decoded.record,
                SourcePosition(topic, partition, offset),
                dt.datetime.now(dt.UTC),
            )
        except (SchemaError, CctvError, ValueError, TypeError) as exc:
            self._dead_letter(msg, exc)
            self._batch.account(topic=topic, partition=partition, offset=offset)
            return
        self._batch.add(table, row, topic=topic, partition=partition, offset=offset)

    def _dead_letter(self, msg: Any, exc: BaseException) -> None:
        record = dead_letter(
            processor=PROCESSOR,
            producer=f"{self.settings.kafka.client_id}-sink",
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            key=msg.key(),
            payload=msg.value(),
            error=exc,
        )
        log.warning(
            "dead letter %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), record["error"]
        )
        self._producer.produce(
            self._dlq_topic,
            key=msg.topic().encode(),
            value=self.codec.encode("dead_letter", record),
        )
        self._producer.poll(0)
        self.stats.dead_lettered += 1

    # -- flush and commit --------------------------------------------------------------------
    def flush(self) -> None:
        positions = self._batch.positions()
        if not positions:
            return
        for block in self._batch.blocks():
            self._insert_with_retry(block.spec, block.rows)
            self.stats.inserted += len(block.rows)
            self.stats.by_table[block.spec.name] = self.stats.by_table.get(
                block.spec.name, 0
            ) + len(block.rows)
        kafka_clients.wait_delivered(self._producer)
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The rows are safely stored; after a rebalance the new owner resumes from
            # ClickHouse's offsets, so a failed commit costs a re-read, never a duplicate.
            log.warning("offset commit failed (will resume from ClickHouse): %s", exc)
        self._batch.clear()
        self.stats.flushes += 1
        if self._on_flush:
            self._on_flush(self.stats)

    def _insert_with_retry(self, spec: TableSpec, rows: list) -> None:
        delay = 0.5
        while True:
            try:
                self.store.insert(spec, rows)
                return
            except StorageError as exc:
                if self._stop.is_set():
                    raise
                log.error("insert into %s failed, retrying in %.1f s: %s", spec.name, delay, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    # -- rebalance -------------------------------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        by_table: dict[str, tuple[TableSpec, set[str]]] = {}
        for tp in partitions:
            _, table = self._specs[tp.topic]
            by_table.setdefault(table.name, (table, set()))[1].add(tp.topic)
        stored: dict[tuple[str, int], int] = {}
        for table, topic_names in by_table.values():
            stored.update(self.store.stored_offsets(table, topic_names))
        committed = {
            (tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, timeout=30)
        }
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if key in stored:
                resume = stored[key] + 1
                commit = committed.get(key, OFFSET_INVALID)
                if commit < 0 or resume > commit:
                    tp.offset = resume
                    log.info("%s[%d]: resuming after ClickHouse's offset %d", *key, stored[key])
        consumer.assign(partitions)
        self._assigned = True

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.flush()
