"""The read side: the figures the monitoring room's dashboard shows (and governors' reports use).

Every function takes an `Engine`, the database name and the settings, runs read-only queries
(`engine.query_read_only`) and returns plain dataclasses -- no HTML, no JSON. They read the
views the migrations create over the history tables and their rollups:

- `v_quota_daily`: the last quota figure of each province and day;
- `v_availability_daily`: province availability per day (from PROVINCE health windows);
- `v_camera_status`: when each camera was last seen, last reachable, last degraded (the
  latest heartbeat's details come from `camera_heartbeats`, for the few cameras a page shows);
- `v_cameras`: each camera's latest registration;

and, where no rollup fits, the history tables themselves, deduplicated by `event_id` (argMax or
one row per event_id), so that replaying a topic changes no figure: `alerts`, `dead_letters`,
`project_routing` (the latest `routing_version` of each project) and CAMERA health windows.

The SQL stays within what Debian's ClickHouse 18.16 server understands: no window functions,
no `WITH name AS (subquery)`, no DateTime64 functions; instants are passed in as
`toDateTime('…', 'UTC')` literals computed here, so "now" and "today" are the caller's (today
is the calendar day in `clickhouse.day_timezone`, Bangkok, as the rollups count days), not
the server's.

A *snapshot* (`snapshot=True`, governors' reports of a past day) reads the history as it stood
at `now`: nothing that happened after it counts (quota figures of later days, later routings,
alerts, dead letters, health windows and heartbeats). The rollups that keep only each
camera's latest state cannot answer for a past instant, so a snapshot reads those figures
from the history tables, over the day of `now` (see ProvinceStatus).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cctv.campaign import Campaign
from cctv.exceptions import InputError
from cctv.provinces import Province, Provinces
from cctv.settings import Settings
from cctv.storage.engines import Engine
from cctv.storage.tables import HISTORY_TABLES

# Quota status of a province, as shown: the QuotaStatus symbols, and two of our own.
MET, ON_TRACK, AT_RISK, MISSED = "MET", "ON_TRACK", "AT_RISK", "MISSED"
NO_DATA = "NO_DATA"  # a campaign province without a quota figure yet
OUTSIDE = "OUTSIDE"  # a province the campaign in force does not cover
STATUSES = (MET, ON_TRACK, AT_RISK, MISSED, NO_DATA, OUTSIDE)

CAMERA_ALERTS = ("CAMERA_OFFLINE", "CAMERA_RECOVERED", "CAMERA_DEGRADED")
QUOTA_ALERTS = ("QUOTA_AT_RISK", "QUOTA_MISSED")
# An alert is open while the condition it raised still holds: a camera's latest alert is
# OFFLINE or DEGRADED (RECOVERED closes it), or a province's latest quota alert while its quota
# is still AT_RISK or MISSED. LATE_SUBMISSION is a fact about a project, not a condition that
# ends: the pipeline shows late projects instead.
OPEN_ALERTS = ("CAMERA_OFFLINE", "CAMERA_DEGRADED", *QUOTA_ALERTS)

BODIES = ("PROVINCIAL_WORKING_GROUP", "NATIONAL_SUBCOMMITTEE", "NATIONAL_CAMERA_REGISTRY")
# Where a project stands at one body.
LATE = "LATE"  # submitted after that body's deadline
DUE = "DUE"  # its deadline is still ahead
DEADLINE_PASSED = "DEADLINE_PASSED"  # submitted in time; the body's decision date has passed
NO_DEADLINE = "NO_DEADLINE"


# -- what the functions return ---------------------------------------------------------------


@dataclass(frozen=True)
class ProvinceStatus:
    """One province's figures: one cell of the national grid, one row of the province table."""

    province_code: str
    name_en: str
    name_th: str
    in_campaign: bool
    status: str  # one of STATUSES
    registered_cameras: int | None  # the quota's base, as the quota agent last counted
    selected_cameras: int | None
    required_cameras: int | None
    deadline: dt.datetime | None
    quota_updated_at: dt.datetime | None
    cameras_registered: int  # cameras whose latest registration is not RETIRED
    cameras_linked: int
    cameras_watched: int  # cameras that sent at least one heartbeat (in a snapshot: that day)
    cameras_online: int  # ...whose latest heartbeat is reachable and recent
    availability_pct: float | None  # today's reachable heartbeats / heartbeats * 100
    camera_availability_pct: float | None  # today's mean share of cameras not offline
    open_alerts: int
    projects: int
    late_projects: int

    @property
    def selected_pct(self) -> float | None:
        """Selected cameras as a share of the required ones (100 = quota met)."""
        if not self.required_cameras or self.selected_cameras is None:
            return None
        return self.selected_cameras * 100 / self.required_cameras


@dataclass(frozen=True)
class NationalOverview:
    as_of: dt.datetime  # UTC
    today: dt.date  # the Bangkok calendar day "today" figures cover
    campaign_id: str
    provinces_in_campaign: int
    provinces_met: int
    selected_cameras: int  # summed over campaign provinces
    required_cameras: int
    registered_cameras: int  # the quota's base, summed over campaign provinces
    cameras_registered: int  # nationwide, every province
    cameras_watched: int
    cameras_online: int
    heartbeats_today: int
    availability_pct: float | None  # nationwide, today
    open_alerts: int
    open_alerts_by_type: dict[str, int]
    dead_letters_last_hour: int
    dead_letters_by_reason: dict[str, int]
    projects: int
    late_projects: int
    status_counts: dict[str, int]
    provinces: list[ProvinceStatus]  # all of them, in code order


@dataclass(frozen=True)
class QuotaPoint:
    day: dt.date
    registered_cameras: int
    selected_cameras: int
    required_cameras: int
    status: str


@dataclass(frozen=True)
class AvailabilityPoint:
    day: dt.date
    heartbeats: int
    availability_pct: float | None
    camera_availability_pct: float | None


@dataclass(frozen=True)
class CameraHealth:
    camera_id: str
    name_en: str | None
    name_th: str | None
    location: str | None
    online: bool
    reachable: bool | None  # None: never heard from
    last_seen: dt.datetime | None
    error_kind: str | None
    faults: list[str]  # of frozen, black, dark, blurred in the latest heartbeat
    fps: float | None
    heartbeats_today: int
    availability_pct: float | None  # today's, from the camera's health windows


@dataclass(frozen=True)
class Destination:
    body: str  # one of BODIES
    send_by: dt.datetime | None
    decide_by: dt.datetime | None
    late: bool
    stage: str  # LATE, DUE, DEADLINE_PASSED or NO_DEADLINE

    @property
    def deadline(self) -> dt.datetime | None:
        """The deadline that matters for this body: sending, else deciding."""
        return self.send_by or self.decide_by


@dataclass(frozen=True)
class Project:
    """A project as its latest routing version stands."""

    project_id: str
    province_code: str
    title: str
    agency: str
    kind: str | None
    budget: Decimal
    fiscal_year: int | None
    submitted_at: dt.datetime | None
    routed_at: dt.datetime
    routing_version: int
    late: bool
    late_reasons: list[str]
    destinations: list[Destination]


@dataclass(frozen=True)
class ProvinceDetail:
    province: ProvinceStatus
    as_of: dt.datetime  # UTC
    today: dt.date
    deadline: dt.datetime  # the campaign's selection deadline (last millisecond, UTC)
    quota: list[QuotaPoint]  # one per day with a figure, oldest first
    availability: list[AvailabilityPoint]  # the last trend_days days with data, oldest first
    worst_cameras: list[CameraHealth]
    projects: list[Project]  # late first, then by deadline


@dataclass(frozen=True)
class AvailabilityTotals:
    """Availability over every province-day `v_availability_daily` holds (the bounded demo's
    summary: a replayed December is no "today")."""

    first_day: dt.date | None
    last_day: dt.date | None
    provinces: int
    province_days: int
    windows: int
    heartbeats: int
    reachable_heartbeats: int
    availability_pct: float | None
    camera_availability_pct: float | None  # mean over province-days with the figure


@dataclass(frozen=True)
class PipelineEntry:
    project: Project
    destination: Destination


@dataclass(frozen=True)
class Pipeline:
    as_of: dt.datetime
    # body -> its projects, late ones first, then by deadline (earliest first)
    stages: dict[str, list[PipelineEntry]]
    totals: dict[str, int]  # body -> projects routed there (before the display limit)
    late: dict[str, int]  # body -> of those, late


@dataclass(frozen=True)
class Alert:
    event_id: str
    occurred_at: dt.datetime
    first_seen: dt.datetime  # when ClickHouse first stored it (the live feed's order)
    province_code: str
    alert_type: str
    severity: str
    subject_id: str
    message_en: str
    message_th: str


@dataclass(frozen=True)
class AlertCursor:
    """Where a live feed stands: the first-storage second of the newest alert it delivered, and
    what it delivered within the grace before it (id -> first-storage epoch second).

    Storage times are the sink's batch times, so an alert may become visible after a newer-
    stamped one: the feed looks `dashboard.alerts_grace_seconds` back each time and skips what
    it already delivered."""

    at: dt.datetime
    seen: tuple[tuple[str, int], ...] = ()

    def encode(self) -> str:
        return f"{int(self.at.timestamp())}:" + ",".join(f"{i}@{t}" for i, t in self.seen)

    @classmethod
    def decode(cls, text: str) -> AlertCursor:
        head, _, rest = text.partition(":")
        try:
            at = dt.datetime.fromtimestamp(int(head), dt.UTC)
            seen = tuple(
                (event_id, int(second))
                for event_id, _, second in (item.partition("@") for item in rest.split(",") if item)
            )
        except (ValueError, OverflowError, OSError):
            seen, at = (), None
        if at is None or any(not _is_event_id(i) for i, _ in seen):
            raise InputError(
                f"cursor: {text[:80]!r} is not an alerts cursor "
                "(expected <epoch seconds>:<event id>@<epoch seconds>,...)",
                field="cursor",
            )
        return cls(at, seen)

    def delivered(self) -> set[str]:
        return {event_id for event_id, _ in self.seen}

    def advance(self, alerts: Sequence[Alert], *, grace_seconds: float) -> AlertCursor:
        """The cursor after delivering `alerts`."""
        at = max([self.at, *(a.first_seen for a in alerts)])
        floor = at.timestamp() - grace_seconds
        seen = dict(self.seen)
        seen.update((a.event_id, int(a.first_seen.timestamp())) for a in alerts)
        return AlertCursor(at, tuple(sorted((i, t) for i, t in seen.items() if t >= floor)))


# -- the figures -----------------------------------------------------------------------------


def national_overview(
    engine: Engine,
    *,
    database: str,
    settings: Settings,
    now: dt.datetime | None = None,
    snapshot: bool = False,
) -> NationalOverview:
    """The country at a glance, with every province's status for the grid."""
    now = _now(now)
    campaign = _campaign(settings)
    provinces, open_alerts = _province_statuses(
        engine, database, settings, now=now, only=None, snapshot=snapshot
    )
    letters = _dead_letters(
        engine, database, since=now - dt.timedelta(hours=1), until=now if snapshot else None
    )
    open_by_type: dict[str, int] = {}
    for (_, kind), count in open_alerts.items():
        open_by_type[kind] = open_by_type.get(kind, 0) + count
    in_campaign = [p for p in provinces if p.in_campaign]
    heartbeats, reachable = _availability_sums(engine, database, day=_today(now, settings))
    status_counts = {s: 0 for s in STATUSES}
    for p in provinces:
        status_counts[p.status] += 1
    return NationalOverview(
        as_of=now,
        today=_today(now, settings),
        campaign_id=campaign.campaign_id,
        provinces_in_campaign=len(in_campaign),
        provinces_met=status_counts[MET],
        selected_cameras=sum(p.selected_cameras or 0 for p in in_campaign),
        required_cameras=sum(p.required_cameras or 0 for p in in_campaign),
        registered_cameras=sum(p.registered_cameras or 0 for p in in_campaign),
        cameras_registered=sum(p.cameras_registered for p in provinces),
        cameras_watched=sum(p.cameras_watched for p in provinces),
        cameras_online=sum(p.cameras_online for p in provinces),
        heartbeats_today=heartbeats,
        availability_pct=_pct(reachable, heartbeats),
        open_alerts=sum(open_by_type.values()),
        open_alerts_by_type=dict(sorted(open_by_type.items())),
        dead_letters_last_hour=sum(letters.values()),
        dead_letters_by_reason=letters,
        projects=sum(p.projects for p in provinces),
        late_projects=sum(p.late_projects for p in provinces),
        status_counts=status_counts,
        provinces=provinces,
    )


def province_rows(
    engine: Engine,
    *,
    database: str,
    settings: Settings,
    now: dt.datetime | None = None,
    snapshot: bool = False,
) -> list[ProvinceStatus]:
    """One row per province (all 77, in code order), Thai and English names beside the code."""
    return _province_statuses(
        engine, database, settings, now=_now(now), only=None, snapshot=snapshot
    )[0]


def province_detail(
    engine: Engine,
    *,
    database: str,
    settings: Settings,
    province_code: str,
    now: dt.datetime | None = None,
    snapshot: bool = False,
) -> ProvinceDetail:
    """One province in depth. `province_code` must be a known code (InputError otherwise)."""
    now = _now(now)
    provinces = _provinces(settings)
    province = provinces.get(province_code)  # InputError for an unknown code
    campaign = _campaign(settings)
    cfg = settings.dashboard
    today = _today(now, settings)
    (status,), _ = _province_statuses(
        engine, database, settings, now=now, only=province.code, snapshot=snapshot
    )
    code = _literal(province.code)
    quota = [
        QuotaPoint(
            day=_date(r["day"]),
            registered_cameras=int(r["registered"]),
            selected_cameras=int(r["selected"]),
            required_cameras=int(r["required"]),
            status=str(r["status"]),
        )
        for r in engine.query_read_only(
            "SELECT day, argMax(registered_cameras, updated_at) AS registered, "
            "argMax(selected_cameras, updated_at) AS selected, "
            "argMax(required_cameras, updated_at) AS required, "
            "argMax(toString(status), updated_at) AS status "
            f"FROM {database}.v_quota_daily "
            f"WHERE province_code = {code} AND campaign_id = {_literal(campaign.campaign_id)} "
            f"{_up_to_day(today, snapshot)}GROUP BY day ORDER BY day"
        )
    ]
    first_day = today - dt.timedelta(days=cfg.trend_days - 1)
    availability = [
        AvailabilityPoint(
            day=_date(r["day"]),
            heartbeats=int(r["heartbeats"]),
            availability_pct=_pct(int(r["reachable"]), int(r["heartbeats"])),
            camera_availability_pct=_float(r["camera_pct"]),
        )
        for r in engine.query_read_only(
            "SELECT day, sum(heartbeats) AS heartbeats, sum(reachable_heartbeats) AS reachable, "
            "avg(camera_availability_pct) AS camera_pct "
            f"FROM {database}.v_availability_daily WHERE province_code = {code} "
            f"AND day >= {_date_literal(first_day)} AND day <= {_date_literal(today)} "
            "GROUP BY day ORDER BY day"
        )
    ]
    return ProvinceDetail(
        province=status,
        as_of=now,
        today=today,
        deadline=campaign.due(campaign.selection.deadline),
        quota=quota,
        availability=availability,
        worst_cameras=_worst_cameras(
            engine, database, settings, province.code, now=now, snapshot=snapshot
        ),
        projects=_sorted_projects(
            _projects(
                engine,
                database,
                campaign,
                province_code=province.code,
                now=now,
                snapshot=snapshot,
            )
        ),
    )


def project_pipeline(
    engine: Engine,
    *,
    database: str,
    settings: Settings,
    now: dt.datetime | None = None,
    snapshot: bool = False,
) -> Pipeline:
    """Every project of the campaign by destination: late ones first, then by deadline."""
    now = _now(now)
    campaign = _campaign(settings)
    limit = settings.dashboard.projects_shown
    by_body: dict[str, list[PipelineEntry]] = {body: [] for body in BODIES}
    for project in _projects(
        engine, database, campaign, province_code=None, now=now, snapshot=snapshot
    ):
        for destination in project.destinations:
            by_body.setdefault(destination.body, []).append(PipelineEntry(project, destination))
    stages, totals, late = {}, {}, {}
    for body, entries in by_body.items():
        entries.sort(key=lambda e: _pipeline_order(e.destination, e.project))
        stages[body] = entries[:limit]
        totals[body] = len(entries)
        late[body] = sum(1 for e in entries if e.destination.late)
    return Pipeline(as_of=now, stages=stages, totals=totals, late=late)


def alerts_since(
    engine: Engine,
    *,
    database: str,
    settings: Settings,
    cursor: AlertCursor | None = None,
    now: dt.datetime | None = None,
) -> tuple[list[Alert], AlertCursor]:
    """Alerts in the order ClickHouse first stored them, and the cursor after them.

    Without a cursor: the latest `dashboard.alerts_shown`. With one: those stored since, not yet
    delivered (at most `alerts_shown`; ask again with the returned cursor for more). An alert
    stored again by a replay keeps its first storage time, so a feed never shows it twice.
    Alerts whose event time is older than `dashboard.alerts_lookback_hours` are not looked at.
    See AlertCursor for alerts that become visible out of order."""
    now = _now(now)
    cfg = settings.dashboard
    grace = cfg.alerts_grace_seconds
    lookback = now - dt.timedelta(hours=cfg.alerts_lookback_hours)
    having = ""
    order = "first_seen DESC, at DESC, event_id DESC"
    if cursor is not None:
        since = cursor.at - dt.timedelta(seconds=grace)
        having = f"HAVING first_seen >= {_time_literal(since)}"
        if cursor.seen:
            listed = ", ".join(_literal(i) for i, _ in cursor.seen)
            having += f" AND event_id NOT IN ({listed})"
        order = "first_seen, at, event_id"
    rows = engine.query_read_only(
        "SELECT event_id, min(_ingested_at) AS first_seen, any(occurred_at) AS at, "
        "any(province_code) AS province, any(toString(alert_type)) AS kind, "
        "any(toString(severity)) AS level, any(subject_id) AS subject, "
        "any(message_en) AS en, any(message_th) AS th "
        f"FROM {database}.alerts WHERE occurred_at >= {_time_literal(lookback)} "
        f"GROUP BY event_id {having} ORDER BY {order} LIMIT {int(cfg.alerts_shown)}"
    )
    alerts = [
        Alert(
            event_id=str(r["event_id"]),
            occurred_at=_datetime(r["at"]),
            first_seen=_datetime(r["first_seen"]),
            province_code=str(r["province"]),
            alert_type=str(r["kind"]),
            severity=str(r["level"]),
            subject_id=str(r["subject"]),
            message_en=str(r["en"]),
            message_th=str(r["th"]),
        )
        for r in rows
    ]
    if cursor is None:
        alerts.reverse()
        cursor = AlertCursor(alerts[0].first_seen if alerts else now.replace(microsecond=0))
    return alerts, cursor.advance(alerts, grace_seconds=grace)


# -- the queries behind them -----------------------------------------------------------------


def history_rows(engine: Engine, *, database: str) -> dict[str, int]:
    """Rows stored in each history table (replays included until merged away: what reached
    ClickHouse, not a deduplicated figure), in the order of `HISTORY_TABLES`."""
    parts = " UNION ALL ".join(
        f"SELECT {_literal(spec.name)} AS name, count() AS n FROM {database}.{spec.name}"
        for spec in HISTORY_TABLES
    )
    found = {str(r["name"]): int(r["n"]) for r in engine.query_read_only(parts)}
    return {spec.name: found.get(spec.name, 0) for spec in HISTORY_TABLES}


def availability_totals(engine: Engine, *, database: str) -> AvailabilityTotals:
    """Availability summed over every day and province the health windows cover."""
    rows = engine.query_read_only(
        "SELECT min(day) AS first_day, max(day) AS last_day, "
        "uniqExact(province_code) AS provinces, count() AS province_days, "
        "sum(windows) AS windows, sum(heartbeats) AS heartbeats, "
        "sum(reachable_heartbeats) AS reachable, avg(camera_availability_pct) AS camera_pct "
        f"FROM {database}.v_availability_daily"
    )
    r = rows[0] if rows else {}
    days = int(r.get("province_days") or 0)
    heartbeats, reachable = int(r.get("heartbeats") or 0), int(r.get("reachable") or 0)
    return AvailabilityTotals(
        first_day=_date(r["first_day"]) if days else None,
        last_day=_date(r["last_day"]) if days else None,
        provinces=int(r.get("provinces") or 0),
        province_days=days,
        windows=int(r.get("windows") or 0),
        heartbeats=heartbeats,
        reachable_heartbeats=reachable,
        availability_pct=_pct(reachable, heartbeats),
        camera_availability_pct=_float(r.get("camera_pct")) if days else None,
    )


def registered_among(engine: Engine, *, database: str, camera_ids: Sequence[str]) -> dict[str, int]:
    """province_code -> cameras of `camera_ids` whose latest registration there is not
    RETIRED (`v_cameras`): whether a province's inventory file arrived whole."""
    if not camera_ids:
        return {}
    listed = ", ".join(map(_literal, sorted(set(camera_ids))))
    rows = engine.query_read_only(
        "SELECT province_code, countIf(toString(change) != 'RETIRED') AS registered "
        f"FROM {database}.v_cameras WHERE camera_id IN ({listed}) GROUP BY province_code"
    )
    return {str(r["province_code"]): int(r["registered"]) for r in rows}


def _province_statuses(
    engine: Engine,
    database: str,
    settings: Settings,
    *,
    now: dt.datetime,
    only: str | None,
    snapshot: bool = False,
) -> tuple[list[ProvinceStatus], dict[tuple[str, str], int]]:
    """Every province's figures (or the one `only` names), and the open alerts by
    (province_code, alert_type)."""
    provinces = _provinces(settings)
    campaign = _campaign(settings)
    today = _today(now, settings)
    where = f"province_code = {_literal(only)}" if only else "1"
    quota = _by_province(
        engine.query_read_only(
            "SELECT province_code, argMax(registered_cameras, updated_at) AS registered, "
            "argMax(selected_cameras, updated_at) AS selected, "
            "argMax(required_cameras, updated_at) AS required, "
            "argMax(toString(status), updated_at) AS status, "
            "argMax(deadline, updated_at) AS due, max(updated_at) AS updated "
            f"FROM {database}.v_quota_daily "
            f"WHERE {where} AND campaign_id = {_literal(campaign.campaign_id)} "
            f"{_up_to_day(today, snapshot)}GROUP BY province_code"
        )
    )
    inventory = f"{database}.v_cameras"
    if snapshot:  # each camera's latest registration up to now, from the history
        inventory = (
            "(SELECT province_code, camera_id, "
            f"argMax(toString(change), {_VERSION}) AS change, argMax(linked, {_VERSION}) AS linked "
            f"FROM {database}.camera_registrations WHERE {where} "
            f"AND occurred_at < {_after(now)} GROUP BY province_code, camera_id)"
        )
    cameras = _by_province(
        engine.query_read_only(
            "SELECT province_code, countIf(toString(change) != 'RETIRED') AS registered, "
            "countIf(toString(change) != 'RETIRED' AND linked = 1) AS linked "
            f"FROM {inventory} WHERE {where} GROUP BY province_code"
        )
    )
    online_since = now - dt.timedelta(seconds=settings.dashboard.online_window_seconds)
    heard = f"{database}.v_camera_status"
    if snapshot:  # the cameras heard from that day, as they last were by now
        heard = _heard_that_day(database, settings, where, now=now)
    status = _by_province(
        engine.query_read_only(
            "SELECT province_code, count() AS watched, "
            f"countIf(reachable = 1 AND last_seen >= {_time_literal(online_since)}) AS online "
            f"FROM {heard} WHERE {where} GROUP BY province_code"
        )
    )
    availability = _by_province(
        engine.query_read_only(
            "SELECT province_code, sum(heartbeats) AS heartbeats, "
            "sum(reachable_heartbeats) AS reachable, avg(camera_availability_pct) AS camera_pct "
            f"FROM {database}.v_availability_daily "
            f"WHERE {where} AND day = {_date_literal(today)} GROUP BY province_code"
        )
    )
    projects = _by_province(
        engine.query_read_only(
            "SELECT code AS province_code, count() AS projects, countIf(is_late = 1) AS late "
            "FROM (SELECT project_id, argMax(province_code, routing_version) AS code, "
            "argMax(late, routing_version) AS is_late "
            f"FROM {database}.project_routing "
            f"WHERE {where} AND campaign_id = {_literal(campaign.campaign_id)} "
            f"{_up_to(now, snapshot)}GROUP BY project_id) GROUP BY code"
        )
    )
    chosen = [provinces.get(only)] if only else sorted(provinces, key=lambda p: p.code)
    # Quota status first: whether a quota alert is still open depends on it.
    statuses = {p.code: _status(p, campaign, quota.get(p.code)) for p in chosen}
    open_alerts = _open_alerts(
        engine, database, campaign, statuses, only=only, until=now if snapshot else None
    )
    rows = []
    for p in chosen:
        q = quota.get(p.code)
        c = cameras.get(p.code, {})
        s = status.get(p.code, {})
        a = availability.get(p.code)
        j = projects.get(p.code, {})
        rows.append(
            ProvinceStatus(
                province_code=p.code,
                name_en=p.name_en,
                name_th=p.name_th,
                in_campaign=campaign.in_campaign(p.code),
                status=statuses[p.code],
                registered_cameras=int(q["registered"]) if q else None,
                selected_cameras=int(q["selected"]) if q else None,
                required_cameras=int(q["required"]) if q else None,
                deadline=_datetime(q["due"]) if q else None,
                quota_updated_at=_datetime(q["updated"]) if q else None,
                cameras_registered=int(c.get("registered", 0)),
                cameras_linked=int(c.get("linked", 0)),
                cameras_watched=int(s.get("watched", 0)),
                cameras_online=int(s.get("online", 0)),
                availability_pct=_pct(int(a["reachable"]), int(a["heartbeats"])) if a else None,
                camera_availability_pct=_float(a["camera_pct"]) if a else None,
                open_alerts=sum(n for (code, _), n in open_alerts.items() if code == p.code),
                projects=int(j.get("projects", 0)),
                late_projects=int(j.get("late", 0)),
            )
        )
    return rows, open_alerts


def _status(province: Province, campaign: Campaign, quota: dict[str, Any] | None) -> str:
    if not campaign.in_campaign(province.code):
        return OUTSIDE
    if quota is None:
        return NO_DATA
    status = str(quota["status"])
    return status if status in (MET, ON_TRACK, AT_RISK, MISSED) else AT_RISK  # the schema's default


def _open_alerts(
    engine: Engine,
    database: str,
    campaign: Campaign,
    quota_status: dict[str, str],
    *,
    only: str | None,
    until: dt.datetime | None = None,
) -> dict[tuple[str, str], int]:
    """(province_code, alert_type) -> open alerts, for the types in OPEN_ALERTS (raised by
    `until`, when given)."""
    where = f"province_code = {_literal(only)} AND " if only else ""
    if until is not None:
        where += f"occurred_at < {_after(until)} AND "
    camera = ", ".join(map(_literal, CAMERA_ALERTS))
    quota = ", ".join(map(_literal, QUOTA_ALERTS))
    rows = engine.query_read_only(
        "SELECT code, latest, count() AS n FROM ("
        "SELECT province_code AS code, subject_id, "
        f"if(toString(alert_type) IN ({camera}), 'camera', 'quota') AS family, "
        # A camera back and still degraded gets RECOVERED and DEGRADED at the same instant:
        # the one that is not RECOVERED is its state.
        "argMax(toString(alert_type), "
        "(occurred_at, toString(alert_type) != 'CAMERA_RECOVERED')) AS latest "
        f"FROM {database}.alerts WHERE {where}(toString(alert_type) IN ({camera}) "
        f"OR (toString(alert_type) IN ({quota}) "
        f"AND campaign_id = {_literal(campaign.campaign_id)})) "
        "GROUP BY code, subject_id, family"
        f") WHERE latest IN ({', '.join(map(_literal, OPEN_ALERTS))}) GROUP BY code, latest"
    )
    found: dict[tuple[str, str], int] = {}
    for r in rows:
        code, kind = str(r["code"]), str(r["latest"])
        if kind in QUOTA_ALERTS and quota_status.get(code) not in (AT_RISK, MISSED):
            continue  # the province has since met its quota (or the figure is gone)
        found[(code, kind)] = found.get((code, kind), 0) + int(r["n"])
    return found


def _availability_sums(engine: Engine, database: str, *, day: dt.date) -> tuple[int, int]:
    rows = engine.query_read_only(
        "SELECT sum(heartbeats) AS heartbeats, sum(reachable_heartbeats) AS reachable "
        f"FROM {database}.v_availability_daily WHERE day = {_date_literal(day)}"
    )
    if not rows:
        return 0, 0
    return int(rows[0]["heartbeats"] or 0), int(rows[0]["reachable"] or 0)


def _dead_letters(
    engine: Engine, database: str, *, since: dt.datetime, until: dt.datetime | None = None
) -> dict[str, int]:
    """reason_code -> dead letters (distinct event ids) dated at or after `since` (and at or
    before `until`, when given)."""
    bound = f"AND occurred_at < {_after(until)} " if until is not None else ""
    rows = engine.query_read_only(
        "SELECT reason_code, uniqExact(event_id) AS n "
        f"FROM {database}.dead_letters WHERE occurred_at >= {_time_literal(since)} {bound}"
        "GROUP BY reason_code ORDER BY n DESC, reason_code"
    )
    return {str(r["reason_code"]): int(r["n"]) for r in rows}


def _latest_heartbeats(
    engine: Engine,
    database: str,
    province_code: str,
    listed: str,
    *,
    day: tuple[dt.datetime, dt.datetime] | None = None,
) -> dict[str, dict[str, Any]]:
    """The latest heartbeat of a few cameras, whole: the rollup keeps only when each camera was
    last seen, so the details are read from camera_heartbeats at that moment (its sorting key
    is (province_code, camera_id, occurred_at): a few granules per camera). With `day` (a
    snapshot's [day start, now]): the latest within it."""
    code = _literal(province_code)
    if day is not None:
        at = (
            f"camera_id IN ({listed}) AND occurred_at >= {_time_literal(day[0])} "
            f"AND occurred_at < {_after(day[1])}"
        )
    else:
        seen = engine.query_read_only(
            f"SELECT camera_id, last_seen FROM {database}.v_camera_status "
            f"WHERE province_code = {code} AND camera_id IN ({listed})"
        )
        if not seen:
            return {}
        at = " OR ".join(
            f"(camera_id = {_literal(str(r['camera_id']))} "
            f"AND occurred_at >= {_time_literal(_datetime(r['last_seen']))})"
            for r in seen
        )
    version = "(occurred_at, _offset)"
    return {
        str(r["camera_id"]): r
        for r in engine.query_read_only(
            f"SELECT camera_id, max(occurred_at) AS last_seen, "
            f"argMax(reachable, {version}) AS reachable, "
            f"argMax(ifNull(error_kind, ''), {version}) AS error_kind_, "
            f"argMax(frozen, {version}) AS frozen, argMax(black, {version}) AS black, "
            f"argMax(dark, {version}) AS dark, argMax(blurred, {version}) AS blurred, "
            f"argMax(ifNull(toFloat64(fps), -1.0), {version}) AS fps_ "
            f"FROM {database}.camera_heartbeats WHERE province_code = {code} AND ({at}) "
            "GROUP BY camera_id"
        )
    }


def _worst_cameras(
    engine: Engine,
    database: str,
    settings: Settings,
    province_code: str,
    *,
    now: dt.datetime,
    snapshot: bool = False,
) -> list[CameraHealth]:
    """The province's worst cameras: offline ones first (longest silent first), then degraded,
    then by today's availability, lowest first."""
    cfg = settings.dashboard
    code = _literal(province_code)
    online_since = _time_literal(now - dt.timedelta(seconds=cfg.online_window_seconds))
    day_start = dt.datetime.combine(_today(now, settings), dt.time(), _zone(settings)).astimezone(
        dt.UTC
    )
    limit = int(cfg.worst_cameras)
    where = f"province_code = {_literal(province_code)}"
    heard = (
        _heard_that_day(database, settings, where, now=now)
        if snapshot
        else f"{database}.v_camera_status"
    )
    # Candidates from both ends: not online now, and lowest availability today.
    offline = engine.query_read_only(
        f"SELECT camera_id FROM {heard} WHERE province_code = {code} "
        f"AND NOT (reachable = 1 AND last_seen >= {online_since}) "
        f"ORDER BY last_seen, camera_id LIMIT {limit}"
    )
    windows = (
        "SELECT event_id, any(camera_id) AS cam, any(heartbeats) AS h, "
        "any(reachable_heartbeats) AS r "
        f"FROM {database}.health_windows WHERE province_code = {code} AND scope = 'CAMERA' "
        f"AND window_start >= {_time_literal(day_start)} "
        f"{'AND window_start < ' + _after(now) + ' ' if snapshot else ''}"
        "GROUP BY event_id"
    )
    lowest = engine.query_read_only(
        f"SELECT cam, sum(h) AS heartbeats, sum(r) AS reachable FROM ({windows}) "
        f"WHERE cam IS NOT NULL GROUP BY cam "
        f"ORDER BY reachable / heartbeats, heartbeats DESC, cam LIMIT {limit}"
    )
    ids = sorted({str(r["camera_id"]) for r in offline} | {str(r["cam"]) for r in lowest})
    if not ids:
        return []
    listed = ", ".join(map(_literal, ids))
    today_figures = {
        str(r["cam"]): r
        for r in engine.query_read_only(
            f"SELECT cam, sum(h) AS heartbeats, sum(r) AS reachable FROM ({windows}) "
            f"WHERE cam IN ({listed}) GROUP BY cam"
        )
    }
    latest = _latest_heartbeats(
        engine, database, province_code, listed, day=(day_start, now) if snapshot else None
    )
    names = {
        str(r["camera_id"]): r
        for r in engine.query_read_only(
            "SELECT camera_id, name_en, name_th, location_description "
            f"FROM {database}.v_cameras WHERE province_code = {code} AND camera_id IN ({listed})"
        )
    }
    online_floor = now - dt.timedelta(seconds=cfg.online_window_seconds)
    cameras = []
    for camera_id in ids:
        s, t, n = latest.get(camera_id), today_figures.get(camera_id), names.get(camera_id, {})
        last_seen = _datetime(s["last_seen"]) if s else None
        reachable = bool(int(s["reachable"])) if s else None
        heartbeats = int(t["heartbeats"]) if t else 0
        cameras.append(
            CameraHealth(
                camera_id=camera_id,
                name_en=n.get("name_en"),
                name_th=n.get("name_th"),
                location=n.get("location_description"),
                online=bool(reachable and last_seen and last_seen >= online_floor),
                reachable=reachable,
                last_seen=last_seen,
                error_kind=(s["error_kind_"] or None) if s else None,
                faults=[f for f in ("frozen", "black", "dark", "blurred") if s and int(s[f])],
                fps=_float(s["fps_"]) if s and float(s["fps_"]) >= 0 else None,
                heartbeats_today=heartbeats,
                availability_pct=_pct(int(t["reachable"]), heartbeats) if t else None,
            )
        )

    def badness(c: CameraHealth) -> tuple[Any, ...]:
        silent = c.last_seen.timestamp() if c.last_seen else float("-inf")
        return (
            c.online,
            silent if not c.online else 0,
            not c.faults,
            c.availability_pct if c.availability_pct is not None else 101.0,
            c.camera_id,
        )

    return sorted(cameras, key=badness)[:limit]


_PROJECT_FIELDS = (
    "province_code",
    "title",
    "agency",
    "budget",
    "destinations",
    "late",
    "late_reasons",
    "fiscal_year",
    "submitted_at",
    "occurred_at",
)


def _projects(
    engine: Engine,
    database: str,
    campaign: Campaign,
    *,
    province_code: str | None,
    now: dt.datetime,
    snapshot: bool = False,
) -> list[Project]:
    """Each project of the campaign as its latest routing version stands (by `now`, in a
    snapshot)."""
    where = f"province_code = {_literal(province_code)} AND " if province_code else ""
    latest = ", ".join(f"argMax({f}, routing_version) AS p_{f}" for f in _PROJECT_FIELDS)
    rows = engine.query_read_only(
        f"SELECT project_id, max(routing_version) AS version, {latest}, "
        "argMax(toString(ifNull(kind, '')), routing_version) AS p_kind "
        f"FROM {database}.project_routing "
        f"WHERE {where}campaign_id = {_literal(campaign.campaign_id)} "
        f"{_up_to(now, snapshot)}GROUP BY project_id"
    )
    projects = []
    for r in rows:
        destinations = []
        for item in r["p_destinations"] or []:
            d = json.loads(item) if isinstance(item, str) else item
            send_by, decide_by = (
                _datetime_or_none(d.get("send_by")),
                _datetime_or_none(d.get("decide_by")),
            )
            late = bool(d.get("late"))
            due = send_by or decide_by
            if late:
                stage = LATE
            elif due is None:
                stage = NO_DEADLINE
            elif (decide_by or due) >= now:
                stage = DUE
            else:
                stage = DEADLINE_PASSED
            destinations.append(Destination(str(d["body"]), send_by, decide_by, late, stage))
        projects.append(
            Project(
                project_id=str(r["project_id"]),
                province_code=str(r["p_province_code"]),
                title=str(r["p_title"]),
                agency=str(r["p_agency"]),
                kind=str(r["p_kind"]) or None,
                budget=Decimal(str(r["p_budget"])).quantize(_SATANG),
                fiscal_year=int(r["p_fiscal_year"]) if r["p_fiscal_year"] is not None else None,
                submitted_at=_datetime_or_none(r["p_submitted_at"]),
                routed_at=_datetime(r["p_occurred_at"]),
                routing_version=int(r["version"]),
                late=bool(int(r["p_late"])),
                late_reasons=[str(x) for x in r["p_late_reasons"] or []],
                destinations=destinations,
            )
        )
    return projects


def _sorted_projects(projects: list[Project]) -> list[Project]:
    def order(p: Project) -> tuple[Any, ...]:
        deadlines = [d.deadline for d in p.destinations if d.deadline is not None]
        first = min(deadlines) if deadlines else None
        return (not p.late, first is None, first or _FAR, p.project_id)

    return sorted(projects, key=order)


_SATANG = Decimal("0.01")
_FAR = dt.datetime.max.replace(tzinfo=dt.UTC)


def _pipeline_order(destination: Destination, project: Project) -> tuple[Any, ...]:
    due = destination.deadline
    return (not destination.late, due is None, due or _FAR, project.project_id)


# -- settings-derived data, loaded once per file ---------------------------------------------


def _provinces(settings: Settings) -> Provinces:
    return _load_provinces(Path(settings.provinces_file))


def _campaign(settings: Settings) -> Campaign:
    return _load_campaign(Path(settings.campaign_file), Path(settings.provinces_file))


@functools.lru_cache(maxsize=8)
def _load_provinces(path: Path) -> Provinces:
    return Provinces.load(path)


@functools.lru_cache(maxsize=8)
def _load_campaign(path: Path, provinces_path: Path) -> Campaign:
    return Campaign.load(path, provinces=_load_provinces(provinces_path))


# -- values in and out -----------------------------------------------------------------------


def _now(now: dt.datetime | None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("now: expected an aware datetime")
    return now.astimezone(dt.UTC)


def _zone(settings: Settings) -> ZoneInfo:
    """The time zone whose calendar days the rollups count in (Bangkok)."""
    return ZoneInfo(settings.clickhouse.day_timezone)


def _today(now: dt.datetime, settings: Settings) -> dt.date:
    """The calendar day of `now` where the days are counted: what the ministry calls today."""
    return now.astimezone(_zone(settings)).date()


# Which of an entity's history rows is its latest (as the rollups choose).
_VERSION = "(occurred_at, _offset)"


def _up_to(now: dt.datetime, snapshot: bool) -> str:
    """`AND occurred_at <= now ` in a snapshot, else nothing."""
    return f"AND occurred_at < {_after(now)} " if snapshot else ""


def _up_to_day(today: dt.date, snapshot: bool) -> str:
    return f"AND day <= {_date_literal(today)} " if snapshot else ""


def _heard_that_day(database: str, settings: Settings, where: str, *, now: dt.datetime) -> str:
    """A subquery shaped like v_camera_status (province_code, camera_id, last_seen, reachable)
    over the heartbeats of the day of `now`, up to `now`: a snapshot's camera states."""
    day_start = dt.datetime.combine(_today(now, settings), dt.time(), _zone(settings))
    return (
        "(SELECT province_code, camera_id, max(occurred_at) AS last_seen, "
        f"argMax(reachable, {_VERSION}) AS reachable FROM {database}.camera_heartbeats "
        f"WHERE {where} AND occurred_at >= {_time_literal(day_start)} "
        f"AND occurred_at < {_after(now)} GROUP BY province_code, camera_id)"
    )


def _by_province(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(r["province_code"]): r for r in rows}


def _pct(part: int, whole: int) -> float | None:
    return part * 100 / whole if whole else None


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if number != number else number  # NaN (avg of nothing) is no figure


def _datetime(value: Any) -> dt.datetime:
    """An engine's timestamp (a naive UTC datetime, or chDB's ISO text) as an aware UTC one."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace(" ", "T"))
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a timestamp, got {value!r}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _datetime_or_none(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):  # epoch milliseconds (a nested record's JSON)
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    return _datetime(value)


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _literal(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _time_literal(moment: dt.datetime) -> str:
    """A DateTime literal (whole seconds, UTC) that both engines compare with their columns."""
    utc = moment.astimezone(dt.UTC)
    return f"toDateTime('{utc:%Y-%m-%d %H:%M:%S}', 'UTC')"


def _after(moment: dt.datetime) -> str:
    """The first whole second after `moment`, as a literal: `column < _after(t)` holds for
    every instant up to and including t, milliseconds too (23:59:59.999 is before 00:00:00)."""
    utc = moment.astimezone(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
    return _time_literal(utc)


def _date_literal(day: dt.date) -> str:
    return f"toDate('{day.isoformat()}')"


def _is_event_id(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
