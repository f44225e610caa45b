"""SIGKILL the sink at every step of a batch, restart it: every source offset is then in
ClickHouse exactly once, or on the dead-letter topic exactly once -- counted with merges
stopped, so a duplicate row cannot hide in a background merge.

Batches span three months (three ClickHouse partitions, i.e. three parts that a crash can
split) and hold dead letters of both kinds: undecodable bytes, and a timestamp no column holds.
The kill lands at the exact step through failpoints (cctv/failpoints.py), and once from outside
while the sink works.
"""

from __future__ import annotations

import datetime as dt
import signal
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from cctv import kafka as kafka_clients
from services.sink.sink import ClickHouseSink
from tests.conftest import TEST_PARTITIONS, wait_until
from tests.samples import heartbeat

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

EVENTS = 3000
BATCH = 400
MONTHS = (
    dt.datetime(2020, 10, 20, tzinfo=dt.UTC),
    dt.datetime(2020, 11, 20, tzinfo=dt.UTC),
    dt.datetime(2020, 12, 20, tzinfo=dt.UTC),
)
TOO_OLD = dt.datetime(1850, 1, 1, tzinfo=dt.UTC)  # before what any engine's column holds


def publish_three_months(stack) -> None:
    """Heartbeats cycling through three months, with a bad message every 97th."""
    ctx = stack.context()
    values = []
    for i in range(EVENTS):
        camera = f"CM-{i % 40}"
        if i % 97 == 13:
            values.append((camera.encode(), b"not avro at all"))
            continue
        record = heartbeat(camera, i)
        record["occurred_at"] = (TOO_OLD if i % 97 == 50 else MONTHS[i % 3]) + dt.timedelta(
            seconds=i
        )
        values.append((camera.encode(), ctx.codec.encode("camera_heartbeat", record)))
    stack.produce("camera_heartbeats", values)


def source_offsets(stack) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """(good, bad) (partition, offset) pairs of the heartbeat topic, read back from Kafka."""
    ctx = stack.context()
    name = ctx.topics["camera_heartbeats"].name
    consumer = kafka_clients.consumer(
        ctx.settings.kafka, group_id=f"check-{uuid.uuid4()}", client_suffix="check"
    )
    good, bad = set(), set()
    try:
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in range(TEST_PARTITIONS)])
        while len(good) + len(bad) < EVENTS:
            msg = consumer.poll(5)
            assert msg is not None, "could not read the source topic back"
            if msg.error():
                continue
            where = (msg.partition(), msg.offset())
            try:
                record = ctx.codec.decode(msg.value()).record
                (bad if record["occurred_at"].year < 1900 else good).add(where)
            except Exception:
                bad.add(where)
    finally:
        consumer.close()
    return good, bad


def stop_merges(store) -> None:
    store.engine.execute(f"SYSTEM STOP MERGES {store.database}.camera_heartbeats")


def assert_exactly_once(stack, store) -> None:
    good, bad = source_offsets(stack)
    rows = store.engine.query(
        f"SELECT _partition AS p, _offset AS o, count() AS n "
        f"FROM {store.database}.camera_heartbeats GROUP BY _partition, _offset"
    )
    stored = {(int(r["p"]), int(r["o"])): int(r["n"]) for r in rows}
    duplicated = {k: n for k, n in stored.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} offsets stored more than once: {duplicated}"
    assert set(stored) == good, (
        f"missing {sorted(good - set(stored))[:10]}, unexpected {sorted(set(stored) - good)[:10]}"
    )
    letters = stack.read_topic("dead_letters", expect=len(bad), timeout=60)
    lettered = [(r["source_partition"], r["source_offset"]) for r in letters]
    assert sorted(lettered) == sorted(bad), "each bad message must be dead-lettered exactly once"
    reasons = {r["reason_code"] for r in letters}
    assert reasons == {"undecodable", "storage_rejected"}
    # And nothing more arrives later (e.g. a letter of an aborted transaction).
    assert len(stack.read_topic("dead_letters")) == len(bad)


def restart_and_drain(stack, ctx) -> None:
    store = ctx.open_store()
    try:
        stop_merges(store)  # chDB: this process is now the only one writing
        sink = ClickHouseSink(
            settings=ctx.settings, topics=ctx.topics, codec=ctx.codec, store=store
        )
        stats = sink.run(max_idle_seconds=3)
        assert stats.failures == 0
        assert_exactly_once(stack, store)
    finally:
        store.engine.close()


def prepare(stack, **sink_overrides):
    stack.overrides = {
        "sink": {"batch_max_rows": BATCH, "batch_max_seconds": 60} | sink_overrides,
    }
    ctx = stack.context()
    store = ctx.open_store()
    try:
        store.create_schema()
        stop_merges(store)  # on a server this holds for the sink processes too
    finally:
        store.engine.close()
    publish_three_months(stack)
    return ctx


@pytest.mark.parametrize(
    "failpoint",
    [
        "sink.after_ledger",
        "sink.after_first_insert",
        "sink.after_insert",
        "sink.before_commit",
        "sink.after_commit",
    ],
)
def test_sigkill_at_each_step_of_a_batch(engine_stack, failpoint):
    ctx = prepare(engine_stack)
    engine_stack.overrides["failpoints"] = {failpoint: 3}  # in the third batch
    sink = engine_stack.spawn("services.sink", "sink")
    assert sink.wait(120) == -signal.SIGKILL, engine_stack.log("sink")[-3000:]
    assert f"failpoint {failpoint}" in engine_stack.log("sink")
    engine_stack.overrides.pop("failpoints")
    restart_and_drain(engine_stack, ctx)


def test_sigkill_from_outside_mid_stream(engine_stack):
    ctx = prepare(engine_stack, batch_max_rows=150)
    sink = engine_stack.spawn("services.sink", "sink")
    wait_until(
        lambda: engine_stack.log("sink").count("flushed:") >= 3 or sink.poll() is not None,
        timeout=120,
        what="the sink to flush three batches",
    )
    sink.send_signal(signal.SIGKILL)
    assert sink.wait(30) == -signal.SIGKILL, "the sink finished before it could be killed"
    restart_and_drain(engine_stack, ctx)
