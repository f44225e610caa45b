"""The history store on both real engines: embedded chDB and Debian's ClickHouse server."""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal

import pytest

from cctv.deadletter import dead_letter
from cctv.storage.store import SourcePosition
from cctv.storage.tables import table_for_schema
from schemas.errors import DecodeError
from tests.samples import registration

pytestmark = [pytest.mark.integration]

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(engine_stack):
    ctx = engine_stack.context()
    store = ctx.open_store()
    store.create_schema()
    yield ctx, store
    store.engine.close()


def test_schema_creation_is_idempotent(store):
    ctx, store = store
    store.create_schema()  # a second time changes nothing and raises nothing
    tables = {
        r["name"]
        for r in store.engine.query(
            f"SELECT name FROM system.tables WHERE database = '{store.database}'"
        )
    }
    assert {
        "camera_registrations",
        "camera_heartbeats",
        "province_inventory",
        "dead_letters",
    } <= tables


def test_registration_round_trips_with_thai_text_and_source_offsets(store):
    ctx, store = store
    spec = table_for_schema("camera_registration")
    # Through the real codec, as the sink does: bytes from Kafka -> record -> row.
    record = ctx.codec.decode(ctx.codec.encode("camera_registration", registration("CM-1"))).record
    row = store.build_row(spec, record, SourcePosition("topic-a", 1, 41), NOW)
    store.insert(spec, [row])
    rows = store.engine.query(
        f"SELECT camera_id, name_th, owner_agency, province_code, linked, resolution_width, "
        f"toString(occurred_at) AS at, _topic, _partition, _offset "
        f"FROM {store.database}.camera_registrations"
    )
    assert rows == [
        {
            "camera_id": "CM-1",
            "name_th": "กล้องประตูท่าแพ",
            "owner_agency": "เทศบาลนครเชียงใหม่",
            "province_code": "TH-50",
            "linked": 0,
            "resolution_width": 1920,
            "at": rows[0]["at"],
            "_topic": "topic-a",
            "_partition": 1,
            "_offset": 41,
        }
    ]
    assert rows[0]["at"].startswith("2020-12-15 02:30:00")
    assert store.stored_offsets(spec, ["topic-a"]) == {("topic-a", 1): 41}
    assert store.stored_offsets(spec, ["other"]) == {}


def test_replayed_event_collapses_by_event_id(store):
    ctx, store = store
    spec = table_for_schema("camera_registration")
    record = ctx.codec.decode(ctx.codec.encode("camera_registration", registration("CM-2"))).record
    # The same event delivered twice (a provincial producer's retry) at two offsets.
    store.insert(spec, [store.build_row(spec, record, SourcePosition("t", 0, 1), NOW)])
    store.insert(spec, [store.build_row(spec, record, SourcePosition("t", 0, 2), NOW)])
    store.engine.execute(f"OPTIMIZE TABLE {store.database}.camera_registrations FINAL")
    assert store.count("camera_registrations") == 1


def test_dead_letter_keeps_the_original_bytes(store):
    ctx, store = store
    spec = table_for_schema("dead_letter")
    payload = b"\xff\xfenot avro"
    try:
        ctx.codec.decode(payload)
    except DecodeError as exc:
        error = exc
    letter = dead_letter(
        processor="test",
        producer="test",
        topic="in",
        partition=0,
        offset=7,
        key=b"k",
        payload=payload,
        error=error,
    )
    record = ctx.codec.decode(ctx.codec.encode("dead_letter", letter)).record
    store.insert(spec, [store.build_row(spec, record, SourcePosition("dlq", 0, 0), NOW)])
    rows = store.engine.query(
        f"SELECT reason_code, source_offset, payload FROM {store.database}.dead_letters"
    )
    # bytes are stored as base64 text: exact, and readable with base64Decode() in SQL
    assert rows == [
        {
            "reason_code": "undecodable",
            "source_offset": 7,
            "payload": base64.b64encode(payload).decode(),
        }
    ]


def test_registered_cameras_by_province_takes_the_latest_count(store):
    ctx, store = store
    spec = table_for_schema("province_inventory")
    for offset, count in enumerate([1, 2, 3]):
        event = {
            "event_id": f"00000000-0000-4000-8000-00000000000{offset}",
            "occurred_at": NOW,
            "producer": "t",
            "province_code": "TH-50",
            "registered_cameras": count,
            "retired_cameras": 0,
            "source_event_id": "x",
        }
        record = ctx.codec.decode(ctx.codec.encode("province_inventory", event)).record
        store.insert(spec, [store.build_row(spec, record, SourcePosition("inv", 0, offset), NOW)])
    rows = store.registered_cameras_by_province()
    assert [(r["province_code"], int(r["registered_cameras"])) for r in rows] == [("TH-50", 3)]


@pytest.mark.chserver
def test_the_server_under_test_is_debians_18_16(clickhouse_server_url):
    """The server half of every two-engine test must be the old server this project promises
    to support, not whatever happens to be installed: the portable DDL is only proven there.
    (With CCTV_TEST_CLICKHOUSE_URL an operator points the tests at another server on purpose,
    and CCTV_TEST_CLICKHOUSE_VERSION says which version to expect, default 18.16.)"""
    import os

    from cctv.storage.engines import ServerEngine
    from cctv.storage.tables import LEGACY

    engine = ServerEngine(clickhouse_server_url)
    try:
        expected = os.environ.get("CCTV_TEST_CLICKHOUSE_VERSION", "18.16")
        assert engine.version.startswith(expected + "."), engine.version
        if expected == "18.16":
            assert engine.dialect == LEGACY
    finally:
        engine.close()


def test_a_dead_letter_written_twice_collapses(store):
    """The same failure dead-lettered twice (at-least-once: a worker restarted before its
    offset commit) is the same row: same source message, same id, same time and partition."""
    ctx, store = store
    spec = table_for_schema("dead_letter")
    source_time = dt.datetime(2020, 12, 31, 16, 59, 59, tzinfo=dt.UTC)
    for dlq_offset in (7, 19):  # two copies on the dead-letter topic
        letter = dead_letter(
            processor="inventory.place-cameras",
            producer="worker",
            topic="cctv.inbound.camera-registrations.v1",
            partition=2,
            offset=4411,
            key=b"CM-1",
            payload=b"\xc3\x01broken",
            error=DecodeError("corrupt", reason_code="undecodable"),
            occurred_at=source_time,
        )
        record = ctx.codec.decode(ctx.codec.encode("dead_letter", letter)).record
        row = store.build_row(spec, record, SourcePosition("dlq", 0, dlq_offset), NOW)
        store.insert(spec, [row])
    assert store.count("dead_letters") == 2
    assert store.count("dead_letters", final=True) == 1


def test_every_derived_rules_record_is_stored_exactly(store, engine_stack):
    """The rules' outputs of the December scenario land in their tables on both engines:
    budgets exact to the satang, routing destinations kept as JSON per element."""
    from cctv_cli.rules import Scenario
    from stream_processors.routing_rules import avro_record
    from tests.e2e.rules_scenario import CAMPAIGN, scenario_lines

    engine_stack.overrides = {"campaign_file": str(CAMPAIGN)}
    ctx, store = store
    ctx = engine_stack.context()
    scenario = Scenario(ctx)
    by_table: dict = {}
    offset = 0
    for line in scenario_lines():
        try:
            derived = scenario.feed(line)
        except Exception:
            continue
        for schema, record in derived:
            spec = table_for_schema(schema)
            decoded = ctx.codec.decode(ctx.codec.encode(schema, avro_record(schema, record)))
            offset += 1
            row = store.build_row(spec, decoded.record, SourcePosition("t", 0, offset), NOW)
            by_table.setdefault(spec, []).append(row)
    for spec, rows in by_table.items():
        store.insert(spec, rows)
    db = store.database
    budgets = store.engine.query(
        f"SELECT project_id, routing_version, toString(budget) AS budget, destinations "
        f"FROM {db}.project_routing WHERE project_id IN ('PRJ-TH57-002', 'PRJ-TH50-002') "
        "ORDER BY project_id"
    )
    # toString: text, never a float on the way (newer engines drop the trailing zeros).
    assert [(r["project_id"], Decimal(r["budget"])) for r in budgets] == [
        ("PRJ-TH50-002", Decimal("500000.01")),
        ("PRJ-TH57-002", Decimal("10000001.00")),
    ]
    assert '"NATIONAL_SUBCOMMITTEE"' in budgets[1]["destinations"][1]
    missed = store.engine.query(
        f"SELECT province_code FROM {db}.alerts WHERE alert_type = 'QUOTA_MISSED' "
        "ORDER BY province_code"
    )
    assert [r["province_code"] for r in missed] == ["TH-10", "TH-57"]
    outcomes = store.engine.query(f"SELECT count() AS n FROM {db}.selection_outcomes")
    assert outcomes[0]["n"] == 10
    progress = store.engine.query(
        f"SELECT argMax(status, occurred_at) AS status FROM {db}.quota_progress "
        "WHERE province_code = 'TH-50'"
    )
    assert progress[0]["status"] == "MET"


def test_a_table_from_an_older_schema_version_gets_the_new_columns(store):
    """An existing deployment's camera_heartbeats was made from heartbeat v1: creating the
    schema again adds v2's columns, and a v2 row then goes in."""
    from cctv.storage.tables import columns_of, create_table_sql

    ctx, store = store
    spec = table_for_schema("camera_heartbeat")
    db = store.database
    store.engine.execute(f"DROP TABLE {db}.{spec.name}")
    v1 = columns_of(ctx.schemas.raw("camera_heartbeat", 1))
    store.engine.execute(create_table_sql(spec, v1, database=db, dialect=store.engine.dialect))
    before = {
        r["name"]
        for r in store.engine.query(
            f"SELECT name FROM system.columns WHERE database = '{db}' AND table = '{spec.name}'"
        )
    }
    assert "frames_received" not in before
    ran = store.create_schema()
    assert any("ADD COLUMN `frames_received`" in sql for sql in ran)
    assert not any("ADD COLUMN" in sql for sql in store.create_schema())  # once only
    latest = ctx.schemas.versions("camera_heartbeat")[-1]
    record = {
        f["name"]: f.get("default") for f in ctx.schemas.raw("camera_heartbeat", latest)["fields"]
    } | {
        "event_id": "8f0b8c1e-3a52-4c55-9d5e-1f2a3b4c5d6e",
        "occurred_at": NOW,
        "producer": "prober-01",
        "province_code": "TH-50",
        "camera_id": "CM-1",
        "reachable": True,
        "frozen": False,
        "black": False,
        "frames_received": 50,
    }
    decoded = ctx.codec.decode(ctx.codec.encode("camera_heartbeat", record)).record
    store.insert(spec, [store.build_row(spec, decoded, SourcePosition("t", 0, 1), NOW)])
    rows = store.engine.query(f"SELECT frames_received FROM {db}.{spec.name}")
    assert [r["frames_received"] for r in rows] == [50]


def test_health_windows_are_stored_and_roll_up_to_daily_availability(store):
    """Minute windows land on both engines; a province's daily availability is their rollup
    (the query the README gives analysts)."""
    ctx, store = store
    spec = table_for_schema("health_window")
    minute = 60_000
    start = int(NOW.timestamp() * 1000)
    rows = []
    for i, (reach, known, offline) in enumerate([(4, 4, 0), (2, 4, 1), (3, 4, 1)]):
        record = {
            "event_id": f"00000000-0000-4000-8000-00000000000{i}",
            "occurred_at": start + (i + 1) * minute,
            "producer": "test",
            "province_code": "TH-50",
            "scope": "PROVINCE",
            "camera_id": None,
            "window_start": start + i * minute,
            "window_end": start + (i + 1) * minute,
            "heartbeats": 4,
            "reachable_heartbeats": reach,
            "availability_pct": 100.0 * reach / 4,
            "avg_fps": 25.0,
            "frozen_count": 0,
            "black_count": 1,
            "cameras": 4,
            "degraded_count": 1,
            "blurred_count": 0,
            "late_heartbeats": i,
            "p95_latency_ms": 300,
            "cameras_known": known,
            "cameras_offline": offline,
            "camera_availability_pct": 100.0 * (known - offline) / known,
        }
        decoded = ctx.codec.decode(ctx.codec.encode("health_window", record)).record
        rows.append(store.build_row(spec, decoded, SourcePosition("t", 0, i), NOW))
    store.insert(spec, rows)
    store.insert(spec, rows[:1])  # a replayed window collapses by event_id
    db = store.database
    day = store.engine.query(
        f"SELECT province_code, toDate(window_start, 'Asia/Bangkok') AS day, "
        f"sum(reachable_heartbeats) * 100 / sum(heartbeats) AS availability, "
        f"sum(cameras_known - cameras_offline) * 100 / sum(cameras_known) AS camera_availability, "
        f"sum(late_heartbeats) AS late "
        f"FROM {db}.health_windows FINAL WHERE scope = 'PROVINCE' GROUP BY province_code, day"
    )
    assert len(day) == 1
    assert round(float(day[0]["availability"]), 3) == 75.0
    assert round(float(day[0]["camera_availability"]), 3) == round(1000 / 12, 3)
    assert int(day[0]["late"]) == 3
