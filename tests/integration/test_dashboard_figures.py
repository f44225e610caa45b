"""cctv/figures.py on embedded chDB and on the 18.16 server (read as the read-only analyst),
over a small national history written through the history tables (tests/dashboard_samples.py):
each figure against SQL truth computed from the history tables, replays counted once, and the
alerts cursor delivering each alert once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from cctv import figures
from cctv.context import Context
from cctv.exceptions import InputError
from tests.dashboard_samples import (
    CAMPAIGN,
    Population,
    Writer,
    alert_record,
    camera_id,
    sample_history,
    sql_truth,
)

pytestmark = pytest.mark.integration

ONLINE_WINDOW = 600


@pytest.fixture(scope="module", params=["chdb", pytest.param("server", marks=pytest.mark.chserver)])
def history(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Context, object, Population, object]]:
    """(context, the writing store, what was written, the engine figures read through): on
    chDB one engine does both; on the server the figures read as the read-only analyst."""
    server = request.getfixturevalue("clickhouse_server") if request.param == "server" else None
    with sample_history(
        request.param,
        tmp_path_factory.mktemp("figures"),
        server,
        name="dash",
        now=dt.datetime.now(dt.UTC),
        online_window_seconds=ONLINE_WINDOW,
    ) as history:
        yield history


def test_the_national_overview_equals_the_sql_truth(history) -> None:
    ctx, store, population, reader = history
    db = store.database
    now = population.now
    o = figures.national_overview(reader, database=db, settings=ctx.settings, now=now)
    truth = sql_truth(store.engine, db, now=now, online_window_seconds=ONLINE_WINDOW)
    shown = {key: getattr(o, key) for key in truth}
    assert shown["availability_pct"] == pytest.approx(truth.pop("availability_pct"))
    shown.pop("availability_pct")
    assert shown == truth
    # What the sample history was written to hold, so the truth itself is no accident:
    assert o.provinces_met == 1  # TH-10
    assert o.open_alerts == 6  # 2 offline, 2 degraded cameras; TH-20 at risk, TH-50 missed
    assert o.open_alerts_by_type == {
        "CAMERA_DEGRADED": 2,
        "CAMERA_OFFLINE": 2,
        "QUOTA_AT_RISK": 1,
        "QUOTA_MISSED": 1,
    }
    assert o.dead_letters_last_hour == 3  # one of them written twice
    assert o.dead_letters_by_reason == {"invalid_field": 2, "unknown_province": 1}
    assert (o.projects, o.late_projects) == (5, 1)  # the other campaign's project is not here
    assert o.today == now.astimezone(dt.timezone(dt.timedelta(hours=7))).date()
    assert len(o.provinces) == 77
    assert sum(o.status_counts.values()) == 77
    assert o.status_counts[figures.OUTSIDE] == 77 - 29


def test_availability_over_every_day_equals_the_sql_truth(history) -> None:
    ctx, store, population, reader = history
    db = store.database
    totals = figures.availability_totals(reader, database=db)
    truth = store.engine.query(
        "SELECT sum(reachable_heartbeats) AS r, sum(heartbeats) AS h, count() AS windows, "
        "uniqExact(province_code, toDate(window_start, 'Asia/Bangkok')) AS province_days, "
        "uniqExact(province_code) AS provinces, "
        "min(toDate(window_start, 'Asia/Bangkok')) AS first_day, "
        "max(toDate(window_start, 'Asia/Bangkok')) AS last_day "
        f"FROM {db}.health_windows FINAL WHERE scope = 'PROVINCE'"
    )[0]
    assert totals.heartbeats == int(truth["h"]) > 0
    assert totals.reachable_heartbeats == int(truth["r"])
    assert totals.availability_pct == pytest.approx(100 * int(truth["r"]) / int(truth["h"]))
    assert totals.windows == int(truth["windows"])
    assert totals.province_days == int(truth["province_days"])
    assert totals.provinces == int(truth["provinces"])
    assert (str(totals.first_day), str(totals.last_day)) == (
        str(truth["first_day"])[:10],
        str(truth["last_day"])[:10],
    )
    assert totals.last_day == population.today


def test_each_province_has_its_status_and_names(history) -> None:
    ctx, store, population, reader = history
    db = store.database
    rows = {
        p.province_code: p
        for p in figures.province_rows(
            reader, database=db, settings=ctx.settings, now=population.now
        )
    }
    assert [rows[c].status for c in ("TH-10", "TH-50", "TH-20", "TH-12", "TH-11", "TH-33")] == [
        "MET",
        "MISSED",
        "AT_RISK",
        "ON_TRACK",
        "NO_DATA",
        "OUTSIDE",
    ]
    chiang_mai = rows["TH-50"]
    assert (chiang_mai.name_th, chiang_mai.name_en) == ("เชียงใหม่", "Chiang Mai")
    assert (chiang_mai.selected_cameras, chiang_mai.required_cameras) == (0, 2)
    assert chiang_mai.open_alerts == 3  # CAM-001 offline, CAM-002 degraded, quota missed
    assert (chiang_mai.projects, chiang_mai.late_projects) == (2, 1)
    assert rows["TH-10"].cameras_registered == 7  # its eighth camera was retired
    assert rows["TH-10"].open_alerts == 2  # its quota alert closed when it met the quota


def test_a_province_in_depth(history) -> None:
    ctx, store, population, reader = history
    db = store.database
    detail = figures.province_detail(
        reader, database=db, settings=ctx.settings, province_code="TH-50", now=population.now
    )
    assert [(q.day.isoformat(), q.status) for q in detail.quota] == [
        ("2020-12-12", "ON_TRACK"),
        ("2020-12-24", "AT_RISK"),
        ("2021-01-01", "MISSED"),  # Bangkok's 1 Jan 2564: the day after the deadline
    ]
    assert detail.deadline == dt.datetime(2020, 12, 31, 16, 59, 59, 999000, tzinfo=dt.UTC)
    assert detail.availability[-1].day == population.today
    assert len(detail.availability) == 15  # today and the fortnight before
    assert all(0 <= a.availability_pct <= 100 for a in detail.availability)
    # Worst cameras: the offline ones first, the longest silent first.
    worst = detail.worst_cameras
    assert len(worst) == 3
    assert [c.camera_id for c in worst[:2]] == [camera_id("TH-50", 6), camera_id("TH-50", 1)]
    assert not worst[0].online and worst[1].error_kind == "connection_refused"
    assert worst[0].name_th == "กล้องแยกที่ 6"
    # Projects: as their latest routing version stands, late first.
    assert [p.project_id for p in detail.projects] == ["PRJ-TH50-002", "PRJ-TH50-001"]
    resubmitted = detail.projects[1]
    assert resubmitted.routing_version == 2
    assert str(resubmitted.budget) == "9800000.00"
    assert [d.body for d in resubmitted.destinations] == ["PROVINCIAL_WORKING_GROUP"]
    late = detail.projects[0]
    assert [(d.body, d.stage) for d in late.destinations] == [
        ("PROVINCIAL_WORKING_GROUP", figures.LATE),
        ("NATIONAL_CAMERA_REGISTRY", figures.NO_DEADLINE),
    ]


def test_an_unknown_province_is_an_input_error(history) -> None:
    ctx, store, population, reader = history
    db = store.database
    with pytest.raises(InputError, match="TH-00"):
        figures.province_detail(reader, database=db, settings=ctx.settings, province_code="TH-00")


def test_the_pipeline_puts_late_projects_first(history) -> None:
    ctx, store, population, reader = history
    db = store.database
    pipeline = figures.project_pipeline(
        reader, database=db, settings=ctx.settings, now=population.now
    )
    assert pipeline.totals == {
        "PROVINCIAL_WORKING_GROUP": 5,
        "NATIONAL_SUBCOMMITTEE": 1,
        "NATIONAL_CAMERA_REGISTRY": 2,
    }
    working_group = pipeline.stages["PROVINCIAL_WORKING_GROUP"]
    assert working_group[0].project.project_id == "PRJ-TH50-002"
    assert working_group[0].destination.late
    assert not any(e.destination.late for e in working_group[1:])
    assert pipeline.late["PROVINCIAL_WORKING_GROUP"] == 1
    # Only the campaign in force: the project of campaign moi-cctv-2562 is not listed.
    listed = {e.project.project_id for entries in pipeline.stages.values() for e in entries}
    assert "PRJ-OLD-001" not in listed


def test_the_alerts_feed_delivers_each_alert_once(history) -> None:
    ctx, store, population, reader = history
    db = store.database
    settings, engine = ctx.settings, reader
    now = population.now
    latest, cursor = figures.alerts_since(engine, database=db, settings=settings, now=now)
    # The recent camera alerts (the quota ones are older than the look-back), once each,
    # although one of them was stored twice.
    assert len(latest) == 7
    assert len({a.event_id for a in latest}) == 7
    assert [a.first_seen for a in latest] == sorted(a.first_seen for a in latest)
    again, same = figures.alerts_since(
        engine, database=db, settings=settings, cursor=cursor, now=now
    )
    assert again == [] and same == cursor

    # A new alert arrives...
    new = alert_record("TH-12", "CAMERA_OFFLINE", camera_id("TH-12", 4), now)
    Writer(ctx, store, ingested_at=now + dt.timedelta(seconds=30)).write("alert", [new])
    later = now + dt.timedelta(minutes=1)
    arrived, cursor = figures.alerts_since(
        engine,
        database=db,
        settings=settings,
        cursor=figures.AlertCursor.decode(cursor.encode()),
        now=later,
    )
    assert [a.event_id for a in arrived] == [new["event_id"]]
    # ...then one a slower sink batch stamped 40 s before it, and a replay of an alert already
    # delivered: the feed brings the late one, once, and not the replay.
    late = alert_record("TH-12", "CAMERA_DEGRADED", camera_id("TH-12", 1), now)
    Writer(ctx, store, ingested_at=now - dt.timedelta(seconds=10)).write("alert", [late])
    replayed = next(a for a in latest if a.alert_type == "CAMERA_OFFLINE")
    Writer(ctx, store, ingested_at=later).write("alert", [_record_of(replayed)])
    arrived, cursor = figures.alerts_since(
        engine, database=db, settings=settings, cursor=cursor, now=later
    )
    assert [a.event_id for a in arrived] == [late["event_id"]]
    assert (
        figures.alerts_since(engine, database=db, settings=settings, cursor=cursor, now=later)[0]
        == []
    )


def _record_of(alert: figures.Alert) -> dict:
    return {
        "event_id": alert.event_id,
        "occurred_at": alert.occurred_at,
        "producer": "health",
        "province_code": alert.province_code,
        "alert_type": alert.alert_type,
        "severity": alert.severity,
        "subject_id": alert.subject_id,
        "message_en": alert.message_en,
        "message_th": alert.message_th,
        "campaign_id": None,
    }


@pytest.mark.parametrize("text", ["", "abc", "12:not-a-uuid@12", "99999999999999999999:"])
def test_a_cursor_that_is_not_one_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError, match="cursor"):
        figures.AlertCursor.decode(text)


def test_a_cursor_keeps_only_what_the_grace_can_bring_back() -> None:
    start = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)

    def alert(event_id: str, seconds: int) -> figures.Alert:
        at = start + dt.timedelta(seconds=seconds)
        return figures.Alert(event_id, at, at, "TH-10", "CAMERA_OFFLINE", "CRITICAL", "c", "e", "t")

    ids = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(3)]
    cursor = figures.AlertCursor(start).advance(
        [alert(ids[0], 0), alert(ids[1], 50), alert(ids[2], 100)], grace_seconds=60
    )
    assert cursor.at == start + dt.timedelta(seconds=100)
    assert cursor.delivered() == {ids[1], ids[2]}
    assert figures.AlertCursor.decode(cursor.encode()) == cursor
    assert CAMPAIGN  # the sample campaign is the one in force
