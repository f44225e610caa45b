"""Dashboard query latency over a year of history: 100 million heartbeats, a year of health windows.

Per engine (embedded chDB, and Debian's 18.16 ClickHouse server when installed), a fresh
database is migrated (`cctv db migrate`: history tables, rollups, views) and filled with
generated history, inside the engine (``INSERT … SELECT … FROM numbers()``), month by month:

* ``--dashboard-rows`` heartbeats (default 100,000,000) from ``--dashboard-cameras`` cameras
  (default 10,000, spread evenly over the 77 provinces), evenly spaced over the 365 days up to
  the run's start, 3 % unreachable, a few frozen / dark;
* a PROVINCE health window per province per minute for the year (77 x 525,600 = 40.5 million),
  and a CAMERA window per camera per minute of today (the worst-cameras query reads those);
* four quota figures per province per day, 100 alerts per province per week, 10,000 dead
  letters, 2,000 routed projects, and the cameras' registrations.

Then every page of the dashboard is timed as the dashboard computes it, by calling
`cctv.figures` (each call runs several queries): the national overview, the province table,
the province page of the largest province, the project pipeline and the alerts feed. Each page
runs once to warm up and then ``--dashboard-repeat`` times (default 20); p50 and p95 are over
those runs, and "slowest query" is the p95 of the page's slowest single query.

"Without rollups" runs the same pages after replacing the four views with definitions that read
the history tables directly (the aggregation the rollups store, done at query time): the
baseline measured in the same run. Goal (issue "National history"): every dashboard query
under 200 ms at this size.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from benchmarks import machine
from benchmarks.section import Context
from cctv import figures
from cctv.settings import Settings
from cctv.storage.engines import ChdbEngine, Engine, ServerEngine
from cctv.storage.migrations import migrate
from cctv.storage.store import Store
from schemas.registry import SchemaRegistry

SECTION = "dashboard"
TITLE = "Dashboard query latency over 100 million heartbeats and a year of health windows"
GOAL_MS = 200.0
DEFAULT_ROWS = 100_000_000
DEFAULT_CAMERAS = 10_000
DEFAULT_REPEAT = 20
DEFAULT_DAYS = 365
MONTHS = 12
DATABASE = "cctv_bench_dashboard"

PAGES = ("national overview", "province table", "province page", "project pipeline", "alerts")


@dataclass
class Timed:
    """An engine whose read-only queries are timed one by one."""

    engine: Engine
    times: list[float] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def query_read_only(self, sql: str) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            return self.engine.query_read_only(sql)
        finally:
            self.times.append(time.perf_counter() - started)


@dataclass
class PageTimes:
    totals: list[float] = field(default_factory=list)
    slowest: list[float] = field(default_factory=list)
    queries: int = 0


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _literal_array(values: list[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _ts(expr: str) -> str:
    return f"toDateTime(toUInt32({expr}), 'UTC')"


def generate(
    engine: Engine,
    settings: Settings,
    *,
    rows: int,
    cameras: int,
    days: int,
    end: dt.datetime,
    log: TextIO,
) -> dict[str, int]:
    """Fill the database with a year of history; returns row counts per table."""
    db = DATABASE
    codes = [p.code for p in settings_provinces(settings)]
    provinces = _literal_array(codes)
    n_prov = len(codes)
    start = int((end - dt.timedelta(days=days)).timestamp())
    span = days * 86_400
    per_camera = max(1, rows // cameras)
    step = max(1, span // per_camera)
    cam = f"(n % {cameras})"
    prov = f"arrayElement({provinces}, toUInt32({cam} % {n_prov}) + 1)"
    camera_id = f"concat('CAM-', toString({cam}))"
    counts: dict[str, int] = {}

    def insert(table: str, columns: str, select: str, total: int, label: str) -> None:
        began = time.perf_counter()
        chunk = -(-total // MONTHS)
        for k in range(MONTHS):
            first, count = k * chunk, min(chunk, total - k * chunk)
            if count <= 0:
                break
            rows_sql = select.replace("{first}", str(first)).replace("{count}", str(count))
            engine.execute(f"INSERT INTO {db}.{table} ({columns}) {rows_sql}")
            print(
                f"    {label}: {min(total, first + count):,} of {total:,} rows "
                f"({time.perf_counter() - began:.0f} s)",
                file=log,
                flush=True,
            )
        counts[table] = counts.get(table, 0) + total

    source = "FROM (SELECT number + {first} AS n FROM numbers({count}))"
    insert(
        "camera_heartbeats",
        "event_id, occurred_at, producer, province_code, camera_id, reachable, fps, frozen, "
        "black, dark, blurred, error_kind, latency_ms, _topic, _partition, _offset, _ingested_at",
        f"SELECT concat('hb-', toString(n)) AS event_id, "
        f"{_ts(f'{start} + intDiv(n, {cameras}) * {step} + ({cam} * 7919) % {step}')} "
        f"AS occurred_at, 'bench' AS producer, {prov} AS province_code, "
        f"{camera_id} AS camera_id, toUInt8(cityHash64(n) % 100 >= 3) AS reachable, "
        "toFloat32(25) AS fps, toUInt8(cityHash64(n, 1) % 500 = 0) AS frozen, "
        "toUInt8(0) AS black, toUInt8(cityHash64(n, 2) % 300 = 0) AS dark, "
        "toUInt8(0) AS blurred, if(cityHash64(n) % 100 >= 3, NULL, 'timeout') AS error_kind, "
        "toInt32(150 + cityHash64(n, 3) % 400) AS latency_ms, 'bench' AS _topic, "
        "toInt32(n % 6) AS _partition, toInt64(n) AS _offset, now() AS _ingested_at " + source,
        per_camera * cameras,
        "heartbeats",
    )
    minutes = span // 60
    per_province = max(1, cameras // n_prov) * 2  # two heartbeats a minute per camera
    insert(
        "health_windows",
        "event_id, occurred_at, producer, province_code, scope, window_start, window_end, "
        "heartbeats, reachable_heartbeats, availability_pct, cameras, cameras_known, "
        "cameras_offline, camera_availability_pct, _topic, _partition, _offset, _ingested_at",
        f"SELECT concat('pw-', toString(n)) AS event_id, "
        f"{_ts(f'{start} + intDiv(n, {n_prov}) * 60 + 90')} AS occurred_at, 'bench' AS producer, "
        f"arrayElement({provinces}, toUInt32(n % {n_prov}) + 1) AS province_code, "
        f"'PROVINCE' AS scope, {_ts(f'{start} + intDiv(n, {n_prov}) * 60')} AS window_start, "
        f"{_ts(f'{start} + intDiv(n, {n_prov}) * 60 + 60')} AS window_end, "
        f"toInt32({per_province}) AS heartbeats, "
        f"toInt32({per_province} - cityHash64(n) % 8) AS reachable_heartbeats, "
        f"(100.0 * ({per_province} - cityHash64(n) % 8)) / {per_province} AS availability_pct, "
        f"toInt32({per_province // 2}) AS cameras, toInt32({per_province // 2}) AS cameras_known, "
        "toInt32(cityHash64(n) % 3) AS cameras_offline, "
        f"100.0 - (cityHash64(n) % 3) * 100.0 / {per_province // 2} AS camera_availability_pct, "
        "'bench' AS _topic, toInt32(0) AS _partition, toInt64(n) AS _offset, "
        "now() AS _ingested_at " + source,
        minutes * n_prov,
        "province health windows",
    )
    zone = settings.clickhouse.day_timezone
    from zoneinfo import ZoneInfo

    local = end.astimezone(ZoneInfo(zone))
    day_start = int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
    today_minutes = max(1, (int(end.timestamp()) - day_start) // 60)
    insert(
        "health_windows",
        "event_id, occurred_at, producer, province_code, scope, camera_id, window_start, "
        "window_end, heartbeats, reachable_heartbeats, availability_pct, "
        "_topic, _partition, _offset, _ingested_at",
        f"SELECT concat('cw-', toString(n)) AS event_id, "
        f"{_ts(f'{day_start} + intDiv(n, {cameras}) * 60 + 90')} AS occurred_at, "
        f"'bench' AS producer, {prov} AS province_code, 'CAMERA' AS scope, "
        f"{camera_id} AS camera_id, {_ts(f'{day_start} + intDiv(n, {cameras}) * 60')} "
        f"AS window_start, {_ts(f'{day_start} + intDiv(n, {cameras}) * 60 + 60')} AS window_end, "
        "toInt32(2) AS heartbeats, toInt32(2 - (cityHash64(n) % 40 = 0)) AS reachable_heartbeats, "
        "100.0 * (2 - (cityHash64(n) % 40 = 0)) / 2 AS availability_pct, 'bench' AS _topic, "
        "toInt32(0) AS _partition, toInt64(n) AS _offset, now() AS _ingested_at " + source,
        today_minutes * cameras,
        "camera health windows of today",
    )
    campaign = figures._campaign(settings)  # noqa: SLF001 - the campaign the figures read
    deadline = int(campaign.due(campaign.selection.deadline).timestamp())
    insert(
        "quota_progress",
        "event_id, occurred_at, producer, province_code, campaign_id, rule_version, "
        "registered_cameras, selected_cameras, required_cameras, deadline, status, "
        "_topic, _partition, _offset, _ingested_at",
        f"SELECT concat('q-', toString(n)) AS event_id, "
        f"{_ts(f'{start} + intDiv(n, {n_prov}) * 21600')} AS occurred_at, 'bench' AS producer, "
        f"arrayElement({provinces}, toUInt32(n % {n_prov}) + 1) AS province_code, "
        f"'{campaign.campaign_id}' AS campaign_id, 'bench' AS rule_version, "
        f"toInt32({per_province // 2}) AS registered_cameras, "
        f"toInt32(least({per_province // 10}, intDiv(n, {n_prov} * 40))) AS selected_cameras, "
        f"toInt32({per_province // 10}) AS required_cameras, {_ts(deadline)} AS deadline, "
        f"if(intDiv(n, {n_prov} * 40) >= {per_province // 10}, 'MET', 'ON_TRACK') AS status, "
        "'bench' AS _topic, toInt32(0) AS _partition, toInt64(n) AS _offset, "
        "now() AS _ingested_at " + source,
        days * 4 * n_prov,
        "quota figures",
    )
    insert(
        "alerts",
        "event_id, occurred_at, producer, province_code, alert_type, severity, subject_id, "
        "message_en, message_th, _topic, _partition, _offset, _ingested_at",
        f"SELECT concat('a-', toString(n)) AS event_id, "
        f"{_ts(f'{start} + (cityHash64(n) % {span})')} AS occurred_at, 'bench' AS producer, "
        f"{prov} AS province_code, "
        "arrayElement(['CAMERA_OFFLINE', 'CAMERA_RECOVERED', 'CAMERA_DEGRADED'], "
        "toUInt32(n % 3) + 1) AS alert_type, 'WARNING' AS severity, "
        f"{camera_id} AS subject_id, 'camera offline' AS message_en, "
        "'กล้องออฟไลน์' AS message_th, 'bench' AS _topic, toInt32(0) AS _partition, "
        "toInt64(n) AS _offset, now() AS _ingested_at " + source,
        100 * n_prov * 52,
        "alerts",
    )
    insert(
        "dead_letters",
        "event_id, occurred_at, producer, province_code, source_topic, source_partition, "
        "source_offset, payload, reason_code, error, processor, _topic, _partition, _offset, "
        "_ingested_at",
        f"SELECT concat('d-', toString(n)) AS event_id, "
        f"{_ts(f'{start} + (cityHash64(n) % {span})')} AS occurred_at, 'bench' AS producer, "
        f"{prov} AS province_code, 'cctv.inbound.camera-heartbeats.v1' AS source_topic, "
        "toInt32(n % 6) AS source_partition, toInt64(n) AS source_offset, '' AS payload, "
        "arrayElement(['missing_field', 'unknown_province', 'invalid_value'], "
        "toUInt32(n % 3) + 1) AS reason_code, 'bench' AS error, 'bench' AS processor, "
        "'bench' AS _topic, toInt32(0) AS _partition, toInt64(n) AS _offset, "
        "now() AS _ingested_at " + source,
        10_000,
        "dead letters",
    )
    decide_by = campaign.due(campaign.routing.provincial_working_group.decide_by).isoformat()
    insert(
        "project_routing",
        "event_id, occurred_at, producer, province_code, campaign_id, rule_version, "
        "project_id, submission_event_id, budget, destinations, late, late_reasons, "
        "routing_version, agency, title, _topic, _partition, _offset, _ingested_at",
        f"SELECT concat('r-', toString(n)) AS event_id, "
        f"{_ts(f'{start} + (cityHash64(n) % {span})')} AS occurred_at, 'bench' AS producer, "
        f"arrayElement({provinces}, toUInt32(n % {n_prov}) + 1) AS province_code, "
        f"'{campaign.campaign_id}' AS campaign_id, 'bench' AS rule_version, "
        "concat('PRJ-', toString(n)) AS project_id, concat('s-', toString(n)) AS "
        "submission_event_id, toDecimal64(cityHash64(n) % 20000000, 2) AS budget, "
        '[concat(\'{"body": "PROVINCIAL_WORKING_GROUP", "send_by": null, "decide_by": "'
        f"{decide_by}"
        "\", \"late\": ', if(n % 10 = 0, 'true', 'false'), '}')] "
        "AS destinations, toUInt8(n % 10 = 0) AS late, [] AS late_reasons, "
        "toInt32(1) AS routing_version, 'เทศบาล' AS agency, 'โครงการกล้อง CCTV' AS title, "
        "'bench' AS _topic, toInt32(0) AS _partition, toInt64(n) AS _offset, "
        "now() AS _ingested_at " + source,
        2_000,
        "project routings",
    )
    insert(
        "camera_registrations",
        "event_id, occurred_at, producer, province_code, camera_id, change, owner_agency, "
        "name_th, name_en, linked, _topic, _partition, _offset, _ingested_at",
        f"SELECT concat('c-', toString(n)) AS event_id, {_ts(start)} AS occurred_at, "
        f"'bench' AS producer, {prov} AS province_code, {camera_id} AS camera_id, "
        "'REGISTERED' AS change, 'เทศบาล' AS owner_agency, concat('กล้อง ', toString(n)) "
        "AS name_th, concat('Camera ', toString(n)) AS name_en, toUInt8(n % 5 = 0) AS linked, "
        "'bench' AS _topic, toInt32(0) AS _partition, toInt64(n) AS _offset, "
        "now() AS _ingested_at " + source,
        cameras,
        "registrations",
    )
    return counts


def settings_provinces(settings: Settings) -> list[Any]:
    from cctv.provinces import Provinces

    return list(Provinces.load(settings.provinces_file))


# The four views as the history tables answer them without rollups: the rollups' aggregation,
# done at query time. Same names and columns, so cctv.figures runs unchanged.
def _raw_views(db: str, tz: str) -> list[str]:
    v = "(occurred_at, _offset)"
    return [
        f"CREATE VIEW {db}.v_camera_status AS SELECT province_code, camera_id, last_seen, "
        "if(toUnixTimestamp(reachable_at) = 0, NULL, reachable_at) AS last_reachable, "
        "if(toUnixTimestamp(degraded_at) = 0, NULL, degraded_at) AS last_degraded, "
        "toUInt8(reachable_at = last_seen) AS reachable, "
        "toUInt8(degraded_at = last_seen) AS degraded FROM (SELECT province_code, camera_id, "
        "max(occurred_at) AS last_seen, maxIf(occurred_at, reachable = 1) AS reachable_at, "
        "maxIf(occurred_at, frozen OR black OR dark OR blurred) AS degraded_at "
        f"FROM {db}.camera_heartbeats GROUP BY province_code, camera_id)",
        f"CREATE VIEW {db}.v_availability_daily AS SELECT province_code, day, "
        "count() AS windows, sum(hb) AS heartbeats, sum(rh) AS reachable_heartbeats, "
        "if(sum(hb) = 0, NULL, sum(rh) * 100.0 / sum(hb)) AS availability_pct, "
        "avg(cap) AS camera_availability_pct FROM (SELECT province_code, "
        f"toDate(window_start, '{tz}') AS day, window_start, "
        f"toInt64(argMax(heartbeats, {v})) AS hb, toInt64(argMax(reachable_heartbeats, {v})) "
        f"AS rh, argMax(camera_availability_pct, {v}) AS cap FROM {db}.health_windows "
        "WHERE scope = 'PROVINCE' GROUP BY province_code, day, window_start) "
        "GROUP BY province_code, day",
        f"CREATE VIEW {db}.v_quota_daily AS SELECT province_code, "
        f"toDate(occurred_at, '{tz}') AS day, argMax(campaign_id, {v}) AS campaign_id, "
        f"argMax(registered_cameras, {v}) AS registered_cameras, "
        f"argMax(selected_cameras, {v}) AS selected_cameras, "
        f"argMax(required_cameras, {v}) AS required_cameras, "
        f"argMax(CAST(status AS String), {v}) AS status, argMax(deadline, {v}) AS deadline, "
        f"max(occurred_at) AS updated_at FROM {db}.quota_progress GROUP BY province_code, day",
        f"CREATE VIEW {db}.v_cameras AS SELECT province_code, camera_id, "
        f"argMax(CAST(change AS String), {v}) AS change, argMax(owner_agency, {v}) AS "
        f"owner_agency, argMax(name_th, {v}) AS name_th, argMax(name_en, {v}) AS name_en, "
        f"argMax(latitude, {v}) AS latitude, argMax(longitude, {v}) AS longitude, "
        f"argMax(location_description, {v}) AS location_description, "
        f"argMax(linked, {v}) AS linked, max(occurred_at) AS registered_at "
        f"FROM {db}.camera_registrations GROUP BY province_code, camera_id",
    ]


VIEWS = ("v_camera_status", "v_availability_daily", "v_quota_daily", "v_cameras")


def measure_pages(
    engine: Engine, settings: Settings, *, now: dt.datetime, repeat: int, province: str
) -> dict[str, PageTimes]:
    timed = Timed(engine)
    common = {"database": DATABASE, "settings": settings, "now": now}
    pages = {
        "national overview": lambda: figures.national_overview(timed, **common),
        "province table": lambda: figures.province_rows(timed, **common),
        "province page": lambda: figures.province_detail(timed, province_code=province, **common),
        "project pipeline": lambda: figures.project_pipeline(timed, **common),
        "alerts": lambda: figures.alerts_since(timed, cursor=None, **common),
    }
    results: dict[str, PageTimes] = {}
    for name, page in pages.items():
        page()  # warm-up: caches, first reads from disk
        result = PageTimes()
        for _ in range(repeat):
            timed.times.clear()
            started = time.perf_counter()
            page()
            result.totals.append(time.perf_counter() - started)
            result.slowest.append(max(timed.times) if timed.times else 0.0)
            result.queries = len(timed.times)
        results[name] = result
    return results


def run(
    *, rows: int, cameras: int, days: int, repeat: int, settings: Settings, log: TextIO
) -> list[dict[str, Any]]:
    from infra.clickhouse.server import ClickHouseServer, find_binary
    from infra.ports import free_ports

    schemas = SchemaRegistry.load()
    latest = {n: schemas.raw(n, schemas.versions(n)[-1]) for n in schemas.names()}
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    outcomes: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cctv-bench-dashboard-") as tmp:
        root = Path(tmp)
        engines: list[tuple[str, Any]] = [("chDB", lambda: ChdbEngine(root / "chdb"))]
        server = None
        try:
            find_binary()
            tcp, http = free_ports(2)
            server = ClickHouseServer(home=root / "server", tcp_port=tcp, http_port=http)
            server.start(timeout=90)
            url = server.url
            engines.append((f"server {server.version()}", lambda: ServerEngine(url)))
        except Exception as exc:  # not installed: say so in the document
            outcomes.append({"engine": "ClickHouse server", "error": str(exc)})
            server = None
        try:
            for label, opener in engines:
                try:
                    outcomes.append(
                        _measure_engine(
                            label, opener, settings, latest, rows, cameras, days, repeat, end, log
                        )
                    )
                except Exception as exc:  # one engine failing must not lose the other's figures
                    print(f"  {label}: failed: {exc}", file=log, flush=True)
                    outcomes.append({"engine": label, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            if server is not None:
                server.stop()
    return outcomes


def _measure_engine(
    label: str,
    opener: Any,
    settings: Settings,
    latest: dict[str, Any],
    rows: int,
    cameras: int,
    days: int,
    repeat: int,
    end: dt.datetime,
    log: TextIO,
) -> dict[str, Any]:
    largest = "TH-10"
    engine = opener()
    try:
        print(f"  {label}: generating the history ...", file=log, flush=True)
        store = Store(engine, database=DATABASE, schemas=latest)
        migrate(store, timezone=settings.clickhouse.day_timezone)
        began = time.perf_counter()
        counts = generate(engine, settings, rows=rows, cameras=cameras, days=days, end=end, log=log)
        generated = time.perf_counter() - began
        print(f"  {label}: timing the pages with the rollups", file=log, flush=True)
        with_rollups = measure_pages(engine, settings, now=end, repeat=repeat, province=largest)
        _print_pages(label, "rollups", with_rollups, log)
        for view in VIEWS:
            engine.execute(f"DROP TABLE {DATABASE}.{view}")
        for sql in _raw_views(DATABASE, settings.clickhouse.day_timezone):
            engine.execute(sql)
        print(f"  {label}: timing the pages without", file=log, flush=True)
        without = measure_pages(
            engine, settings, now=end, repeat=max(3, repeat // 4), province=largest
        )
        _print_pages(label, "no rollups", without, log)
        engine.execute(f"DROP DATABASE {DATABASE}")
        return {
            "engine": label,
            "counts": counts,
            "generated_s": generated,
            "with": with_rollups,
            "without": without,
        }
    finally:
        engine.close()


def _print_pages(label: str, variant: str, pages: dict[str, PageTimes], log: TextIO) -> None:
    for page, t in pages.items():
        print(
            f"    {label} ({variant}) {page}: p50 {_p(t.totals, 0.5) * 1000:.0f} ms, "
            f"p95 {_p(t.totals, 0.95) * 1000:.0f} ms, slowest query p95 "
            f"{_p(t.slowest, 0.95) * 1000:.0f} ms ({t.queries} queries)",
            file=log,
            flush=True,
        )


def render(
    outcomes: list[dict[str, Any]],
    *,
    command: str,
    date: str,
    note: str | None,
    rows: int,
    cameras: int,
    days: int,
    repeat: int,
) -> str:
    lines = [
        f"## {TITLE}",
        "",
        f"Command: {command}  ",
        f"Date: {date}  ",
        f"Load average (1/5/15 min) at the end: {machine.load_average()}",
    ]
    if note:
        lines += ["", f"Note: {note}"]
    lines += [
        "",
        f"{rows:,} heartbeats from {cameras:,} cameras over {days} days; a PROVINCE health "
        "window per province per minute over those days; CAMERA windows for today. Each page is "
        "what `cctv.figures` computes for the dashboard (several queries); p50/p95 over "
        f"{repeat} runs with the rollups (fewer without: the baseline is slow). Goal: every "
        f"dashboard query under {GOAL_MS:.0f} ms.",
        "",
    ]
    verdicts = []
    for outcome in outcomes:
        if "error" in outcome:
            lines += [f"{outcome['engine']}: not measured ({outcome['error']})", ""]
            continue
        counts = outcome["counts"]
        lines += [
            f"### {outcome['engine']}",
            "",
            f"Generated {sum(counts.values()):,} rows in {outcome['generated_s']:.0f} s "
            f"({counts.get('camera_heartbeats', 0):,} heartbeats, "
            f"{counts.get('health_windows', 0):,} health windows).",
            "",
            "| page | queries | p50 ms (rollups) | p95 ms (rollups) | slowest query p95 ms "
            "| p50 ms (no rollups) | speed-up |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for page in PAGES:
            w, wo = outcome["with"][page], outcome["without"][page]
            p50, p95 = _p(w.totals, 0.5) * 1000, _p(w.totals, 0.95) * 1000
            slow = _p(w.slowest, 0.95) * 1000
            base = _p(wo.totals, 0.5) * 1000
            lines.append(
                f"| {page} | {w.queries} | {p50:.0f} | {p95:.0f} | {slow:.0f} | {base:.0f} "
                f"| {base / p50 if p50 else 0:.1f}x |"
            )
            verdicts.append((outcome["engine"], page, slow))
        lines.append("")
    missed = [(e, p, s) for e, p, s in verdicts if s >= GOAL_MS]
    if verdicts:
        lines.append(
            "Goal met: every query's p95 is under 200 ms."
            if not missed
            else "Goal **not met** for: "
            + "; ".join(f"{e} {p} (slowest query p95 {s:.0f} ms)" for e, p, s in missed)
        )
    lines += ["", *machine.markdown(machine.describe())]
    return "\n".join(lines)


def run_section(ctx: Context) -> str:
    args = ctx.args
    settings = Settings.load()
    outcomes = run(
        rows=args.dashboard_rows,
        cameras=args.dashboard_cameras,
        days=args.dashboard_days,
        repeat=args.dashboard_repeat,
        settings=settings,
        log=ctx.log,
    )
    text = render(
        outcomes,
        command=ctx.command(
            [
                "--only",
                SECTION,
                "--dashboard-rows",
                str(args.dashboard_rows),
                "--dashboard-cameras",
                str(args.dashboard_cameras),
                "--dashboard-days",
                str(args.dashboard_days),
                "--dashboard-repeat",
                str(args.dashboard_repeat),
            ]
        ),
        date=ctx.date,
        note=args.note,
        rows=args.dashboard_rows,
        cameras=args.dashboard_cameras,
        days=args.dashboard_days,
        repeat=args.dashboard_repeat,
    )
    print()
    print(text)
    return text
