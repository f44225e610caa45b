"""The sink against the real broker and both real ClickHouse engines."""

from __future__ import annotations

import pytest

from services.sink.sink import ClickHouseSink
from tests.samples import registration

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def run_sink(stack, *, idle: float = 3.0):
    ctx = stack.context()
    store = ctx.open_store()
    store.create_schema()
    sink = ClickHouseSink(settings=ctx.settings, topics=ctx.topics, codec=ctx.codec, store=store)
    try:
        stats = sink.run(max_idle_seconds=idle)
        return stats, store.count("camera_registrations"), store
    finally:
        store.engine.close()


def test_sink_writes_events_and_dead_letters_bad_bytes(engine_stack):
    ctx = engine_stack.context()
    good = [registration(f"CM-{i}") for i in range(25)]
    values = [(r["camera_id"].encode(), ctx.codec.encode("camera_registration", r)) for r in good]
    values.insert(10, (b"CM-bad", b"this is not avro"))
    engine_stack.produce("camera_registrations", values)

    stats, rows, _ = run_sink(engine_stack)

    assert rows == 25
    assert stats.dead_lettered == 1
    letters = engine_stack.read_topic("dead_letters", expect=1)
    assert letters[0]["reason_code"] == "undecodable"
    assert letters[0]["payload"] == b"this is not avro"
    assert letters[0]["processor"] == "sink"

    # Everything is committed: a second run finds nothing new and inserts nothing.
    stats, rows, _ = run_sink(engine_stack, idle=2.0)
    assert (stats.consumed, rows) == (0, 25)


def test_sink_resumes_after_clickhouse_offsets_when_commit_was_lost(engine_stack):
    """Rows landed but the offset commit did not (crash between the two): no duplicates."""
    ctx = engine_stack.context()
    events = [registration(f"CM-{i}") for i in range(10)]
    engine_stack.produce(
        "camera_registrations",
        [(e["camera_id"].encode(), ctx.codec.encode("camera_registration", e)) for e in events],
    )
    run_sink(engine_stack)
    # Same data, but a new consumer group: Kafka has no committed offsets for it at all.
    engine_stack.overrides = {"sink": {"group_id": f"another-{engine_stack.run_id}"}}
    stats, rows, _ = run_sink(engine_stack, idle=2.0)
    assert rows == 10
    assert stats.inserted == 0
