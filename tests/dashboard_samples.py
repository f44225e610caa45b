"""A small, realistic national history for the dashboard's tests (cctv/figures.py and the
browser test): cameras in a few provinces, their heartbeats and health windows, the quota's
progress through December 2563, project routings (one resubmitted), alerts (one replayed) and
dead letters. Written through the history tables, as the sink writes them, so the rollups the
migrations define fill from them.

Times are relative to `now`: heartbeats and "today's" windows fall on the Bangkok day of `now`;
the campaign's figures stay in December 2020 (B.E. 2563), where the directive put them.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cctv.context import Context
from cctv.dates import BANGKOK
from cctv.settings import Settings
from cctv.storage.migrations import migrate
from cctv.storage.store import SourcePosition, Store
from cctv.storage.tables import table_for_schema

CAMPAIGN = "moi-cctv-2563"
RULES = "2563.1"
DEADLINE = dt.datetime(2020, 12, 31, 16, 59, 59, 999000, tzinfo=dt.UTC)  # 31 Dec 2563, Bangkok
NS_SEND_BY = dt.datetime(2020, 12, 24, 16, 59, 59, 999000, tzinfo=dt.UTC)
DECIDE_BY = dt.datetime(2020, 12, 30, 16, 59, 59, 999000, tzinfo=dt.UTC)

# province -> cameras it registered; the last of TH-10 is retired again.
CAMERAS = {"TH-10": 8, "TH-50": 6, "TH-20": 5, "TH-12": 4, "TH-90": 3, "TH-33": 3}
# province -> the quota figures it went through: (day in Dec 2020, selected, status).
QUOTA = {
    "TH-10": [(10, 0, "ON_TRACK"), (20, 1, "ON_TRACK"), (24, 1, "AT_RISK"), (28, 2, "MET")],
    "TH-50": [(12, 0, "ON_TRACK"), (24, 0, "AT_RISK")],  # then MISSED on 1 Jan 2564
    "TH-20": [(15, 0, "ON_TRACK"), (26, 0, "AT_RISK")],
    "TH-12": [(16, 1, "ON_TRACK")],
}


@dataclass
class Population:
    now: dt.datetime
    today: dt.date
    offline_cameras: set[str] = field(default_factory=set)
    live_alert_ids: list[str] = field(default_factory=list)


def camera_id(province: str, n: int) -> str:
    return f"{province}-CAM-{n:03d}"


def prepare_database(store: Store, *, timezone: str = "Asia/Bangkok") -> None:
    """The database as `cctv db migrate` leaves it: history tables, rollups and their views."""
    migrate(store, timezone=timezone)


def analyst_url(default_url: str) -> str:
    """The server's read-only user: CCTV_TEST_CLICKHOUSE_ANALYST_URL, else `analyst` with the
    password the test server fixture gives it."""
    given = os.environ.get("CCTV_TEST_CLICKHOUSE_ANALYST_URL")
    if given:
        return given
    parts = urlsplit(default_url)
    netloc = f"analyst:analyst@{parts.hostname}:{parts.port or 9000}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class Writer:
    """Writes records to their history table as the sink does (encoded and decoded by the
    codec first, so they are what Kafka would carry)."""

    def __init__(self, ctx: Context, store: Store, *, ingested_at: dt.datetime):
        self.ctx, self.store, self.ingested_at = ctx, store, ingested_at
        self._offsets: dict[str, int] = {}

    def write(self, schema: str, records: list[dict[str, Any]]) -> None:
        spec = table_for_schema(schema)
        rows = []
        for record in records:
            decoded = self.ctx.codec.decode(self.ctx.codec.encode(schema, record)).record
            offset = self._offsets.get(schema, 0)
            self._offsets[schema] = offset + 1
            position = SourcePosition(f"test.{schema}", 0, offset)
            rows.append(self.store.build_row(spec, decoded, position, self.ingested_at))
        self.store.insert(spec, rows)


def _event(at: dt.datetime, province: str, producer: str = "test") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": at,
        "producer": producer,
        "province_code": province,
    }


def _december(day: int, hour: int = 3) -> dt.datetime:
    return dt.datetime(2020, 12, day, hour, tzinfo=dt.UTC)


def populate(ctx: Context, store: Store, *, now: dt.datetime) -> Population:
    """Write the whole sample history; returns what the tests need to know about it."""
    now = now.astimezone(dt.UTC).replace(microsecond=0)
    today = now.astimezone(BANGKOK).date()
    day_start = dt.datetime.combine(today, dt.time(), BANGKOK).astimezone(dt.UTC)
    population = Population(now=now, today=today)
    w = Writer(ctx, store, ingested_at=now - dt.timedelta(minutes=5))

    # -- inventory -----------------------------------------------------------------------------
    registrations = []
    for province, count in CAMERAS.items():
        for n in range(1, count + 1):
            record = _event(dt.datetime(2020, 11, 1, 2, tzinfo=dt.UTC), province, "prov-inventory")
            record.update(
                camera_id=camera_id(province, n),
                change="REGISTERED",
                owner_agency="เทศบาลนคร" if n % 2 else "สถานีตำรวจภูธร",
                name_th=f"กล้องแยกที่ {n}",
                name_en=f"Junction {n}",
                latitude=13.75 + n / 1000,
                longitude=100.5 + n / 1000,
                location_description=f"ทางแยกหมายเลข {n}",
                stream_url=f"rtsp://cctv.invalid/{province}/{n}",
                resolution_width=1920,
                resolution_height=1080,
                expected_fps=25.0,
                linked=n <= 2,
            )
            registrations.append(record)
    retired = dict(registrations[7])  # TH-10's eighth camera
    retired.update(event_id=str(uuid.uuid4()), occurred_at=_december(1), change="RETIRED")
    registrations.append(retired)
    w.write("camera_registration", registrations)

    # -- heartbeats: the latest decides whether a camera is online now ------------------------
    heartbeats = []
    for province, count in CAMERAS.items():
        for n in range(1, count + 1):
            cam = camera_id(province, n)
            if province == "TH-10" and n == 8:
                continue  # retired: no longer probed
            silent = n == count and province != "TH-33"  # each province's last camera is silent
            unreachable = n == 1 and province in ("TH-10", "TH-50")
            latest = now - (dt.timedelta(hours=3) if silent else dt.timedelta(seconds=20))
            for back in (2, 1, 0):
                at = latest - dt.timedelta(seconds=30 * back)
                record = _event(at, province, "prober-01")
                fault = province == "TH-10" and n == 3
                record.update(
                    camera_id=cam,
                    reachable=not (unreachable and back == 0),
                    fps=None if unreachable and back == 0 else (12.0 if fault else 24.8),
                    width=1920,
                    height=1080,
                    brightness=8.0 if fault else 120.0,
                    sharpness=300.0,
                    frozen=False,
                    black=fault,
                    latency_ms=None if unreachable and back == 0 else 240,
                    error="connection refused" if unreachable and back == 0 else None,
                    expected_fps=25.0,
                    frames_received=50,
                    low_fps=fault,
                    dark=fault,
                    overexposed=False,
                    blurred=False,
                    frame_difference=3.5,
                    previous_difference=4.0,
                    error_kind="connection_refused" if unreachable and back == 0 else None,
                )
                heartbeats.append(record)
            if silent or unreachable:
                population.offline_cameras.add(cam)
    w.write("camera_heartbeat", heartbeats)

    # -- health windows: today's (camera and province) and a fortnight's trend ---------------
    minute = dt.timedelta(minutes=1)
    span = max(now - day_start, dt.timedelta(minutes=3))
    starts = [max(day_start, now - span * f) for f in (0.75, 0.5, 0.25)]
    windows = []
    for province, count in CAMERAS.items():
        for i, start in enumerate(starts):
            total = 2 * count
            reachable = total - (i + count) % 3
            offline = (i + 1) % 2
            windows.append(_province_window(province, start, total, reachable, count, offline))
        for back in range(1, 15):
            start = day_start - dt.timedelta(days=back) + dt.timedelta(hours=10)
            total = 2 * count
            reachable = total - (back * 7 + count) % 4
            windows.append(_province_window(province, start, total, reachable, count, back % 2))
        for n in range(1, count + 1):
            cam = camera_id(province, n)
            for i, start in enumerate(starts):
                good = 2 - ((n + i) % 3 == 0) - (n == 1 and i == 2)
                windows.append(_camera_window(province, cam, start, 2, max(good, 0)))
    w.write("health_window", windows)
    w.write("health_window", windows[:5])  # a replayed stretch: collapses by event_id

    # -- the quota's progress through December 2563 --------------------------------------------
    progress = []
    for province, steps in QUOTA.items():
        registered = CAMERAS[province] - (1 if province == "TH-10" else 0)
        required = -(-registered * 20 // 100)
        for day, selected, status in steps:
            progress.append(
                _quota(province, _december(day), registered, selected, required, status)
            )
    progress.append(
        _quota("TH-50", dt.datetime(2020, 12, 31, 17, 5, tzinfo=dt.UTC), 6, 0, 2, "MISSED")
    )
    w.write("quota_progress", progress)

    # -- projects: routed in December 2563; one resubmitted -----------------------------------
    routings = [
        _routing("TH-10", "PRJ-TH10-001", "12500000.00", "OTHER", _december(20), 1),
        _routing("TH-10", "PRJ-TH10-002", "450000.00", "PROCUREMENT", _december(22), 1),
        _routing("TH-50", "PRJ-TH50-001", "15000000.00", "OTHER", _december(26), 1),
        _routing("TH-50", "PRJ-TH50-001", "9800000.00", "OTHER", _december(27), 2),
        _routing("TH-50", "PRJ-TH50-002", "300000.00", "PROCUREMENT", _december(31, 5), 1),
        _routing("TH-20", "PRJ-TH20-001", "2000000.00", "OTHER", _december(10), 1),
    ]
    other_campaign = _routing("TH-20", "PRJ-OLD-001", "100000.00", "OTHER", _december(2), 1)
    other_campaign["campaign_id"] = "moi-cctv-2562"
    w.write("project_routing", [*routings, other_campaign])

    # -- alerts ---------------------------------------------------------------------------------
    alerts = [
        alert_record("TH-10", "CAMERA_OFFLINE", camera_id("TH-10", 1), now - 50 * minute),
        alert_record("TH-10", "CAMERA_OFFLINE", camera_id("TH-10", 2), now - 120 * minute),
        alert_record("TH-10", "CAMERA_RECOVERED", camera_id("TH-10", 2), now - 60 * minute),
        alert_record("TH-10", "CAMERA_DEGRADED", camera_id("TH-10", 3), now - 30 * minute),
        alert_record("TH-50", "CAMERA_OFFLINE", camera_id("TH-50", 1), now - 40 * minute),
        alert_record("TH-50", "CAMERA_RECOVERED", camera_id("TH-50", 2), now - 20 * minute),
        alert_record("TH-50", "CAMERA_DEGRADED", camera_id("TH-50", 2), now - 20 * minute),
        alert_record("TH-20", "QUOTA_AT_RISK", "TH-20", _december(24), CAMPAIGN),
        alert_record("TH-10", "QUOTA_AT_RISK", "TH-10", _december(24), CAMPAIGN),
        alert_record("TH-50", "QUOTA_AT_RISK", "TH-50", _december(24), CAMPAIGN),
        alert_record("TH-50", "QUOTA_MISSED", "TH-50", _december(31, 17), CAMPAIGN),
        alert_record("TH-50", "LATE_SUBMISSION", "PRJ-TH50-002", _december(31, 5), CAMPAIGN),
    ]
    w.write("alert", alerts)
    later = Writer(ctx, store, ingested_at=now)
    later.write("alert", alerts[4:5])  # a replayed alert: stored twice, one alert
    population.live_alert_ids = [a["event_id"] for a in alerts]

    # -- dead letters ---------------------------------------------------------------------------
    letters = [
        _dead_letter(now - 10 * minute, 101, "invalid_field"),
        _dead_letter(now - 20 * minute, 102, "invalid_field"),
        _dead_letter(now - 30 * minute, 103, "unknown_province"),
        _dead_letter(now - 3 * 60 * minute, 104, "undecodable"),
        _dead_letter(now - 5 * 60 * minute, 105, "undecodable"),
    ]
    w.write("dead_letter", letters)
    w.write("dead_letter", letters[:1])  # the same failure written again
    return population


def _province_window(
    province: str, start: dt.datetime, total: int, reachable: int, known: int, offline: int
) -> dict[str, Any]:
    record = _event(start + dt.timedelta(minutes=1, seconds=30), province, "health")
    record.update(
        scope="PROVINCE",
        camera_id=None,
        window_start=start,
        window_end=start + dt.timedelta(minutes=1),
        heartbeats=total,
        reachable_heartbeats=reachable,
        availability_pct=reachable * 100 / total,
        avg_fps=24.5,
        frozen_count=0,
        black_count=0,
        cameras=known,
        degraded_count=0,
        blurred_count=0,
        late_heartbeats=0,
        p95_latency_ms=500,
        cameras_known=known,
        cameras_offline=offline,
        camera_availability_pct=(known - offline) * 100 / known,
    )
    return record


def _camera_window(
    province: str, cam: str, start: dt.datetime, total: int, reachable: int
) -> dict[str, Any]:
    record = _event(start + dt.timedelta(minutes=1, seconds=30), province, "health")
    record.update(
        scope="CAMERA",
        camera_id=cam,
        window_start=start,
        window_end=start + dt.timedelta(minutes=1),
        heartbeats=total,
        reachable_heartbeats=reachable,
        availability_pct=reachable * 100 / total,
        avg_fps=24.5 if reachable else None,
        frozen_count=0,
        black_count=0,
        cameras=None,
        degraded_count=0,
        blurred_count=0,
        late_heartbeats=0,
        p95_latency_ms=300 if reachable else None,
        cameras_known=None,
        cameras_offline=None,
        camera_availability_pct=None,
    )
    return record


def _quota(
    province: str, at: dt.datetime, registered: int, selected: int, required: int, status: str
) -> dict[str, Any]:
    record = _event(at, province, "quota-processor")
    record.update(
        campaign_id=CAMPAIGN,
        rule_version=RULES,
        registered_cameras=registered,
        selected_cameras=selected,
        required_cameras=required,
        deadline=DEADLINE,
        status=status,
    )
    return record


def _routing(
    province: str, project: str, budget: str, kind: str, submitted: dt.datetime, version: int
) -> dict[str, Any]:
    amount = Decimal(budget)
    destinations = [
        {
            "body": "PROVINCIAL_WORKING_GROUP",
            "send_by": None,
            "decide_by": DECIDE_BY,
            "late": submitted > DECIDE_BY,
        }
    ]
    if amount >= Decimal("10000001.00"):
        destinations.append(
            {
                "body": "NATIONAL_SUBCOMMITTEE",
                "send_by": NS_SEND_BY,
                "decide_by": DECIDE_BY,
                "late": submitted > NS_SEND_BY,
            }
        )
    if kind == "PROCUREMENT" and amount <= Decimal("500000.00"):
        destinations.append(
            {"body": "NATIONAL_CAMERA_REGISTRY", "send_by": None, "decide_by": None, "late": False}
        )
    reasons = [f"after_deadline:{d['body']}" for d in destinations if d["late"]]
    record = _event(submitted + dt.timedelta(seconds=2), province, "routing-processor")
    record.update(
        campaign_id=CAMPAIGN,
        rule_version=RULES,
        project_id=project,
        submission_event_id=str(uuid.uuid4()),
        budget=amount,
        destinations=destinations,
        late=bool(reasons),
        late_reasons=reasons,
        routing_version=version,
        supersedes_event_id=None if version == 1 else str(uuid.uuid4()),
        agency="สำนักงานเทศบาล" if kind == "OTHER" else "สถานีตำรวจภูธร",
        title=f"โครงการติดตั้งกล้องโทรทัศน์วงจรปิด {project}",
        kind=kind,
        fiscal_year=2565,
        submitted_at=submitted,
    )
    return record


def alert_record(
    province: str, kind: str, subject: str, at: dt.datetime, campaign: str | None = None
) -> dict[str, Any]:
    """An alert as the health or rules agents raise it."""
    severity = {
        "CAMERA_OFFLINE": "CRITICAL",
        "QUOTA_MISSED": "CRITICAL",
        "CAMERA_RECOVERED": "INFO",
    }.get(kind, "WARNING")
    record = _event(at, province, "health" if kind.startswith("CAMERA") else "rules")
    record.update(
        alert_type=kind,
        severity=severity,
        subject_id=subject,
        message_en=f"{kind.replace('_', ' ').lower()}: {subject}",
        message_th=f"แจ้งเตือน {subject}",
        campaign_id=campaign,
    )
    return record


def _dead_letter(at: dt.datetime, offset: int, reason: str) -> dict[str, Any]:
    record = _event(at, "TH-50", "sink")
    record.update(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"dead-letter/{offset}")),
        source_topic="cctv.inbound.camera-heartbeats.v1",
        source_partition=0,
        source_offset=offset,
        source_key=None,
        payload=b"\x00bad",
        reason_code=reason,
        error=f"InputError: {reason}",
        field="fps" if reason == "invalid_field" else None,
        processor="health",
    )
    return record


# -- the truth, from the history tables (not the views the dashboard reads) -------------------


def sql_truth(engine: Any, db: str, *, now: dt.datetime, online_window_seconds: int) -> dict:
    """The national figures, computed here from the history tables with plain SQL (each event
    counted once), to hold the dashboard's figures against."""
    now = now.astimezone(dt.UTC)
    today = now.astimezone(BANGKOK).date()

    def one(sql: str) -> dict[str, Any]:
        return engine.query(sql)[0]

    def at(moment: dt.datetime) -> str:
        return f"toDateTime('{moment:%Y-%m-%d %H:%M:%S}', 'UTC')"

    quota = one(
        "SELECT countIf(s = 'MET') AS met, sum(sel) AS selected, sum(req) AS required, "
        "sum(reg) AS registered FROM (SELECT province_code, "
        "argMax(toString(status), occurred_at) AS s, argMax(selected_cameras, occurred_at) AS sel, "
        "argMax(required_cameras, occurred_at) AS req, "
        "argMax(registered_cameras, occurred_at) AS reg "
        f"FROM {db}.quota_progress WHERE campaign_id = '{CAMPAIGN}' GROUP BY province_code)"
    )
    cameras = one(
        "SELECT countIf(c != 'RETIRED') AS registered FROM (SELECT camera_id, "
        f"argMax(toString(change), occurred_at) AS c FROM {db}.camera_registrations "
        "GROUP BY camera_id)"
    )
    since = now - dt.timedelta(seconds=online_window_seconds)
    heard = one(
        f"SELECT count() AS watched, countIf(r = 1 AND t >= {at(since)}) AS online "
        "FROM (SELECT camera_id, max(occurred_at) AS t, argMax(reachable, occurred_at) AS r "
        f"FROM {db}.camera_heartbeats GROUP BY camera_id)"
    )
    availability = one(
        "SELECT sum(reachable_heartbeats) AS r, sum(heartbeats) AS h "
        f"FROM {db}.health_windows FINAL WHERE scope = 'PROVINCE' "
        f"AND toDate(window_start, 'Asia/Bangkok') = toDate('{today.isoformat()}')"
    )
    letters = one(
        f"SELECT uniqExact(event_id) AS n FROM {db}.dead_letters "
        f"WHERE occurred_at >= {at(now - dt.timedelta(hours=1))}"
    )
    projects = one(
        "SELECT count() AS n, countIf(l = 1) AS late FROM (SELECT project_id, "
        f"argMax(late, routing_version) AS l FROM {db}.project_routing "
        f"WHERE campaign_id = '{CAMPAIGN}' GROUP BY project_id)"
    )
    h, r = int(availability["h"] or 0), int(availability["r"] or 0)
    return {
        "provinces_met": int(quota["met"]),
        "selected_cameras": int(quota["selected"]),
        "required_cameras": int(quota["required"]),
        "registered_cameras": int(quota["registered"]),
        "cameras_registered": int(cameras["registered"]),
        "cameras_watched": int(heard["watched"]),
        "cameras_online": int(heard["online"]),
        "availability_pct": r * 100 / h if h else None,
        "open_alerts": _open_alerts_truth(engine, db),
        "dead_letters_last_hour": int(letters["n"]),
        "projects": int(projects["n"]),
        "late_projects": int(projects["late"]),
    }


def _open_alerts_truth(engine: Any, db: str) -> int:
    """Alerts whose condition still holds, worked out in Python from the distinct alerts."""
    rows = engine.query(
        "SELECT DISTINCT event_id, province_code, subject_id, toString(alert_type) AS kind, "
        f"occurred_at, ifNull(campaign_id, '') AS campaign FROM {db}.alerts"
    )
    status = {
        r["province_code"]: r["s"]
        for r in engine.query(
            "SELECT province_code, argMax(toString(status), occurred_at) AS s "
            f"FROM {db}.quota_progress WHERE campaign_id = '{CAMPAIGN}' GROUP BY province_code"
        )
    }
    latest: dict[tuple[str, str, str], tuple[Any, bool, str]] = {}
    for r in rows:
        if r["kind"].startswith("CAMERA_"):
            family = "camera"
        elif r["kind"].startswith("QUOTA_") and r["campaign"] == CAMPAIGN:
            family = "quota"
        else:
            continue
        key = (r["province_code"], r["subject_id"], family)
        rank = (str(r["occurred_at"]), r["kind"] != "CAMERA_RECOVERED", r["kind"])
        if key not in latest or rank[:2] > latest[key][:2]:
            latest[key] = rank
    count = 0
    for (province, _, family), (_, _, kind) in latest.items():
        if family == "camera" and kind in ("CAMERA_OFFLINE", "CAMERA_DEGRADED"):
            count += 1
        elif family == "quota" and status.get(province) in ("AT_RISK", "MISSED"):
            count += 1
    return count


@contextmanager
def sample_history(
    engine: str,
    root: Any,
    clickhouse_server: Any,
    *,
    name: str,
    now: dt.datetime,
    online_window_seconds: int,
) -> Iterator[tuple[Context, Store, Population, Any]]:
    """A fresh database on `engine` ("chdb", or "server": `clickhouse_server` is then the
    fixture's (url, http port)) holding `populate`'s sample: (context, the writing store, the
    population, the engine to read through). On the server, reads go through the read-only
    analyst; the database is dropped afterwards."""
    database = f"{name}{uuid.uuid4().hex[:8]}"
    clickhouse: dict[str, Any] = {"chdb_path": str(root / "chdb"), "database": database}
    if engine == "server":
        url, http_port = clickhouse_server
        clickhouse.update(url=url, http_port=http_port)
    settings = Settings.load(
        environ={},
        clickhouse=clickhouse,
        dashboard={"online_window_seconds": online_window_seconds, "worst_cameras": 3},
    )
    ctx = Context.load(settings)
    store = ctx.open_store()
    reader = store.engine
    try:
        prepare_database(store)
        population = populate(ctx, store, now=now)
        if engine == "server":
            from cctv.storage.engines import ServerEngine

            reader = ServerEngine(analyst_url(url))
        yield ctx, store, population, reader
    finally:
        if reader is not store.engine:
            reader.close()
            store.engine.execute(f"DROP DATABASE IF EXISTS {database}")
        store.engine.close()
