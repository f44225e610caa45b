"""Governors' reports (`cctv report`) on embedded chDB and on the 18.16 server (read as the
read-only analyst), over the dashboard's sample history: every figure of the HTML against SQL
truth computed from the history tables as of the report's instant, B.E. dates, the CSV files
parsing and agreeing with the HTML, 77 provinces in the national report; and the command line's
errors."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cctv.context import Context
from cctv.dates import BANGKOK, format_be_long
from services.reports.governor import national_report, province_report, write_report
from tests.dashboard_samples import CAMPAIGN, sample_history, sql_truth
from tests.report_pages import ReportPage, read_csv

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
ONLINE_WINDOW = 600
THAI_DATE = re.compile(
    r"\d{1,2} (มกราคม|กุมภาพันธ์|มีนาคม|เมษายน|พฤษภาคม|มิถุนายน|กรกฎาคม|สิงหาคม|กันยายน|ตุลาคม"
    r"|พฤศจิกายน|ธันวาคม) 25\d\d"
)


def sample_now() -> dt.datetime:
    """15:00 in Bangkok yesterday: the sample's last three hours and its day are one Bangkok
    day whatever the hour the tests run, and that day is over."""
    yesterday = dt.datetime.now(BANGKOK).date() - dt.timedelta(days=1)
    return dt.datetime.combine(yesterday, dt.time(15), BANGKOK).astimezone(dt.UTC)


@pytest.fixture(scope="module", params=["chdb", pytest.param("server", marks=pytest.mark.chserver)])
def history(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Context, Any, Any, Any]]:
    """(context, the writing store, the sample population, the engine reports read through)."""
    server = request.getfixturevalue("clickhouse_server") if request.param == "server" else None
    with sample_history(
        request.param,
        tmp_path_factory.mktemp("reports"),
        server,
        name="rep",
        now=sample_now(),
        online_window_seconds=ONLINE_WINDOW,
    ) as history:
        yield history


def _province(history, day: dt.date, now: dt.datetime, tmp_path: Path, code: str = "TH-50"):
    ctx, store, _, reader = history
    report = province_report(
        reader,
        database=store.database,
        settings=ctx.settings,
        campaign=ctx.campaign,
        provinces=ctx.provinces,
        province_code=code,
        day=day,
        now=now,
        source="test",
    )
    paths = write_report(report, tmp_path, ["html", "csv"])
    html = next(p for p in paths if p.suffix == ".html")
    return report, ReportPage(html.read_text(encoding="utf-8")), {p.name: p for p in paths}


def _at(moment: dt.datetime) -> str:
    return f"toDateTime('{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}', 'UTC')"


def province_truth(engine: Any, db: str, code: str, *, day: dt.date, as_of: dt.datetime) -> dict:
    """A province's figures as of `as_of`, from the history tables with plain SQL."""
    until = _at(as_of + dt.timedelta(seconds=1))
    quota = engine.query(
        "SELECT argMax(selected_cameras, occurred_at) AS sel, "
        "argMax(required_cameras, occurred_at) AS req, "
        "argMax(registered_cameras, occurred_at) AS reg, "
        "argMax(toString(status), occurred_at) AS s, count() AS n "
        f"FROM {db}.quota_progress WHERE province_code = '{code}' "
        f"AND campaign_id = '{CAMPAIGN}' AND occurred_at < {until}"
    )[0]
    windows = engine.query(
        "SELECT sum(reachable_heartbeats) AS r, sum(heartbeats) AS h "
        f"FROM {db}.health_windows FINAL WHERE scope = 'PROVINCE' AND province_code = '{code}' "
        f"AND toDate(window_start, 'Asia/Bangkok') = toDate('{day.isoformat()}') "
        f"AND window_start < {until}"
    )[0]
    projects = engine.query(
        "SELECT count() AS n, countIf(l = 1) AS late FROM (SELECT project_id, "
        f"argMax(late, routing_version) AS l FROM {db}.project_routing "
        f"WHERE province_code = '{code}' AND campaign_id = '{CAMPAIGN}' "
        f"AND occurred_at < {until} GROUP BY project_id)"
    )[0]
    h, r = int(windows["h"] or 0), int(windows["r"] or 0)
    has_quota = int(quota["n"]) > 0
    return {
        "selected_cameras": int(quota["sel"]) if has_quota else None,
        "required_cameras": int(quota["req"]) if has_quota else None,
        "registered_cameras": int(quota["reg"]) if has_quota else None,
        "status": str(quota["s"]) if has_quota else None,
        "heartbeats": h,
        "availability_pct": r * 100 / h if h else None,
        "projects": int(projects["n"]),
        "late_projects": int(projects["late"]),
    }


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _assert_csv_matches_html(page: ReportPage, files: dict[str, Path], slug: str) -> None:
    summary = {row["figure"]: row for row in read_csv(files[f"{slug}-summary.csv"])}
    for key, text in page.figures.items():
        if key in ("report_date", "as_of", "province_code"):
            continue
        assert summary[key]["shown"] == text, key
    assert summary["date"]["shown"] == page.figures["report_date"]
    for table, rows in page.tables.items():
        written = read_csv(files[f"{slug}-{table}.csv"])
        assert len(written) == len(rows), table
        for shown, row in zip(rows, written, strict=True):
            for col, text in shown.items():
                value = row.get(f"{col}_th", row[col])  # dates and labels: their Thai text
                if text.endswith("%"):
                    assert row[col] == text[:-1], (table, col)
                elif re.fullmatch(r"-?[\d,]+(\.\d\d)?", text):
                    assert row[col] == text.replace(",", ""), (table, col)
                elif text == "–":
                    assert row[col] in ("", "–"), (table, col)
                else:
                    assert value == text, (table, col)


def test_a_province_report_of_a_day_in_progress_equals_the_sql_truth(history, tmp_path) -> None:
    ctx, store, population, _ = history
    day, now = population.today, population.now
    report, page, files = _province(history, day, now, tmp_path)
    assert report.as_of == now  # the day is not over at `now`: figures as of then
    truth = province_truth(store.engine, store.database, "TH-50", day=day, as_of=now)
    f = page.figures
    assert _number(f["selected_cameras"]) == truth["selected_cameras"] == 0
    assert _number(f["required_cameras"]) == truth["required_cameras"] == 2
    assert _number(f["registered_cameras"]) == truth["registered_cameras"]
    assert f["status"] == "ไม่ครบตามกำหนด (Missed)" and truth["status"] == "MISSED"
    assert _number(f["heartbeats"]) == truth["heartbeats"]
    assert f["availability_pct"] == f"{truth['availability_pct']:.1f}%"
    assert (_number(f["projects"]), _number(f["late_projects"])) == (
        truth["projects"],
        truth["late_projects"],
    )
    # B.E. dates throughout: the report's day, the deadline, every row of the trends.
    assert f["report_date"] == format_be_long(day)
    assert f["deadline"] == "31 ธันวาคม 2563"
    assert all(THAI_DATE.fullmatch(r["day"]) for r in page.tables["availability"])
    assert [r["day"] for r in page.tables["quota"]] == [
        "12 ธันวาคม 2563",
        "24 ธันวาคม 2563",
        "1 มกราคม 2564",
    ]
    # Worst cameras: the two offline ones first; projects: the late one first.
    cams = page.tables["cameras"]
    assert [c["camera_id"] for c in cams[:2]] == ["TH-50-CAM-006", "TH-50-CAM-001"]
    assert cams[0]["state"].startswith("ขาดการเชื่อมต่อ")
    assert [p["project_id"] for p in page.tables["projects"]] == ["PRJ-TH50-002", "PRJ-TH50-001"]
    assert page.tables["projects"][0]["late"] == "ใช่ (Yes)"
    assert page.tables["projects"][1]["budget"] == "9,800,000.00"  # the resubmitted version
    _assert_csv_matches_html(page, files, report.slug)


def test_a_past_day_shows_the_figures_as_they_stood_at_its_end(history, tmp_path) -> None:
    """31 Dec 2563 (given as B.E. on the command line): the quota was AT_RISK then; MISSED came
    on 1 Jan 2564 and must not show."""
    ctx, store, population, _ = history
    day = dt.date(2020, 12, 31)
    report, page, files = _province(history, day, population.now, tmp_path)
    end = dt.datetime(2020, 12, 31, 16, 59, 59, 999000, tzinfo=dt.UTC)
    assert report.as_of == end
    truth = province_truth(store.engine, store.database, "TH-50", day=day, as_of=end)
    assert truth["status"] == "AT_RISK"
    assert page.figures["status"] == "เสี่ยงไม่ครบ (At risk)"
    assert len(page.tables["quota"]) == 2
    assert page.figures["report_date"] == "31 ธันวาคม 2563"
    assert page.figures["as_of"] == "31 ธันวาคม 2563 เวลา 23:59 น."
    assert page.figures["days_to_deadline"] == "0"
    assert _number(page.figures["heartbeats"]) == truth["heartbeats"] == 0
    assert page.figures["availability_pct"] == "–"
    assert _number(page.figures["projects"]) == truth["projects"] == 2
    # The late project was routed at noon on the 31st, so it counts; nothing of later days.
    assert _number(page.figures["late_projects"]) == truth["late_projects"] == 1
    assert page.tables["cameras"] == []  # nobody probed a camera that day
    _assert_csv_matches_html(page, files, report.slug)


def test_a_province_outside_the_campaign_says_so(history, tmp_path) -> None:
    ctx, store, population, _ = history
    report, page, files = _province(history, population.today, population.now, tmp_path, "TH-33")
    assert page.figures["status"] == "ไม่อยู่ในโครงการ (Not in the campaign)"
    assert "selected_cameras" not in page.figures
    assert "ไม่อยู่ในรายชื่อจังหวัด" in page.text
    _assert_csv_matches_html(page, files, report.slug)


def test_the_national_report_has_77_provinces_and_the_sql_truth(history, tmp_path) -> None:
    ctx, store, population, reader = history
    report = national_report(
        reader,
        database=store.database,
        settings=ctx.settings,
        campaign=ctx.campaign,
        day=population.today,
        now=population.now,
        source="test",
    )
    paths = write_report(report, tmp_path, ["html", "csv"])
    files = {p.name: p for p in paths}
    page = ReportPage(files[f"{report.slug}.html"].read_text(encoding="utf-8"))
    rows = page.tables["provinces"]
    assert len(rows) == 77
    assert len({r["province_code"] for r in rows}) == 77
    by_code = {r["province_code"]: r for r in rows}
    assert (by_code["TH-50"]["name_th"], by_code["TH-50"]["name_en"]) == ("เชียงใหม่", "Chiang Mai")
    truth = sql_truth(
        store.engine, store.database, now=population.now, online_window_seconds=ONLINE_WINDOW
    )
    f = page.figures
    for key in (
        "provinces_met",
        "selected_cameras",
        "required_cameras",
        "registered_cameras",
        "cameras_registered",
        "cameras_online",
        "open_alerts",
        "projects",
        "late_projects",
    ):
        assert _number(f[key]) == truth[key], key
    assert _number(f["cameras_heard"]) == truth["cameras_watched"]  # all heard that day
    assert f["availability_pct"] == f"{truth['availability_pct']:.1f}%"
    # The totals row is the sum of the rows.
    total = page.totals["provinces"]
    for col in ("selected_cameras", "required_cameras", "projects", "late_projects"):
        assert _number(total[col]) == sum(_number(r[col]) for r in rows if r[col] != "–"), col
    assert _number(total["selected_cameras"]) == truth["selected_cameras"]
    assert f["report_date"] == format_be_long(population.today)
    assert THAI_DATE.search(f["as_of"])
    written = read_csv(files[f"{report.slug}-provinces.csv"])
    assert len(written) == 77
    assert written[0]["province_code"] == "TH-10"
    _assert_csv_matches_html(page, files, report.slug)


# -- the command line --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_settings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A settings file naming a chDB directory that holds the sample history (written by a
    child process: one chDB directory per process, and the tests above hold theirs)."""
    root = tmp_path_factory.mktemp("report-cli")
    data = {"clickhouse": {"chdb_path": str(root / "chdb"), "database": "reports"}}
    path = root / "settings.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    script = (
        "import datetime as dt, sys\n"
        "from cctv.context import Context\nfrom cctv.settings import Settings\n"
        "from tests.dashboard_samples import populate, prepare_database\n"
        "ctx = Context.load(Settings.load())\nstore = ctx.open_store()\n"
        "prepare_database(store)\n"
        "populate(ctx, store, now=dt.datetime.fromisoformat(sys.argv[1]))\n"
        "store.engine.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, sample_now().isoformat()],
        cwd=REPO_ROOT,
        env=_env(path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return path


def _env(settings_file: Path) -> dict[str, str]:
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CCTV_") and k not in ("CLICKHOUSE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    env["CCTV_SETTINGS_FILE"] = str(settings_file)
    return env


def cctv(settings_file: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cctv_cli", *args],
        cwd=REPO_ROOT,
        env=_env(settings_file),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_writes_html_and_csv_and_says_where(cli_settings, tmp_path) -> None:
    out = tmp_path / "out"
    done = cctv(cli_settings, "report", "province", "TH-50", "--date", "2563-12-31",
                "--output-dir", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = out / "cctv-report-TH-50-2020-12-31.html"
    assert str(html) in done.stdout
    page = ReportPage(html.read_text(encoding="utf-8"))
    assert page.figures["report_date"] == "31 ธันวาคม 2563"
    assert page.figures["status"] == "เสี่ยงไม่ครบ (At risk)"
    for name in ("summary", "quota", "availability", "cameras", "projects"):
        assert (out / f"cctv-report-TH-50-2020-12-31-{name}.csv").exists(), name
    # Self-contained: no external reference at all (stylesheets, scripts, fonts, images).
    text = html.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=\"(?!#)", text)
    assert "url(http" not in text and "@import" not in text
    assert "@page" in text and "size: A4" in text and "font/woff2;base64," in text

    done = cctv(cli_settings, "report", "national", "--date", "2020-12-31", "--format", "csv",
                "--output-dir", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (out / "cctv-report-national-2020-12-31.html").exists()
    rows = read_csv(out / "cctv-report-national-2020-12-31-provinces.csv")
    assert len(rows) == 77
    assert {r["province_code"]: r["status"] for r in rows}["TH-10"] == "MET"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["province", "TH-00", "--date", "2020-12-31"], "province"),
        (["province", "Atlantis", "--date", "2020-12-31"], "province"),
        (["province", "TH-50", "--date", "31/12/2020"], "--date"),
        (["province", "TH-50", "--date", "2563-02-30"], "--date"),
        (["province", "TH-50", "--date", "2999-01-01"], "--date"),  # B.E. 2999: 2456 C.E.
        (["national", "--date", "2020-12-31", "--format", "pdf"], "--format"),
        (["national"], "--date"),  # required
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(cli_settings, args, named, tmp_path) -> None:
    done = cctv(cli_settings, "report", *args, "--output-dir", str(tmp_path))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert named in done.stderr
    assert not any(tmp_path.iterdir())


def test_a_be_date_and_its_ce_twin_give_the_same_report(cli_settings, tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert cctv(cli_settings, "report", "province", "50", "--date", "2563-12-24",
                "--output-dir", str(a), "--format", "csv").returncode == 0  # fmt: skip
    assert cctv(cli_settings, "report", "province", "Chiang Mai", "--date", "2020-12-24",
                "--output-dir", str(b), "--format", "csv").returncode == 0  # fmt: skip
    name = "cctv-report-TH-50-2020-12-24-quota.csv"
    assert read_csv(a / name) == read_csv(b / name)
    summary = {r["figure"]: r["value"] for r in read_csv(a / name.replace("quota", "summary"))}
    assert summary["status"] == "AT_RISK"
    assert json.dumps(summary, ensure_ascii=False)  # plain text values
