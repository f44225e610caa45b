"""The ClickHouse sink: Kafka topics -> rows in ClickHouse, every offset exactly once.

One batch at a time (`InsertContext`), cut by size and by age:

1. consume many messages per call; decode each and build its row, or make it a dead letter
   (undecodable, or a value no column can hold);
2. flush, inside one Kafka transaction: write the batch's intent to the ledger
   (cctv/storage/ledger.py), insert each (table, month) of rows -- a row the engine refuses
   for its content is found by bisecting against the table's Null-engine twin and becomes a
   dead letter -- produce the dead letters, then commit the transaction together with the
   consumer offsets (`send_offsets_to_transaction`). Dead letters and offsets become visible
   together or not at all, so a crash never loses a dead letter nor writes one twice.
3. on a failure (ClickHouse or Kafka unreachable, a transaction fenced): abort, pause the
   partitions, and redo from the committed offsets once the pause (with backoff) is over.

A partition's resume point and its offsets in doubt come from the ledger: whatever a crashed
insert left behind, the rows that landed are skipped and the others written, on every engine
(Debian's 18.16 has no insert deduplication). The ledger is read in the main loop, never in a
rebalance callback: assigned partitions start paused and are set up there. Partitions that are
*lost* (the group moved on without us) are dropped, not flushed; revoked ones get one flush
attempt and are otherwise left to their next owner.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from cctv import kafka as kafka_clients
from cctv.deadletter import dead_letter
from cctv.exceptions import CctvError, KafkaError, RowRejected, StorageError, StorageUnavailable
from cctv.failpoints import DISARMED, Failpoints
from cctv.settings import Settings
from cctv.storage.ledger import Ledger
from cctv.storage.store import Store
from cctv.storage.tables import TableSpec, month_of, table_for_schema
from cctv.topics import TopicRegistry, TopicSpec
from schemas.codec import AvroCodec
from schemas.errors import SchemaError
from services.sink.avro_passthrough import Passthrough
from services.sink.batch import Block, InsertContext, Source

log = logging.getLogger("cctv.sink")
PROCESSOR = "sink"
_KAFKA_TIMEOUT = 30.0
# Failures of the platform, not of one message: the batch is redone after a pause.
_PLATFORM_ERRORS = (StorageError, KafkaException, KafkaError, BufferError)


@dataclass
class SinkStats:
    consumed: int = 0
    inserted: int = 0
    dead_lettered: int = 0
    rejected: int = 0  # rows an engine refused, dead-lettered (also counted in dead_lettered)
    skipped: int = 0  # rows already stored by a batch that did not commit
    flushes: int = 0
    failures: int = 0
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
        failpoints: Failpoints | None = None,
    ):
        self.settings = settings
        self.codec = codec
        self.store = store
        self.stats = SinkStats()
        self._on_flush = on_flush
        self._failpoints = failpoints or DISARMED
        self._stop = threading.Event()
        cfg = settings.sink
        self._specs: dict[str, tuple[TopicSpec, TableSpec]] = {}
        self._builders = {}
        self._passthrough: dict[str, Passthrough | None] = {}
        avro_engine = cfg.avro_passthrough and store.engine.accepts_avro()
        if cfg.avro_passthrough and not avro_engine:
            log.warning(
                "%s does not answer on its HTTP port: every row goes through the Python path "
                "(set clickhouse.http_port, or sink.avro_passthrough: false to silence this)",
                store.engine.description,
            )
        for logical in cfg.topics:
            spec = topics[logical]
            table = table_for_schema(spec.schema_name)
            self._specs[spec.name] = (spec, table)
            self._builders[spec.name] = store.row_builder(table)
            latest = codec.registry.get(spec.schema_name)
            self._passthrough[spec.name] = (
                Passthrough.for_table(table, latest.raw, latest.fingerprint, store.engine.dialect)
                if avro_engine
                else None
            )
        self._source_bytes: dict[tuple[str, int], bytes] = {}
        self._dlq_topic = topics["dead_letters"].name
        self._batch = InsertContext(max_rows=cfg.batch_max_rows, max_seconds=cfg.batch_max_seconds)
        self._ledger = Ledger(store.engine, database=store.database, sink_group=cfg.group_id)
        # Per assigned (topic, partition):
        self._assigned: set[tuple[str, int]] = set()
        self._needs_setup: set[tuple[str, int]] = set()  # paused until the ledger is read
        self._committed: dict[tuple[str, int], int] = {}  # everything before it is handled
        self._positions: dict[tuple[str, int], int] = {}  # the next offset we expect
        self._skip: dict[tuple[str, int], tuple[int, set[int]]] = {}  # last in doubt, stored
        self._retry_at = 0.0
        self._delay = 0.5
        self._next_prune = 0.0
        self._instance = cfg.instance_id or socket.gethostname()
        # Static membership: a sink restarted under the same instance id takes its partitions
        # back at once, without waiting for the dead process's session to expire.
        self._max_poll_seconds = max(cfg.session_timeout_seconds, cfg.max_poll_interval_seconds)
        self._consumer = kafka_clients.consumer(
            settings.kafka,
            group_id=cfg.group_id,
            client_suffix="sink",
            **{
                "session.timeout.ms": int(cfg.session_timeout_seconds * 1000),
                "group.instance.id": f"{cfg.group_id}.{self._instance}",
                "max.poll.interval.ms": int(self._max_poll_seconds * 1000),
                # librdkafka prefetches up to 64 MiB by default; a batch is far smaller, and
                # the sink's memory is measured (docs/BENCHMARKS.md).
                "queued.max.messages.kbytes": 16384,
            },
        )
        self._producer: Any = self._new_producer()
        self._last_poll = time.monotonic()

    def _new_producer(self) -> Any:
        # Same transactional id each time: a new producer fences whatever the previous one (in
        # this process or a crashed one) left open, and aborts it on the broker.
        return kafka_clients.transactional_producer(
            self.settings.kafka,
            transactional_id=f"{self.settings.sink.group_id}.{self._instance}",
            client_suffix="sink",
        )

    # -- lifecycle -------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, *, max_idle_seconds: float | None = None) -> SinkStats:
        """Consume until stopped (or idle for `max_idle_seconds`), then flush and commit."""
        cfg = self.settings.sink
        self._consumer.subscribe(
            list(self._specs),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                if self._needs_setup and time.monotonic() >= self._retry_at:
                    self._guard(self._setup)
                messages = self._consumer.consume(
                    num_messages=min(self._batch.room(), cfg.consume_batch),
                    timeout=cfg.poll_timeout_seconds,
                )
                self._last_poll = time.monotonic()
                if messages:
                    idle_since = time.monotonic()
                    self._handle(messages)
                elif not self._assigned or self._needs_setup:
                    # Idle time counts only once partitions are ours and set up: after a crash
                    # the group may wait for the dead member's session to expire.
                    idle_since = time.monotonic()
                elif max_idle_seconds is not None:
                    if time.monotonic() - idle_since >= max_idle_seconds:
                        break  # the flush below writes what is still batched
                if self._batch.due() and not self._needs_setup:
                    self._guard(self.flush)
                self._prune_ledger()
            if self._batch.messages and not self._needs_setup:
                self._guard(self.flush)  # one attempt; what fails is redone by the next run
        finally:
            self._consumer.close()
        return self.stats

    def _guard(self, step: Callable[[], None]) -> bool:
        """Run a step that talks to ClickHouse and Kafka; on a platform failure, throw the
        batch away and redo it from the committed offsets after a pause."""
        try:
            step()
        except _PLATFORM_ERRORS as exc:
            _raise_if_fenced(exc, self._instance)
            self.stats.failures += 1
            log.error("%s; redoing from the committed offsets in %.1f s", exc, self._delay)
            self._batch.clear()
            self._skip.clear()
            # Ask Kafka again: a commit that raised may still have gone through.
            self._committed.clear()
            paused = [TopicPartition(t, p) for t, p in self._assigned]
            if paused:
                self._consumer.pause(paused)
            self._needs_setup = set(self._assigned)
            self._retry_at = time.monotonic() + self._delay
            self._delay = min(self._delay * 2, self.settings.sink.retry_max_seconds)
            return False
        self._delay = 0.5
        return True

    # -- rebalance: nothing slow happens in these callbacks --------------------------------
    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        consumer.assign(partitions)
        consumer.pause(partitions)  # until the main loop has read their resume points
        foreign = [tp for tp in partitions if tp.topic not in self._specs]
        if foreign:
            # A static member that rejoins with another subscription may be handed its old
            # assignment: never read those, they belong to no table of ours.
            log.warning(
                "assigned partitions of topics this sink does not store, left paused: %s",
                ", ".join(sorted({tp.topic for tp in foreign})),
            )
        for tp in partitions:
            if tp.topic not in self._specs:
                continue
            key = (tp.topic, tp.partition)
            self._assigned.add(key)
            self._needs_setup.add(key)
            self._committed.pop(key, None)
        self._retry_at = 0.0

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if self._batch.messages and not self._needs_setup:
            # One attempt, no retry loop: the group waits for us. What fails is redone by the
            # partitions' next owner from the committed offsets and the ledger.
            if not self._guard(self.flush):
                log.warning("revoked partitions left unflushed for their next owner")
        self._forget(partitions)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Another member may own them already: never flush or commit for them.
        log.warning("lost %d partition(s); dropping their unflushed batch", len(partitions))
        self._batch.clear()
        self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            for state in (self._committed, self._positions, self._skip):
                state.pop(key, None)
            self._assigned.discard(key)
            self._needs_setup.discard(key)

    def _setup(self) -> None:
        """Resume points and offsets in doubt of the partitions waiting for them."""
        keys = sorted(self._needs_setup)
        unknown = [TopicPartition(t, p) for t, p in keys if (t, p) not in self._committed]
        if unknown:
            for tp in self._consumer.committed(unknown, timeout=_KAFKA_TIMEOUT):
                if tp.error:
                    raise KafkaError(f"committed offset of {tp.topic}[{tp.partition}]: {tp.error}")
                if tp.offset >= 0:
                    self._committed[(tp.topic, tp.partition)] = tp.offset
        seeks = []
        for topic, partition in keys:
            key = (topic, partition)
            doubt = self._ledger.in_doubt(topic, partition, self._committed.get(key))
            table = self._specs[topic][1]
            if doubt.last >= doubt.resume >= 0:
                months = doubt.tables.get(table.name)
                stored = self._ledger.stored_offsets(
                    table,
                    topic=topic,
                    partition=partition,
                    first=doubt.resume,
                    last=doubt.last,
                    months=months,
                )
                self._skip[key] = (doubt.last, stored)
                log.info(
                    "%s[%d]: offsets %d..%d in doubt after an unfinished batch; %d already "
                    "stored will be skipped",
                    topic,
                    partition,
                    doubt.resume,
                    doubt.last,
                    len(stored),
                )
            if doubt.resume >= 0:
                self._committed[key] = doubt.resume
                self._positions[key] = doubt.resume
                seeks.append(TopicPartition(topic, partition, doubt.resume))
            else:
                self._positions.pop(key, None)
                seeks.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        for tp in seeks:
            self._consumer.seek(tp)
        self._consumer.resume([TopicPartition(t, p) for t, p in keys])
        self._needs_setup.clear()

    # -- per message -----------------------------------------------------------------------
    def _handle(self, messages: Sequence[Any]) -> None:
        ingested_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        batch = self._batch
        stats = self.stats
        positions = self._positions
        for msg in messages:
            if msg.error():
                log.warning("kafka: %s", msg.error())
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            key = (topic, partition)
            if key in self._needs_setup or key not in self._assigned:
                continue  # fetched before a pause or a revoke: read again after the seek
            position = positions.get(key)
            if position is not None and offset < position:
                continue  # delivered twice by the client: already accounted for
            stats.consumed += 1
            positions[key] = offset + 1
            skip = self._skip.get(key)
            if skip is not None:
                if offset <= skip[0]:
                    if offset in skip[1]:
                        batch.skip(topic=topic, partition=partition, offset=offset, start=position)
                        stats.skipped += 1
                        continue
                else:
                    del self._skip[key]
            value = msg.value() or b""
            passthrough = self._passthrough[topic]
            if passthrough is not None:
                millis = passthrough.time_of(value)
                if millis is not None:
                    source = self._source_bytes.get(key)
                    if source is None:
                        source = self._source_bytes[key] = Passthrough.source_bytes(*key)
                    batch.add(
                        passthrough.spec,
                        (value, source, offset),
                        topic=topic,
                        partition=partition,
                        offset=offset,
                        month=passthrough.month_of(millis),
                        source=msg,
                        start=position,
                        kind="avro",
                    )
                    continue
            row, month, error = self._row(topic, partition, offset, value, ingested_at)
            if error is not None:
                batch.add_dead_letter(
                    *self._dead_letter(msg, error),
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    start=position,
                )
            else:
                batch.add(
                    self._specs[topic][1],
                    row,
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    month=month,
                    source=msg,
                    start=position,
                )

    def _row(
        self, topic: str, partition: int, offset: int, value: bytes, ingested_at: dt.datetime
    ) -> tuple[Any, int, BaseException | None]:
        """(row, month, None) for a good message, (None, 0, error) for a dead letter."""
        spec, table = self._specs[topic]
        try:
            record = self.codec.decode(value, expected=spec.schema_name).record
            row = self._builders[topic](record, topic, partition, offset, ingested_at)
            return row, month_of(record[table.time_column]), None
        except (SchemaError, CctvError, ValueError, TypeError, KeyError) as exc:
            return None, 0, exc

    def _dead_letter(self, source: Any, exc: BaseException) -> tuple[bytes, bytes]:
        """(key, encoded dead letter) for a message -- a Kafka message or a `Source`."""
        if not isinstance(source, Source):
            source = _source(source)
        record = dead_letter(
            processor=PROCESSOR,
            producer=f"{self.settings.kafka.client_id}-sink",
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            key=source.key,
            payload=source.value,
            error=exc,
            occurred_at=_kafka_time(source.timestamp_ms),
        )
        log.warning(
            "dead letter %s[%d]@%d %s: %s",
            source.topic,
            source.partition,
            source.offset,
            record["reason_code"],
            record["error"],
        )
        self.stats.dead_lettered += 1
        return source.topic.encode(), self.codec.encode("dead_letter", record)

    # -- flush and commit --------------------------------------------------------------------
    def flush(self) -> None:
        batch = self._batch
        positions = batch.positions()
        if not positions:
            return
        fp = self._failpoints
        if self._producer is None:
            self._producer = self._new_producer()
        self._producer.begin_transaction()
        try:
            entries = batch.ledger_entries()
            if entries:
                self._ledger.record(uuid.uuid4().hex, entries)
                fp.hit("sink.after_ledger")
            inserted = 0
            ingested_ms = int(time.time()) * 1000
            for block in list(batch.blocks()):
                insert = (
                    self._insert_block(block)
                    if block.kind == "rows"
                    else self._insert_avro_block(block, ingested_ms)
                )
                for rows in insert:
                    inserted += 1
                    if inserted == 1:
                        fp.hit("sink.after_first_insert")
                    self.stats.inserted += rows
                    name = block.spec.name
                    self.stats.by_table[name] = self.stats.by_table.get(name, 0) + rows
            fp.hit("sink.after_insert")
            for key, value in batch.dead_letters:
                self._produce(key, value)
            offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
            self._producer.send_offsets_to_transaction(
                offsets, self._consumer.consumer_group_metadata(), _KAFKA_TIMEOUT
            )
            fp.hit("sink.before_commit")
            self._producer.commit_transaction(_KAFKA_TIMEOUT)
        except BaseException:
            self._abort()
            raise
        fp.hit("sink.after_commit")
        self._committed.update(positions)
        batch.clear()
        self.stats.flushes += 1
        if self._on_flush:
            self._on_flush(self.stats)

    def _produce(self, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self._dlq_topic, key=key, value=value)
                self._producer.poll(0)
                return
            except BufferError:  # the local queue is full: let deliveries drain
                self._producer.poll(0.1)

    def _abort(self) -> None:
        """Abort the open transaction; if even that fails, drop the producer: the next flush
        starts a new one, whose start fences and aborts what this one left open."""
        if self._producer is None:
            return
        try:
            self._producer.abort_transaction(10)
            return
        except KafkaException as exc:
            log.warning("aborting the Kafka transaction failed (%s); replacing the producer", exc)
        try:
            self._producer.purge()
        except KafkaException:
            pass
        self._producer = None

    def _insert_block(self, block: Block):
        """Insert a table's rows one month (= one ClickHouse partition) at a time; yields the
        number of rows each insert stored."""
        for rows, sources in block.by_month():
            yield self._insert_rows(block.spec, rows, sources)

    def _insert_avro_block(self, block: Block, ingested_ms: int):
        """The passthrough's rows, one Avro container per month. A container ClickHouse refuses
        (a corrupt body, a value it cannot read) is redone message by message in Python, where
        each bad message becomes its own dead letter."""
        ingested_at = dt.datetime.fromtimestamp(ingested_ms / 1000, dt.UTC)
        table = f"{self.store.database}.{block.spec.name}"
        for items, sources in block.by_month():
            self._check_poll_interval()
            through = self._passthrough[sources[0].topic()]
            try:
                self.store.engine.insert_avro(
                    table,
                    self.store.column_names(block.spec),
                    through.container(items, ingested_ms),
                )
                yield len(items)
                continue
            except StorageUnavailable:
                raise
            except StorageError as exc:
                log.warning("Avro insert refused, redoing %d rows in Python: %s", len(items), exc)
            rows, good = [], []
            for (value, _, offset), msg in zip(items, sources, strict=True):
                row, _, error = self._row(msg.topic(), msg.partition(), offset, value, ingested_at)
                if error is None:
                    rows.append(row)
                    good.append(msg)
                else:
                    self._batch.dead_letters.append(self._dead_letter(msg, error))
            yield self._insert_rows(block.spec, rows, good) if rows else 0

    def _check_poll_interval(self) -> None:
        # A sink that has not polled for max.poll.interval has been dropped from the group,
        # and the partitions' new owner may already be writing them: stop before writing too.
        stalled = time.monotonic() - self._last_poll
        if stalled > 0.8 * self._max_poll_seconds:
            raise KafkaError(
                f"no poll for {stalled:.0f} s: the group may have moved these partitions on; "
                "not inserting"
            )

    def _insert_rows(self, spec: TableSpec, rows: list, sources: list[Any]) -> int:
        self._check_poll_interval()
        try:
            self.store.insert(spec, rows)
            return len(rows)
        except StorageUnavailable:
            raise
        except StorageError as exc:
            # Is it these rows, or the table (too many parts, disk full...)? The Null twin
            # parses and converts exactly as the insert does, and stores nothing.
            try:
                self.store.probe(spec, rows)
            except StorageUnavailable:
                raise
            except StorageError:
                pass
            else:
                raise exc
        refused = self._refused(spec, rows, list(range(len(rows))))
        for i, error in refused:
            self.stats.rejected += 1
            refusal = RowRejected(str(error), field=_field_of(str(error)))
            self._batch.dead_letters.append(self._dead_letter(sources[i], refusal))
        bad = {i for i, _ in refused}
        good = [row for i, row in enumerate(rows) if i not in bad]
        if good:
            self.store.insert(spec, good)
        return len(good)

    def _refused(
        self, spec: TableSpec, rows: list, indexes: list[int]
    ) -> list[tuple[int, StorageError]]:
        """Bisect `rows[indexes]` against the Null twin: the rows the engine refuses."""
        try:
            self.store.probe(spec, [rows[i] for i in indexes])
            return []
        except StorageUnavailable:
            raise
        except StorageError as exc:
            if len(indexes) == 1:
                return [(indexes[0], exc)]
        middle = len(indexes) // 2
        return self._refused(spec, rows, indexes[:middle]) + self._refused(
            spec, rows, indexes[middle:]
        )

    def _prune_ledger(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + 3600
        try:
            dropped = self._ledger.prune(keep_days=self.settings.sink.ledger_retention_days)
            if dropped:
                log.info("ledger: dropped %d old day(s)", len(dropped))
        except StorageError as exc:
            log.warning("ledger: pruning old entries failed (will retry in an hour): %s", exc)


def _raise_if_fenced(exc: BaseException, instance: str) -> None:
    """A fenced producer or member means another sink runs under our instance id: retrying
    would fence it back and forth. Stop, saying what to change."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    fatal = getattr(error, "fatal", lambda: False)()
    text = str(exc)
    if fatal or "FENCED" in text.upper():
        raise KafkaError(
            f"another sink runs with instance id {instance!r} in this group ({text}); give each "
            "sink its own CCTV_SINK__INSTANCE_ID"
        ) from exc


def _source(msg: Any) -> Source:
    kind, ts = msg.timestamp()
    return Source(
        topic=msg.topic(),
        partition=msg.partition(),
        offset=msg.offset(),
        key=msg.key(),
        value=msg.value(),
        timestamp_ms=ts if kind else None,
    )


def _kafka_time(timestamp_ms: int | None) -> dt.datetime | None:
    if timestamp_ms is None or timestamp_ms < 0:
        return None
    return dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC)


_FIELD_PATTERNS = (
    re.compile(r"Column (\w+):"),  # clickhouse-driver
    re.compile(r"while reading the value of key (\w+)"),  # ClickHouse's JSONEachRow parser
    re.compile(r"column (\w+)", re.IGNORECASE),
)


def _field_of(message: str) -> str | None:
    for pattern in _FIELD_PATTERNS:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None
