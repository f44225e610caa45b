"""`cctv db migrate` / `cctv db status` and the rollups, on both real engines (chDB, 18.16 server).

The rollups must be replay-safe: the same event stored again (a replayed topic, a processor
emitting again after a crash) changes no figure read from the views.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from cctv.storage.migrations import MIGRATIONS, Migration, MigrationFailed, migrate, status
from cctv.storage.store import SourcePosition
from cctv.storage.tables import table_for_schema
from tests.samples import heartbeat, registration

pytestmark = [pytest.mark.integration]

TZ = "Asia/Bangkok"
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
# 2026-11-25 20:00 UTC is already the 26th in Bangkok: days are counted in Bangkok.
LATE_EVENING_UTC = dt.datetime(2026, 11, 25, 20, 0, tzinfo=dt.UTC)


@pytest.fixture
def ctx_store(engine_stack):
    ctx = engine_stack.context()
    store = ctx.open_store()
    yield ctx, store
    store.engine.close()


class Writer:
    """Stores records as the sink does: through the codec, with Kafka positions."""

    def __init__(self, ctx, store):
        self.ctx, self.store = ctx, store
        self.offsets: dict[str, int] = {}

    def put(self, schema: str, records: list[dict[str, Any]]) -> None:
        spec = table_for_schema(schema)
        rows = []
        for record in records:
            decoded = self.ctx.codec.decode(self.ctx.codec.encode(schema, record)).record
            offset = self.offsets.get(schema, 0)
            self.offsets[schema] = offset + 1
            rows.append(self.store.build_row(spec, decoded, SourcePosition(schema, 0, offset), NOW))
        self.store.insert(spec, rows)


def window(province: str, start: dt.datetime, heartbeats: int, reachable: int, **extra) -> dict:
    key = f"{province}/{start.isoformat()}"
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
        "occurred_at": start + dt.timedelta(seconds=90),
        "producer": "health-test",
        "province_code": province,
        "scope": "PROVINCE",
        "camera_id": None,
        "window_start": start,
        "window_end": start + dt.timedelta(seconds=60),
        "heartbeats": heartbeats,
        "reachable_heartbeats": reachable,
        "availability_pct": reachable * 100.0 / heartbeats if heartbeats else 0.0,
        "avg_fps": None,
        "frozen_count": 0,
        "black_count": 0,
        "cameras": 2,
        "degraded_count": 0,
        "blurred_count": 0,
        "late_heartbeats": 0,
        "p95_latency_ms": None,
        "cameras_known": 2,
        "cameras_offline": 0,
        "camera_availability_pct": extra.get("camera_availability_pct", 100.0),
    }


def quota(province: str, at: dt.datetime, selected: int, status: str = "ON_TRACK") -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": at,
        "producer": "quota-test",
        "province_code": province,
        "campaign_id": "dec-2563",
        "rule_version": "R1-v1",
        "registered_cameras": 100,
        "selected_cameras": selected,
        "required_cameras": 20,
        "deadline": dt.datetime(2020, 12, 31, 16, 59, 59, tzinfo=dt.UTC),
        "status": status,
    }


def views(store) -> dict[str, list[dict]]:
    db = store.database
    return {
        name: store.engine.query(f"SELECT * FROM {db}.{name} ORDER BY {order}")
        for name, order in (
            ("v_camera_status", "province_code, camera_id"),
            ("v_availability_daily", "province_code, day"),
            ("v_quota_daily", "province_code, day"),
            ("v_cameras", "province_code, camera_id"),
        )
    }


def test_migrate_is_idempotent_and_status_says_up_to_date(ctx_store):
    ctx, store = ctx_store
    before = status(store, timezone=TZ)
    assert not before.up_to_date
    assert [m.status for m in before.migrations] == ["pending"] * len(MIGRATIONS)
    assert "camera_heartbeats" in before.missing_tables

    lines: list[str] = []
    assert migrate(store, timezone=TZ, progress=lines.append) == [m.version for m in MIGRATIONS]
    assert any("applied" in line for line in lines)
    assert migrate(store, timezone=TZ) == []  # nothing pending: nothing runs
    after = status(store, timezone=TZ)
    assert after.up_to_date, after
    assert all(m.applied_at is not None for m in after.migrations)


def test_rollups_backfill_what_was_stored_before_them_and_follow_new_rows(ctx_store):
    ctx, store = ctx_store
    store.create_schema()  # a database from before the migrations, already holding history
    writer = Writer(ctx, store)
    writer.put("camera_heartbeat", [heartbeat("CM-1", 0), heartbeat("CM-2", 0)])
    migrate(store, timezone=TZ)
    assert [r["camera_id"] for r in views(store)["v_camera_status"]] == ["CM-1", "CM-2"]

    down = {**heartbeat("CM-1", 60), "reachable": False, "error_kind": "timeout", "fps": None}
    writer.put("camera_heartbeat", [down])
    status_rows = {r["camera_id"]: r for r in views(store)["v_camera_status"]}
    assert status_rows["CM-1"]["reachable"] == 0
    assert status_rows["CM-1"]["error_kind"] == "timeout"
    assert status_rows["CM-1"]["fps"] is None
    assert status_rows["CM-2"]["reachable"] == 1 and status_rows["CM-2"]["error_kind"] is None
    # Recovered: the error is gone (a NULL must not leave the old error standing).
    writer.put("camera_heartbeat", [heartbeat("CM-1", 120)])
    again = {r["camera_id"]: r for r in views(store)["v_camera_status"]}
    assert again["CM-1"]["reachable"] == 1 and again["CM-1"]["error_kind"] is None


def test_every_view_is_unchanged_when_everything_is_stored_again(ctx_store):
    ctx, store = ctx_store
    migrate(store, timezone=TZ)
    writer = Writer(ctx, store)
    start = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)
    batches = {
        "camera_heartbeat": [heartbeat("CM-1", i * 30) for i in range(4)]
        + [{**heartbeat("CM-9", 5, "TH-10"), "reachable": False, "error_kind": "refused"}],
        "health_window": [
            window("TH-50", start, 4, 4),
            window("TH-50", start + dt.timedelta(minutes=1), 4, 2, camera_availability_pct=50.0),
            window("TH-10", LATE_EVENING_UTC, 10, 9),
        ],
        "quota_progress": [
            quota("TH-50", start, 5),
            quota("TH-50", start + dt.timedelta(hours=1), 20, "MET"),
            quota("TH-10", LATE_EVENING_UTC, 3),
        ],
        "camera_registration": [
            registration("CM-1", at=start),
            {**registration("CM-1", at=start + dt.timedelta(hours=1)), "name_th": None},
            registration("CM-9", "TH-10", at=start),
        ],
    }
    for schema, records in batches.items():
        writer.put(schema, records)
    first = views(store)

    # The same events again, at new offsets, in another order: a replay of every topic.
    for schema, records in batches.items():
        writer.put(schema, list(reversed(records)))
    assert views(store) == first

    availability = {(r["province_code"], str(r["day"])): r for r in first["v_availability_daily"]}
    th50 = availability[("TH-50", "2026-11-25")]
    assert (th50["windows"], th50["heartbeats"], th50["reachable_heartbeats"]) == (2, 8, 6)
    assert float(th50["availability_pct"]) == pytest.approx(75.0)
    assert float(th50["camera_availability_pct"]) == pytest.approx(75.0)
    assert ("TH-10", "2026-11-26") in availability  # 20:00 UTC is the next day in Bangkok

    quota_rows = {(r["province_code"], str(r["day"])): r for r in first["v_quota_daily"]}
    assert quota_rows[("TH-50", "2026-11-25")]["selected_cameras"] == 20
    assert quota_rows[("TH-50", "2026-11-25")]["status"] == "MET"
    assert quota_rows[("TH-10", "2026-11-26")]["selected_cameras"] == 3

    cameras = {r["camera_id"]: r for r in first["v_cameras"]}
    assert cameras["CM-1"]["name_th"] is None  # the latest registration has no Thai name
    assert cameras["CM-1"]["name_en"] == "Tha Phae Gate"
    assert cameras["CM-9"]["province_code"] == "TH-10"
    assert float(cameras["CM-9"]["latitude"]) == pytest.approx(18.7877)


def test_a_migration_failing_half_way_is_reported_and_runs_again(ctx_store):
    ctx, store = ctx_store
    db = store.database
    broken = Migration(
        99,
        "a test migration",
        lambda db, tz: [
            f"CREATE TABLE IF NOT EXISTS {db}.t99 (x UInt8) ENGINE = MergeTree() ORDER BY x",
            f"INSERT INTO {db}.t99 SELECT no_such_column FROM {db}.t99",
            f"CREATE VIEW IF NOT EXISTS {db}.v99 AS SELECT x FROM {db}.t99",
        ],
    )
    with pytest.raises(MigrationFailed, match=r"migration 99 .* statement 2 of 3"):
        migrate(store, timezone=TZ, migrations=[*MIGRATIONS, broken])
    report = status(store, timezone=TZ, migrations=[*MIGRATIONS, broken])
    state = report.migrations[-1]
    assert state.status == "failed" and "no_such_column" in state.error
    assert not report.up_to_date

    fixed = Migration(
        99,
        "a test migration",
        lambda db, tz: [
            f"CREATE TABLE IF NOT EXISTS {db}.t99 (x UInt8) ENGINE = MergeTree() ORDER BY x",
            f"CREATE VIEW IF NOT EXISTS {db}.v99 AS SELECT x FROM {db}.t99",
        ],
    )
    assert migrate(store, timezone=TZ, migrations=[*MIGRATIONS, fixed]) == [99]
    assert status(store, timezone=TZ, migrations=[*MIGRATIONS, fixed]).up_to_date
    assert store.engine.query(f"SELECT count() AS n FROM {db}.v99") == [{"n": 0}]
    # Editing an applied migration is flagged, not silently re-run.
    edited = Migration(99, "a test migration", lambda db, tz: ["SELECT 1"])
    changed = status(store, timezone=TZ, migrations=[*MIGRATIONS, edited]).migrations[-1]
    assert changed.status == "changed"


def test_cli_migrate_killed_between_statements_then_run_again(engine_stack):
    """A `cctv db migrate` killed half-way (SIGKILL, like a power cut) shows as interrupted in
    `cctv db status`, and the next `cctv db migrate` finishes it."""
    engine_stack.overrides["failpoints"] = {"db.between_migration_statements": 3}
    killed = engine_stack.cctv("db", "migrate")
    assert killed.returncode == -9, killed.stderr
    del engine_stack.overrides["failpoints"]
    shown = engine_stack.cctv("db", "status", "--format", "json")
    assert shown.returncode == 1
    report = json.loads(shown.stdout)
    assert report["migrations"][0]["status"] == "interrupted"
    assert report["up_to_date"] is False

    done = engine_stack.cctv("db", "migrate")
    assert done.returncode == 0, done.stderr
    assert "migration 1: rollups" in done.stdout and "(again: it was interrupted)" in done.stdout
    final = engine_stack.cctv("db", "status")
    assert final.returncode == 0 and "up to date" in final.stdout
    bad = engine_stack.cctv("db", "status", "--format", "yaml")
    assert bad.returncode == 2 and "--format" in bad.stderr
