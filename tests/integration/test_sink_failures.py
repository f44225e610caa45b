"""The sink when the platform misbehaves: an unwritable dead-letter topic, rows an engine refuses,
a sink that stalls past its poll interval while another takes its partitions. In each case
every source offset still ends in ClickHouse exactly once or on the dead-letter topic exactly
once, and nothing is committed past what is safe."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from cctv import kafka as kafka_clients
from services.sink.batch import Source
from services.sink.sink import ClickHouseSink
from tests.conftest import TEST_PARTITIONS, wait_until
from tests.integration.test_sink_crash import assert_exactly_once, prepare, stop_merges
from tests.samples import heartbeat

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def set_topic_config(stack, logical: str, name: str, value: str | None) -> None:
    ctx = stack.context()
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        ctx.topics[logical].name,
        incremental_configs=[ConfigEntry(name, value or "", incremental_operation=op)],
    )
    admin = kafka_clients.admin(ctx.settings.kafka)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def committed(stack, ctx) -> dict[int, int]:
    name = ctx.topics["camera_heartbeats"].name
    consumer = kafka_clients.consumer(
        ctx.settings.kafka, group_id=ctx.settings.sink.group_id, client_suffix="check"
    )
    try:
        parts = consumer.committed(
            [TopicPartition(name, p) for p in range(TEST_PARTITIONS)], timeout=30
        )
        return {tp.partition: tp.offset for tp in parts if tp.offset >= 0}
    finally:
        consumer.close()


class Running:
    """A sink running in a thread of the test process, stopped at the end."""

    def __init__(self, ctx, store, **kwargs):
        self.sink = ClickHouseSink(
            settings=ctx.settings, topics=ctx.topics, codec=ctx.codec, store=store, **kwargs
        )
        self.thread = threading.Thread(target=self._run, name="sink-under-test")
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.sink.run()
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sink.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the sink did not stop"


def test_unwritable_dead_letter_topic_stops_the_commit_and_nothing_is_skipped(stack):
    ctx = prepare(stack, batch_max_rows=400, batch_max_seconds=0.5, retry_max_seconds=1)
    # Every dead letter (ids, payload, error text) is larger than this, so the broker refuses
    # them; a transaction marker is smaller, so aborting still works (with 64 bytes the
    # broker cannot write the abort marker and the transaction hangs).
    set_topic_config(stack, "dead_letters", "max.message.bytes", "150")
    store = ctx.open_store()
    try:
        stop_merges(store)
        with Running(ctx, store) as running:
            wait_until(
                lambda: running.sink.stats.failures >= 3 or running.error,
                timeout=120,
                what="the sink to fail its first batches on the refused dead letters",
            )
            assert running.error is None, running.error
            # Nothing committed past a dead letter that Kafka did not take.
            assert committed(stack, ctx) == {}
            set_topic_config(stack, "dead_letters", "max.message.bytes", None)
            wait_until(
                lambda: sum(committed(stack, ctx).values()) >= 3000,
                timeout=120,
                what="the sink to commit everything once the topic takes dead letters again",
            )
        assert running.error is None, running.error
        assert_exactly_once(stack, store)
    finally:
        store.engine.close()


def test_rows_an_engine_refuses_are_found_and_dead_lettered(engine_stack):
    """Values the converters let through but the engine refuses: found by bisecting against
    the Null-engine twin, dead-lettered with the field, the rest inserted."""
    ctx = engine_stack.context()
    store = ctx.open_store()
    store.create_schema()
    try:
        sink = ClickHouseSink(
            settings=ctx.settings, topics=ctx.topics, codec=ctx.codec, store=store
        )
        topic = ctx.topics["camera_heartbeats"].name
        build = sink._builders[topic]
        width = store.column_names(sink._specs[topic][1]).index("width")
        at = dt.datetime(2020, 12, 1, tzinfo=dt.UTC).replace(tzinfo=None)
        rows, sources = [], []
        for i in range(37):
            record = ctx.codec.decode(
                ctx.codec.encode("camera_heartbeat", heartbeat(f"CM-{i}", i))
            ).record
            row = list(build(record, topic, 0, i, at))
            if i in (5, 30):
                row[width] = "not a number"  # an Int32 column
            rows.append(tuple(row))
            sources.append(Source(topic, 0, i, b"CM", b"payload", 1_600_000_000_000))
        spec = sink._specs[topic][1]
        stored = sink._insert_rows(spec, rows, sources)
        assert stored == 35
        assert sink.stats.rejected == 2
        letters = [ctx.codec.decode(v).record for _, v in sink._batch.dead_letters]
        assert [(r["source_offset"], r["reason_code"]) for r in letters] == [
            (5, "storage_rejected"),
            (30, "storage_rejected"),
        ]
        assert {r["field"] for r in letters} == {"width"}
        count = store.engine.query(f"SELECT count() AS n FROM {store.database}.camera_heartbeats")
        assert int(count[0]["n"]) == 35
    finally:
        store.engine.close()


@pytest.mark.chserver
def test_a_stalled_sink_writes_nothing_for_partitions_the_group_moved_on(stack, request):
    """Sink A stalls between consuming and inserting for longer than its poll interval; sink B
    (another process) takes the partitions over. A must not insert or commit what it held."""
    stack.clickhouse_url, stack.clickhouse_http_port = request.getfixturevalue("clickhouse_server")
    ctx = prepare(
        stack,
        batch_max_rows=5000,
        batch_max_seconds=0.5,
        session_timeout_seconds=6,
        max_poll_interval_seconds=7,
        instance_id="a",
    )
    store = ctx.open_store()
    stalled, release = threading.Event(), threading.Event()
    try:
        with Running(ctx, store) as a:
            original = a.sink._ledger.record

            def record_then_stall(batch_id, entries):
                original(batch_id, entries)
                if not stalled.is_set():
                    stalled.set()
                    release.wait(60)

            a.sink._ledger.record = record_then_stall
            wait_until(stalled.is_set, timeout=60, what="sink A to reach its first insert")
            stack.overrides["sink"]["instance_id"] = "b"
            stack.spawn("services.sink", "sink-b")
            wait_until(
                lambda: sum(committed(stack, ctx).values()) >= 3000,
                timeout=120,
                what="sink B to take the partitions over and commit everything",
            )
            release.set()
            wait_until(
                lambda: a.sink.stats.failures >= 1 or a.error,
                timeout=60,
                what="sink A to notice it stalled",
            )
        assert a.sink.stats.inserted == 0, "the stalled sink inserted rows it no longer owned"
        stack.stop_all()
        assert_exactly_once(stack, store)
    finally:
        release.set()
        store.engine.close()
