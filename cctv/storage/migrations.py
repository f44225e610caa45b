"""Versioned, idempotent migrations of the ClickHouse history: `cctv db migrate` / `cctv db status`.

Two kinds of schema live in the database:

- The history tables, one per Avro contract (cctv/storage/tables.py). They follow the contracts:
  every `migrate` creates a missing table and adds the columns a newer schema version brought
  (compatible Avro evolution only adds fields). This is the "contracts" step; it has no number.
- Hand-written read-side objects: the rollups, materialized views and the analysts' views. Each
  change to them is a numbered `Migration`, applied once, in order, recorded in
  `schema_migrations` with a checksum of its statements.

Every statement is idempotent (IF NOT EXISTS; backfills of rollups whose states are idempotent),
so a migration that fails half-way -- an error, or a process killed between two statements -- is
reported (`failed` with the error, or `interrupted`) and simply runs again, whole, next time.

The rollups are AggregatingMergeTree tables fed by materialized views, holding only states a
repeated row cannot change (argMax, max): replaying a topic, or a processor emitting an event
again after a crash, inserts the same event once more and every figure read from a rollup stays
the same. Counts are never summed in a rollup for that reason: `v_availability_daily` sums the
heartbeats of each (deduplicated) province window at read time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cctv.exceptions import StorageError
from cctv.failpoints import DISARMED, Failpoints
from cctv.storage.store import Store

LEDGER = "schema_migrations"

# Which of an entity's rows is the latest: the event's own time, then its Kafka offset where
# two share a timestamp (18.16 keeps whole seconds). Not the offset alone: a topic replayed
# in another order must not make an older event the latest.
VERSION = "(occurred_at, _offset)"
# "Never" in a max state of timestamps: the epoch, which both engines' types hold.
EPOCH = "toDateTime(0, 'UTC')"


@dataclass(frozen=True)
class Rollup:
    """An AggregatingMergeTree table, the materialized view feeding it from a history table, and
    the backfill from what that table already holds. `select` is the aggregation, written once:
    it types the table, feeds the view and backfills."""

    name: str
    source: str
    select: str  # "SELECT ... FROM {source} ... GROUP BY ..." with {db} and {tz} placeholders
    order_by: str
    partition_by: str | None = None

    def statements(self, db: str, tz: str) -> list[str]:
        select = self.select.format(
            db=db, tz=tz, source=f"{db}.{self.source}", v=VERSION, epoch=EPOCH
        )
        partition = f"PARTITION BY {self.partition_by} " if self.partition_by else ""
        empty = select.replace(" GROUP BY ", " WHERE 0 GROUP BY ", 1)
        if " WHERE " in select:
            empty = select.replace(" WHERE ", " WHERE 0 AND ", 1)
        return [
            f"CREATE TABLE IF NOT EXISTS {db}.{self.name} ENGINE = AggregatingMergeTree() "
            f"{partition}ORDER BY ({self.order_by}) AS {empty}",
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{self.name}_mv TO {db}.{self.name} "
            f"AS {select}",
            # Rows stored before the view existed (or while it was being made): inserting some
            # twice changes no idempotent state.
            f"INSERT INTO {db}.{self.name} {select}",
        ]


# When every camera was last heard from, last reachable, and last showing a content fault: three
# max states, the cheapest a materialized view on the busiest table can hold (argMax states of
# every field cost the sink's heartbeat inserts ~10x; docs/BENCHMARKS.md). A camera is reachable
# now when its last reachable heartbeat is its last heartbeat. The latest heartbeat's details
# (error, faults, fps) are read for the few cameras a page shows, from camera_heartbeats.
CAMERA_STATUS = Rollup(
    "camera_status",
    "camera_heartbeats",
    "SELECT province_code, camera_id, maxState(occurred_at) AS last_seen, "
    "maxState(if(reachable, occurred_at, {epoch})) AS last_reachable, "
    "maxState(if(frozen OR black OR dark OR blurred, occurred_at, {epoch})) AS last_degraded "
    "FROM {source} GROUP BY province_code, camera_id",
    "province_code, camera_id",
)

# Each province window once. A window is final when the health agent emits it (heartbeats later
# than its lateness count in the next window), so its copies -- a replay, or the agent emitting
# again after a crash -- are identical, and the max of identical values is the value: max
# states, which cost a materialized view far less than argMax (docs/BENCHMARKS.md). The day's
# figures are summed over these windows at read time (v_availability_daily).
AVAILABILITY_WINDOWS = Rollup(
    "availability_windows",
    "health_windows",
    "SELECT province_code, toDate(window_start, '{tz}') AS day, window_start, "
    "maxState(heartbeats) AS heartbeats, "
    "maxState(reachable_heartbeats) AS reachable_heartbeats, "
    "maxState(ifNull(camera_availability_pct, -1.0)) AS camera_availability_pct, "
    "maxState(ifNull(cameras_known, -1)) AS cameras_known, "
    "maxState(ifNull(cameras_offline, -1)) AS cameras_offline "
    "FROM {source} WHERE scope = 'PROVINCE' GROUP BY province_code, day, window_start",
    "province_code, day, window_start",
    "toYYYYMM(day)",
)

# A province's last quota figure of each day.
QUOTA_DAILY = Rollup(
    "quota_daily",
    "quota_progress",
    "SELECT province_code, toDate(occurred_at, '{tz}') AS day, "
    "argMaxState(campaign_id, {v}) AS campaign_id, "
    "argMaxState(registered_cameras, {v}) AS registered_cameras, "
    "argMaxState(selected_cameras, {v}) AS selected_cameras, "
    "argMaxState(required_cameras, {v}) AS required_cameras, "
    "argMaxState(CAST(status AS String), {v}) AS status, "
    "argMaxState(deadline, {v}) AS deadline, "
    "maxState(occurred_at) AS updated_at "
    "FROM {source} GROUP BY province_code, day",
    "province_code, day",
    "toYYYYMM(day)",
)

# The latest registration of every camera: the inventory as the provinces last described it.
CAMERA_INVENTORY = Rollup(
    "camera_inventory",
    "camera_registrations",
    "SELECT province_code, camera_id, "
    "argMaxState(CAST(change AS String), {v}) AS change, "
    "argMaxState(owner_agency, {v}) AS owner_agency, "
    "argMaxState(ifNull(name_th, ''), {v}) AS name_th, "
    "argMaxState(ifNull(name_en, ''), {v}) AS name_en, "
    "argMaxState(ifNull(latitude, nan), {v}) AS latitude, "
    "argMaxState(ifNull(longitude, nan), {v}) AS longitude, "
    "argMaxState(ifNull(location_description, ''), {v}) AS location_description, "
    "argMaxState(linked, {v}) AS linked, "
    "maxState(occurred_at) AS registered_at "
    "FROM {source} GROUP BY province_code, camera_id",
    "province_code, camera_id",
)

ROLLUPS: tuple[Rollup, ...] = (CAMERA_STATUS, AVAILABILITY_WINDOWS, QUOTA_DAILY, CAMERA_INVENTORY)


def _views(db: str, tz: str) -> list[str]:
    """The analysts' (and the dashboard's) views: one row per camera / province-day, plain
    columns, NULL where the rollup stored its '' / -1 stand-in."""
    return [
        f"CREATE VIEW IF NOT EXISTS {db}.v_camera_status AS "
        "SELECT province_code, camera_id, last_seen, "
        "if(toUnixTimestamp(reachable_at) = 0, NULL, reachable_at) AS last_reachable, "
        "if(toUnixTimestamp(degraded_at) = 0, NULL, degraded_at) AS last_degraded, "
        "toUInt8(reachable_at = last_seen) AS reachable, "
        "toUInt8(degraded_at = last_seen) AS degraded FROM ("
        "SELECT province_code, camera_id, maxMerge(last_seen) AS last_seen, "
        "maxMerge(last_reachable) AS reachable_at, maxMerge(last_degraded) AS degraded_at "
        f"FROM {db}.camera_status GROUP BY province_code, camera_id)",
        f"CREATE VIEW IF NOT EXISTS {db}.v_availability_daily AS "
        "SELECT province_code, day, count() AS windows, sum(hb) AS heartbeats, "
        "sum(rh) AS reachable_heartbeats, "
        "if(sum(hb) = 0, NULL, sum(rh) * 100.0 / sum(hb)) AS availability_pct, "
        "if(countIf(cap >= 0) = 0, NULL, sumIf(cap, cap >= 0) / countIf(cap >= 0)) "
        "AS camera_availability_pct FROM ("
        "SELECT province_code, day, window_start, toInt64(maxMerge(heartbeats)) AS hb, "
        "toInt64(maxMerge(reachable_heartbeats)) AS rh, "
        "maxMerge(camera_availability_pct) AS cap "
        f"FROM {db}.availability_windows GROUP BY province_code, day, window_start) "
        "GROUP BY province_code, day",
        f"CREATE VIEW IF NOT EXISTS {db}.v_quota_daily AS "
        "SELECT province_code, day, argMaxMerge(campaign_id) AS campaign_id, "
        "argMaxMerge(registered_cameras) AS registered_cameras, "
        "argMaxMerge(selected_cameras) AS selected_cameras, "
        "argMaxMerge(required_cameras) AS required_cameras, argMaxMerge(status) AS status, "
        "argMaxMerge(deadline) AS deadline, maxMerge(updated_at) AS updated_at "
        f"FROM {db}.quota_daily GROUP BY province_code, day",
        f"CREATE VIEW IF NOT EXISTS {db}.v_cameras AS "
        "SELECT province_code, camera_id, change, owner_agency, "
        "if(name_th = '', NULL, name_th) AS name_th, if(name_en = '', NULL, name_en) AS name_en, "
        "if(isNaN(lat), NULL, lat) AS latitude, if(isNaN(lon), NULL, lon) AS longitude, "
        "if(location = '', NULL, location) AS location_description, linked, registered_at "
        "FROM (SELECT province_code, camera_id, argMaxMerge(change) AS change, "
        "argMaxMerge(owner_agency) AS owner_agency, argMaxMerge(name_th) AS name_th, "
        "argMaxMerge(name_en) AS name_en, argMaxMerge(latitude) AS lat, "
        "argMaxMerge(longitude) AS lon, argMaxMerge(location_description) AS location, "
        "argMaxMerge(linked) AS linked, maxMerge(registered_at) AS registered_at "
        f"FROM {db}.camera_inventory GROUP BY province_code, camera_id)",
    ]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    render: Callable[[str, str], list[str]]  # (database, day timezone) -> statements

    def statements(self, db: str, tz: str) -> list[str]:
        return self.render(db, tz)

    def checksum(self, db: str, tz: str) -> str:
        text = "\n".join(self.statements("{db}", tz))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "rollups: camera status, province availability windows, daily quota, camera inventory",
        lambda db, tz: [s for r in ROLLUPS for s in r.statements(db, tz)],
    ),
    Migration(
        2,
        "views: v_camera_status, v_availability_daily, v_quota_daily, v_cameras",
        _views,
    ),
)


@dataclass
class MigrationState:
    version: int
    name: str
    status: str  # applied | failed | interrupted | pending | changed
    applied_at: dt.datetime | None = None
    error: str = ""


@dataclass
class Status:
    database: str
    engine: str
    missing_tables: list[str] = field(default_factory=list)
    missing_columns: dict[str, list[str]] = field(default_factory=dict)
    migrations: list[MigrationState] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return (
            not self.missing_tables
            and not self.missing_columns
            and all(m.status == "applied" for m in self.migrations)
        )


class MigrationFailed(StorageError):
    def __init__(self, migration: Migration, index: int, total: int, cause: Exception):
        self.migration = migration
        super().__init__(
            f"migration {migration.version} ({migration.name}) failed at statement "
            f"{index + 1} of {total}: {cause}. Nothing after it ran; fix the cause and run "
            "`cctv db migrate` again (every statement is safe to run twice)"
        )


def _ledger_sql(db: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{LEDGER} (version UInt32, name String, "
        "checksum String, status String, error String, at DateTime('UTC'), seq UInt64) "
        "ENGINE = MergeTree() ORDER BY (version, seq)"
    )


def _record(store: Store, migration: Migration, checksum: str, status: str, error: str) -> None:
    store.engine.insert(
        f"{store.database}.{LEDGER}",
        ["version", "name", "checksum", "status", "error", "at", "seq"],
        [
            (
                migration.version,
                migration.name,
                checksum,
                status,
                error[:2000],
                dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
                time.time_ns(),
            )
        ],
    )


def _recorded(store: Store) -> dict[int, dict[str, Any]]:
    """The last record of every migration version."""
    rows = store.engine.query(
        "SELECT version, argMax(status, seq) AS status, argMax(checksum, seq) AS checksum, "
        "argMax(error, seq) AS error, argMax(at, seq) AS at "
        f"FROM {store.database}.{LEDGER} GROUP BY version"
    )
    return {int(r["version"]): r for r in rows}


def migrate(
    store: Store,
    *,
    timezone: str,
    migrations: Sequence[Migration] = MIGRATIONS,
    progress: Callable[[str], None] | None = None,
    failpoints: Failpoints = DISARMED,
) -> list[int]:
    """Bring the database up to date: the contract tables, then every migration not applied yet,
    in order. Returns the versions applied now. Raises MigrationFailed (recorded as `failed`)."""
    say = progress or (lambda _message: None)
    store.create_schema()
    say(f"history tables match the Avro contracts ({store.engine.description})")
    store.engine.execute(_ledger_sql(store.database))
    done = _recorded(store)
    applied: list[int] = []
    for migration in sorted(migrations, key=lambda m: m.version):
        previous = done.get(migration.version)
        if previous is not None and previous["status"] == "applied":
            continue
        checksum = migration.checksum(store.database, timezone)
        statements = migration.statements(store.database, timezone)
        again = f" (again: it was {_describe(previous)})" if previous else ""
        say(f"migration {migration.version}: {migration.name}{again} ...")
        _record(store, migration, checksum, "started", "")
        for index, sql in enumerate(statements):
            try:
                store.engine.execute(sql)
            except StorageError as exc:
                _record(store, migration, checksum, "failed", f"statement {index + 1}: {exc}")
                raise MigrationFailed(migration, index, len(statements), exc) from exc
            failpoints.hit("db.between_migration_statements")
        _record(store, migration, checksum, "applied", "")
        say(f"migration {migration.version}: applied ({len(statements)} statements)")
        applied.append(migration.version)
    return applied


def _describe(record: dict[str, Any]) -> str:
    return "interrupted" if record["status"] == "started" else record["status"]


def status(store: Store, *, timezone: str, migrations: Sequence[Migration] = MIGRATIONS) -> Status:
    """What `migrate` would do, without doing it."""
    report = Status(store.database, store.engine.description)
    existing = store.existing_columns()
    for name, columns in store.expected_columns().items():
        if name not in existing:
            report.missing_tables.append(name)
        else:
            missing = [c for c in columns if c not in existing[name]]
            if missing:
                report.missing_columns[name] = missing
    done = _recorded(store) if LEDGER in existing else {}
    for migration in sorted(migrations, key=lambda m: m.version):
        record = done.get(migration.version)
        if record is None:
            report.migrations.append(MigrationState(migration.version, migration.name, "pending"))
            continue
        state = _describe(record)
        if state == "applied" and record["checksum"] != migration.checksum(
            store.database, timezone
        ):
            state = "changed"
        report.migrations.append(
            MigrationState(
                migration.version,
                migration.name,
                state,
                _as_datetime(record["at"]),
                record["error"],
            )
        )
    return report


def _as_datetime(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and value:
        return dt.datetime.fromisoformat(value.replace(" ", "T")).replace(tzinfo=dt.UTC)
    return None
