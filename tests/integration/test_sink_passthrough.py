"""The Avro bulk path writes exactly what the Python path writes, on both engines (chDB reads the
container; for the 18.16 server chDB turns it into RowBinary sent over HTTP), and falls back to
the Python path message by message when a container is refused."""

from __future__ import annotations

import datetime as dt

import pytest

from services.sink.sink import ClickHouseSink
from tests.samples import heartbeat, registration

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def varied_heartbeats(n: int) -> list[dict]:
    records = []
    for i in range(n):
        record = heartbeat(f"กล้อง-{i % 7}", i, province_code=("TH-10", "TH-50", "TH-96")[i % 3])
        record["occurred_at"] = dt.datetime(2020, 11 + i % 2, 28, tzinfo=dt.UTC) + dt.timedelta(
            milliseconds=1001 * i
        )
        if i % 4 == 1:
            record.update(reachable=False, fps=None, width=None, height=None, error="timeout")
        if i % 5 == 2:
            record.update(brightness=0.0, black=True, frozen=True, latency_ms=None)
        records.append(record)
    return records


def run_sink(stack, *, passthrough: bool, database: str, group: str):
    stack.overrides = {
        "clickhouse": {"database": database},
        "sink": {"avro_passthrough": passthrough, "group_id": group, "instance_id": group},
    }
    ctx = stack.context()
    store = ctx.open_store()
    store.create_schema()
    sink = ClickHouseSink(settings=ctx.settings, topics=ctx.topics, codec=ctx.codec, store=store)
    try:
        stats = sink.run(max_idle_seconds=2)
        rows = []
        for logical in ("camera_heartbeats", "camera_registrations"):
            spec = sink._specs[ctx.topics[logical].name][1]
            columns = [c for c in store.column_names(spec) if c != "_ingested_at"]
            rows += store.engine.query(
                f"SELECT {', '.join(columns)} FROM {database}.{spec.name} "
                "ORDER BY _partition, _offset"
            )
    finally:
        store.engine.close()
    return sink, stats, rows


def test_passthrough_rows_equal_python_rows(engine_stack):
    stack = engine_stack
    ctx = stack.context()
    records = varied_heartbeats(300)
    stack.produce(
        "camera_heartbeats",
        [(r["camera_id"].encode(), ctx.codec.encode("camera_heartbeat", r)) for r in records],
    )
    cameras = []
    for i in range(40):
        camera = registration(f"กล้อง-{i}", ("TH-10", "TH-57")[i % 2], change="UPDATED")
        if i % 3 == 0:
            camera.update(stream_url=None, latitude=None, longitude=None, name_en=None)
        if i % 5 == 0:
            camera.update(location_description="หน้าศาลากลางจังหวัด", linked=True)
        cameras.append(camera)
    stack.produce(
        "camera_registrations",
        [(c["camera_id"].encode(), ctx.codec.encode("camera_registration", c)) for c in cameras],
    )
    fast_sink, fast, fast_rows = run_sink(
        stack, passthrough=True, database=f"fast{stack.run_id}", group=f"fast-{stack.run_id}"
    )
    slow_sink, slow, slow_rows = run_sink(
        stack, passthrough=False, database=f"slow{stack.run_id}", group=f"slow-{stack.run_id}"
    )
    assert fast_sink._passthrough[ctx.topics["camera_heartbeats"].name] is not None
    assert slow_sink._passthrough[ctx.topics["camera_heartbeats"].name] is None
    assert fast.by_table == slow.by_table == {"camera_heartbeats": 300, "camera_registrations": 40}
    assert fast_rows == slow_rows
    assert {r["province_code"] for r in fast_rows} == {"TH-10", "TH-50", "TH-57", "TH-96"}


def test_a_refused_container_is_redone_in_python(engine_stack):
    stack = engine_stack
    ctx = stack.context()
    good = [ctx.codec.encode("camera_heartbeat", r) for r in varied_heartbeats(50)]
    trailing = good[10] + b"\x00\x07garbage"  # valid header and time, bytes after the record
    truncated = good[20][:-6]
    values = good[:10] + [trailing] + good[10:20] + [truncated] + good[20:]
    stack.produce("camera_heartbeats", [(b"CM", v) for v in values])
    sink, stats, rows = run_sink(
        stack, passthrough=True, database=f"mix{stack.run_id}", group=f"mix-{stack.run_id}"
    )
    assert stats.by_table["camera_heartbeats"] == 50
    assert stats.dead_lettered == 2
    assert len(rows) == 50
    letters = stack.read_topic("dead_letters", expect=2)
    assert sorted(r["source_offset"] for r in letters) == [10, 21]
    assert {r["reason_code"] for r in letters} == {"undecodable"}
