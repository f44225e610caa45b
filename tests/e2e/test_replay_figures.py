"""Replaying topics from offset 0 changes no figure the dashboard or a report shows.

Events go through the real broker and the real sink into ClickHouse (chDB and the 18.16 server);
then every topic is replayed -- each message read from offset 0 and published again, as an
operator re-running a topic or a producer resending would -- and a fresh sink stores it all a
second time. The rollups, the views and the figures built on them must not move.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from cctv import kafka as kafka_clients
from services.sink.sink import ClickHouseSink
from tests.conftest import TEST_PARTITIONS
from tests.integration.test_migrations import quota, views, window
from tests.samples import heartbeat, registration

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

START = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)


def alert(province: str, at: dt.datetime, subject: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": at,
        "producer": "health-test",
        "province_code": province,
        "alert_type": "CAMERA_OFFLINE",
        "severity": "WARNING",
        "subject_id": subject,
        "message_en": f"camera {subject} is offline",
        "message_th": f"กล้อง {subject} ออฟไลน์",
        "campaign_id": None,
    }


EVENTS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "camera_heartbeats": (
        "camera_heartbeat",
        [heartbeat(f"CM-{c}", i * 30) for c in range(3) for i in range(5)]
        + [{**heartbeat("CM-7", 0, "TH-10"), "reachable": False, "error_kind": "refused"}],
    ),
    "health_windows": (
        "health_window",
        [window("TH-50", START + dt.timedelta(minutes=m), 6, 6 - m % 2) for m in range(5)],
    ),
    "quota_progress": (
        "quota_progress",
        [quota("TH-50", START + dt.timedelta(minutes=m), 4 + m) for m in range(4)]
        + [quota("TH-10", START, 1)],
    ),
    "camera_registrations": (
        "camera_registration",
        [registration(f"CM-{c}", at=START) for c in range(3)]
        + [registration("CM-7", "TH-10", at=START)],
    ),
    "alerts": ("alert", [alert("TH-10", START, "CM-7"), alert("TH-50", START, "CM-2")]),
}


def figures(store) -> dict[str, Any]:
    """What the dashboard and the reports read: the views, and exact event counts."""
    shown: dict[str, Any] = views(store)
    db = store.database
    shown["open_alerts"] = store.engine.query(
        f"SELECT province_code, count() AS n FROM {db}.alerts FINAL GROUP BY province_code "
        "ORDER BY province_code"
    )
    shown["heartbeats"] = store.count("camera_heartbeats", final=True)
    return shown


def raw_messages(stack, logical: str) -> list[tuple[bytes | None, bytes]]:
    """Every message of a topic from offset 0, as bytes: what a replay publishes again."""
    ctx = stack.context()
    name = ctx.topics[logical].name
    consumer = kafka_clients.consumer(
        ctx.settings.kafka, group_id=f"replay-{uuid.uuid4()}", client_suffix="replay"
    )
    partitions = [TopicPartition(name, p, OFFSET_BEGINNING) for p in range(TEST_PARTITIONS)]
    consumer.assign(partitions)
    ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in partitions}
    left = {p for p, end in ends.items() if end > 0}
    found: list[tuple[bytes | None, bytes]] = []
    try:
        for _ in range(600):
            if not left:
                break
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            found.append((msg.key(), msg.value()))
            if msg.offset() + 1 >= ends[msg.partition()]:
                left.discard(msg.partition())
    finally:
        consumer.close()
    assert not left, f"{logical}: could not read partitions {left} to their end"
    return found


def run_sink(ctx) -> None:
    store = ctx.open_migrated_store()
    try:
        ClickHouseSink(settings=ctx.settings, topics=ctx.topics, codec=ctx.codec, store=store).run(
            max_idle_seconds=3
        )
    finally:
        store.engine.close()


def test_replaying_every_topic_from_offset_zero_changes_no_figure(engine_stack):
    ctx = engine_stack.context()
    for logical, (schema, records) in EVENTS.items():
        key_field = ctx.topics[logical].key
        engine_stack.produce(
            logical,
            [
                ((r.get(key_field) or r["province_code"]).encode(), ctx.codec.encode(schema, r))
                for r in records
            ],
        )
    run_sink(ctx)
    store = ctx.open_store()
    try:
        before = figures(store)
    finally:
        store.engine.close()
    assert before["heartbeats"] == 16
    assert len(before["v_camera_status"]) == 4
    assert before["v_availability_daily"][0]["windows"] == 5

    for logical in EVENTS:
        engine_stack.produce(logical, raw_messages(engine_stack, logical))
    run_sink(ctx)  # stores the replayed copies: new offsets, same event ids

    store = ctx.open_store()
    try:
        stored = store.count("camera_heartbeats")
        after = figures(store)
    finally:
        store.engine.close()
    assert stored >= 16  # the copies are stored (until merged away), yet no figure moved
    assert after == before
